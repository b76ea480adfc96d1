-- Projection `contacts`: labels (lowercase), filtered by `GET /v1/contacts?label=`.
ALTER TABLE rm_contacts ADD COLUMN labels TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX rm_contacts_labels ON rm_contacts USING gin (labels);
