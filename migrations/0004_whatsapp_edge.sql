-- The WhatsApp edge: channel secrets, webhook exceptions, the dispatch queue and usage metering.

-- Channel credentials, kept out of the immutable event log. `sealed` is
-- key id (4 bytes) || nonce (12 bytes) || ChaCha20-Poly1305 ciphertext of a JSON object
-- {access_token, app_secret, verify_token}, with the channel id as associated data.
CREATE TABLE channel_credentials (
    channel_id   UUID        PRIMARY KEY,
    workspace_id UUID        NOT NULL,
    sealed       BYTEA       NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Webhook parts that were acknowledged to Meta but not turned into events: an unknown phone number id
-- (unroutable), an unknown message or template, an unknown status or field, an unreadable part, or an
-- error not tied to a message. For operators; may hold personal data of the payload.
CREATE TABLE webhook_exceptions (
    id              BIGSERIAL   PRIMARY KEY,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The channel whose webhook path received it.
    channel_id      UUID        NOT NULL,
    workspace_id    UUID        NOT NULL,
    kind            TEXT        NOT NULL,
    phone_number_id TEXT,
    detail          TEXT        NOT NULL,
    payload         JSONB       NOT NULL
);
CREATE INDEX webhook_exceptions_kind ON webhook_exceptions (kind, id);

-- Projection `outbox`: queued messages not yet dispatched, for dispatchers to pick up.
CREATE TABLE dispatch_queue (
    workspace_id UUID        NOT NULL,
    message_id   UUID        NOT NULL,
    channel_id   UUID        NOT NULL,
    -- When it may be sent (its queueing time).
    due_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
);
CREATE INDEX dispatch_queue_due ON dispatch_queue (due_at);

-- Projection `usage`: billing reports per workspace, channel, UTC day (of the report) and category.
CREATE TABLE rm_usage (
    workspace_id UUID   NOT NULL,
    channel_id   UUID   NOT NULL,
    day          DATE   NOT NULL,
    -- Meta's pricing category (marketing, utility, authentication, service, …), lower case.
    category     TEXT   NOT NULL,
    billable     BIGINT NOT NULL DEFAULT 0,
    free         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, channel_id, day, category)
);
