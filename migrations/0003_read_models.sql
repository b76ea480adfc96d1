-- Read side. Every rm_* table is owned by exactly one projector (see projections/src/read_models/) and
-- can be rebuilt from the log at any time; nothing else writes to them.

-- Where each projector is in the log, committed in the same transaction as its read-model changes.
CREATE TABLE projection_checkpoints (
    projection     TEXT PRIMARY KEY,
    -- The (transaction_id, position) log cursor of the last applied event; (0, 0) before the first.
    transaction_id XID8        NOT NULL DEFAULT '0',
    position       BIGINT      NOT NULL DEFAULT 0,
    events_applied BIGINT      NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE rm_contacts (
    workspace_id   UUID        NOT NULL,
    contact_id     UUID        NOT NULL,
    phone          TEXT        NOT NULL,
    name           TEXT,
    attributes     JSONB       NOT NULL DEFAULT '{}',
    opted_out      BOOLEAN     NOT NULL DEFAULT false,
    opt_out_reason TEXT,
    opt_out_source TEXT,
    -- Groups the contact belongs to (maintained from group membership events).
    group_ids      UUID[]      NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, contact_id)
);
CREATE INDEX rm_contacts_groups ON rm_contacts USING gin (group_ids);
CREATE INDEX rm_contacts_attributes ON rm_contacts USING gin (attributes jsonb_path_ops);

CREATE TABLE rm_groups (
    workspace_id UUID        NOT NULL,
    group_id     UUID        NOT NULL,
    name         TEXT        NOT NULL,
    member_count BIGINT      NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, group_id)
);

CREATE TABLE rm_templates (
    workspace_id  UUID        NOT NULL,
    template_id   UUID        NOT NULL,
    name          TEXT        NOT NULL,
    language      TEXT        NOT NULL,
    category      TEXT        NOT NULL,
    status        TEXT        NOT NULL,
    status_reason TEXT,
    components    JSONB       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, template_id)
);

CREATE TABLE rm_channels (
    workspace_id          UUID        NOT NULL,
    channel_id            UUID        NOT NULL,
    provider              TEXT        NOT NULL,
    phone_number_id       TEXT        NOT NULL,
    display_phone_number  TEXT        NOT NULL,
    rate_limit_per_second INT         NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, channel_id)
);

-- The inbox: one row per channel and contact.
CREATE TABLE rm_conversations (
    workspace_id         UUID        NOT NULL,
    conversation_id      UUID        NOT NULL,
    channel_id           UUID        NOT NULL,
    contact_id           UUID        NOT NULL,
    last_message_at      TIMESTAMPTZ,
    last_message_preview TEXT,
    last_direction       TEXT,
    -- Inbound messages since the last outbound one.
    unread_count         BIGINT      NOT NULL DEFAULT 0,
    window_expires_at    TIMESTAMPTZ,
    assignee             TEXT,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, conversation_id)
);

-- The message timeline with current status.
CREATE TABLE rm_messages (
    workspace_id        UUID        NOT NULL,
    message_id          UUID        NOT NULL,
    conversation_id     UUID        NOT NULL,
    channel_id          UUID        NOT NULL,
    contact_id          UUID        NOT NULL,
    direction           TEXT        NOT NULL,
    kind                TEXT        NOT NULL,
    status              TEXT        NOT NULL,
    preview             TEXT,
    provider_message_id TEXT,
    error               JSONB,
    queued_at           TIMESTAMPTZ NOT NULL,
    sent_at             TIMESTAMPTZ,
    delivered_at        TIMESTAMPTZ,
    read_at             TIMESTAMPTZ,
    failed_at           TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
);
CREATE INDEX rm_messages_conversation ON rm_messages (workspace_id, conversation_id, message_id);

-- Messages per workspace, day (UTC, of queueing), direction, kind and current status.
CREATE TABLE rm_daily_stats (
    workspace_id UUID   NOT NULL,
    day          DATE   NOT NULL,
    direction    TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    messages     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, direction, kind, status)
);
