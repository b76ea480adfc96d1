-- Projection `agents`: deactivated agents (offline, no new conversations, keys refused). The
-- partial index finds the few deactivated agents whose conversations go back to their teams.
ALTER TABLE rm_agents ADD COLUMN active BOOLEAN NOT NULL DEFAULT true;
CREATE INDEX rm_agents_deactivated ON rm_agents (workspace_id, agent_id) WHERE NOT active;
