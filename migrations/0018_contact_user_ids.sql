-- Projection `contacts`: a contact may be known by its WhatsApp business-scoped user id (BSUID)
-- alone, without a phone number.
ALTER TABLE rm_contacts ALTER COLUMN phone DROP NOT NULL;
ALTER TABLE rm_contacts ADD COLUMN user_id TEXT;
