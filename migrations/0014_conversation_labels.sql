-- Projection `conversations`: labels (lowercase).
ALTER TABLE rm_conversations ADD COLUMN labels TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX rm_conversations_labels ON rm_conversations USING gin (labels);
