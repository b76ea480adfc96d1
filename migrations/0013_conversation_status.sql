-- Projection `conversations`: the inbox status (open, pending, snoozed, resolved) and, while
-- snoozed, when the conversation reopens.
ALTER TABLE rm_conversations ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
ALTER TABLE rm_conversations ADD COLUMN snoozed_until TIMESTAMPTZ;
CREATE INDEX rm_conversations_snoozed ON rm_conversations (snoozed_until) WHERE status = 'snoozed';
CREATE INDEX rm_conversations_status ON rm_conversations (workspace_id, status);
