-- Campaigns: statistics, and holding a paused or cancelled campaign's messages back from dispatch.

-- Projection `campaigns`: one row per campaign, with counts of its messages by current status.
CREATE TABLE rm_campaigns (
    workspace_id  UUID        NOT NULL,
    campaign_id   UUID        NOT NULL,
    name          TEXT        NOT NULL,
    channel_id    UUID        NOT NULL,
    template_id   UUID        NOT NULL,
    status        TEXT        NOT NULL,
    scheduled_at  TIMESTAMPTZ,
    launched_at   TIMESTAMPTZ,
    -- Recipients left out at launch, by reason ({opted_out, duplicate, unknown, missing_variable}).
    skipped       JSONB       NOT NULL DEFAULT '{}',
    queued        BIGINT      NOT NULL DEFAULT 0,
    dispatched    BIGINT      NOT NULL DEFAULT 0,
    -- Attempts whose outcome never came back (crash policy: never resent automatically).
    unknown       BIGINT      NOT NULL DEFAULT 0,
    sent          BIGINT      NOT NULL DEFAULT 0,
    delivered     BIGINT      NOT NULL DEFAULT 0,
    read          BIGINT      NOT NULL DEFAULT 0,
    failed        BIGINT      NOT NULL DEFAULT 0,
    -- Failed messages by error class ({retry_later, final, stop_campaign, halt_channel}).
    failed_by_class JSONB     NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, campaign_id)
);
CREATE INDEX rm_campaigns_due ON rm_campaigns (status, scheduled_at);

-- Projection `campaigns`: each campaign message's current status (to move it between the counts).
CREATE TABLE rm_campaign_messages (
    message_id  UUID NOT NULL PRIMARY KEY,
    campaign_id UUID NOT NULL,
    status      TEXT NOT NULL
);

-- Projection `outbox`: the campaign of each queued message, and the paused or cancelled campaigns and
-- halted channels whose messages are held back.
ALTER TABLE dispatch_queue ADD COLUMN campaign_id UUID;
CREATE TABLE dispatch_held (
    -- A campaign id or a channel id.
    held_id UUID PRIMARY KEY
);

-- Projection `channels`: why a channel stopped sending, until resumed.
ALTER TABLE rm_channels ADD COLUMN halted TEXT;

-- Send rate per channel, shared by every dispatcher: the next free send slot. A dispatcher reserves n
-- slots by moving it n intervals ahead (not a projection: operational state, like claims).
CREATE TABLE dispatch_rate (
    channel_id UUID        PRIMARY KEY,
    next_at    TIMESTAMPTZ NOT NULL
);

-- Attempts still waiting for an outcome, for the crash policy (marked unknown after a time limit).
CREATE INDEX rm_messages_dispatched ON rm_messages (updated_at) WHERE status = 'dispatched';
