-- Projection `agents`: the people working the inbox, and when each was last given a conversation
-- (round-robin order of automatic assignment).
CREATE TABLE rm_agents (
    workspace_id     UUID        NOT NULL,
    agent_id         UUID        NOT NULL,
    name             TEXT        NOT NULL,
    email            TEXT        NOT NULL,
    role             TEXT        NOT NULL,
    availability     TEXT        NOT NULL DEFAULT 'offline',
    last_assigned_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, agent_id)
);

-- Projection `teams`: teams with their members and automatic assignment settings.
CREATE TABLE rm_teams (
    workspace_id       UUID        NOT NULL,
    team_id            UUID        NOT NULL,
    name               TEXT        NOT NULL,
    auto_assign        BOOLEAN     NOT NULL,
    max_open_per_agent INT,
    member_ids         UUID[]      NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, team_id)
);

-- Projection `channels`: the team new conversations of a channel go to.
ALTER TABLE rm_channels ADD COLUMN inbox_team_id UUID;

-- Projection `conversations`: assignment to an agent and a team (the free-text `assignee` of
-- `conversation.assigned` v1 is gone), whether it was ever assigned, and the priority.
ALTER TABLE rm_conversations DROP COLUMN assignee;
ALTER TABLE rm_conversations ADD COLUMN agent_id UUID;
ALTER TABLE rm_conversations ADD COLUMN team_id UUID;
ALTER TABLE rm_conversations ADD COLUMN routed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE rm_conversations ADD COLUMN priority TEXT NOT NULL DEFAULT 'none';
-- An agent's open work (the cap of automatic assignment) and the inbox by assignee.
CREATE INDEX rm_conversations_agent ON rm_conversations (workspace_id, agent_id, status);
CREATE INDEX rm_conversations_team ON rm_conversations (workspace_id, team_id);
-- Conversations waiting for an agent, oldest first (automatic assignment): only those the customer
-- wrote in (a campaign's recipients who never answered are nobody's work yet).
CREATE INDEX rm_conversations_waiting ON rm_conversations (last_message_at)
    WHERE agent_id IS NULL AND status = 'open' AND window_expires_at IS NOT NULL;
-- The inbox by last activity.
CREATE INDEX rm_conversations_activity
    ON rm_conversations (workspace_id, (coalesce(last_message_at, '-infinity'::timestamptz)) DESC, conversation_id DESC);

-- Projection `conversations`: private notes (never sent to WhatsApp), with their author.
CREATE TABLE rm_conversation_notes (
    workspace_id    UUID        NOT NULL,
    note_id         UUID        NOT NULL,
    conversation_id UUID        NOT NULL,
    text            TEXT        NOT NULL,
    actor           TEXT        NOT NULL,
    agent_id        UUID,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, note_id)
);
CREATE INDEX rm_conversation_notes_conversation ON rm_conversation_notes (workspace_id, conversation_id, note_id);
