-- Projection `reports`: the inbox's and campaigns' figures, rebuilt from the log like any other.

-- Per conversation: its assignment now, and the campaign that last wrote to it (a reply within
-- 24 hours of that counts for the campaign).
CREATE TABLE rm_report_conversations (
    workspace_id     UUID NOT NULL,
    conversation_id  UUID NOT NULL,
    agent_id         UUID,
    team_id          UUID,
    last_campaign_id UUID,
    last_campaign_at TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, conversation_id)
);

-- A conversation's cycles: opened by the customer writing (or an agent reopening it), first
-- answered by an agent, resolved. At most one open cycle per conversation. Agent and team are the
-- conversation's assignment during the cycle (the latest one). A cycle is named by the log position
-- of the event that opened it.
CREATE TABLE rm_report_cycles (
    workspace_id      UUID        NOT NULL,
    conversation_id   UUID        NOT NULL,
    opened_position   BIGINT      NOT NULL,
    opened_at         TIMESTAMPTZ NOT NULL,
    first_response_at TIMESTAMPTZ,
    resolved_at       TIMESTAMPTZ,
    agent_id          UUID,
    team_id           UUID,
    PRIMARY KEY (workspace_id, conversation_id, opened_position)
);
CREATE UNIQUE INDEX rm_report_cycles_open ON rm_report_cycles (workspace_id, conversation_id) WHERE resolved_at IS NULL;
CREATE INDEX rm_report_cycles_opened ON rm_report_cycles (workspace_id, opened_at);
CREATE INDEX rm_report_cycles_answered ON rm_report_cycles (workspace_id, first_response_at);
CREATE INDEX rm_report_cycles_resolved ON rm_report_cycles (workspace_id, resolved_at);

-- Messages sent from the inbox (not campaigns) per UTC day, agent and team (the nil id: none).
CREATE TABLE rm_report_messages (
    workspace_id UUID   NOT NULL,
    day          DATE   NOT NULL,
    agent_id     UUID   NOT NULL,
    team_id      UUID   NOT NULL,
    sent         BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, day, agent_id, team_id)
);

-- Recipients who answered a campaign within 24 hours of its message (once each).
CREATE TABLE rm_report_campaign_replies (
    workspace_id    UUID        NOT NULL,
    campaign_id     UUID        NOT NULL,
    conversation_id UUID        NOT NULL,
    replied_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, campaign_id, conversation_id)
);
