-- Projection `conversations`: who last read a conversation, and when (`conversation.read`).
ALTER TABLE rm_conversations ADD COLUMN last_read_at TIMESTAMPTZ, ADD COLUMN last_read_agent_id UUID;
