-- Projection `campaigns`: when a campaign completed (every message final, `campaign.completed`).
ALTER TABLE rm_campaigns ADD COLUMN completed_at TIMESTAMPTZ;
