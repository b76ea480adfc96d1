-- Outbound webhooks (Standard Webhooks), see docs/operations.md "Outbound webhooks".

-- Endpoints as the `webhooks` projector folds them from `webhook_endpoint.*` events (rebuildable).
CREATE TABLE webhook_endpoints (
    endpoint_id     UUID        PRIMARY KEY,
    workspace_id    UUID        NOT NULL,
    url             TEXT        NOT NULL,
    event_types     TEXT[]      NOT NULL,
    description     TEXT,
    enabled         BOOLEAN     NOT NULL DEFAULT true,
    disabled_reason TEXT,
    deleted         BOOLEAN     NOT NULL DEFAULT false,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id) WHERE enabled AND NOT deleted;

-- The conversation a message stream belongs to, so its later events (sent, delivered, read) are
-- delivered in order with the conversation's (written by the projector, only in workspaces with
-- endpoints).
CREATE TABLE webhook_message_conversations (
    message_stream  TEXT PRIMARY KEY,
    order_key       TEXT NOT NULL
);

-- One row per (endpoint, event): the work list of deliverers and the delivery log. Not a read model:
-- the projector only inserts (ON CONFLICT DO NOTHING), the deliverer owns status and attempts, so a
-- rebuild of the projector never sends anything twice.
CREATE TABLE webhook_deliveries (
    delivery_id     UUID        PRIMARY KEY,
    endpoint_id     UUID        NOT NULL,
    workspace_id    UUID        NOT NULL,
    event_id        UUID        NOT NULL,
    position        BIGINT      NOT NULL,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    -- Deliveries of one endpoint with the same key go in log order: the conversation (or the stream).
    order_key       TEXT        NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    -- pending (due at next_attempt_at; in flight while leased), delivered, failed (retries exhausted).
    status          TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts of the current round (a replay starts a new round).
    attempts        INT         NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    leased_until    TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, order_key, position) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, position DESC);

-- Every attempt: when, how long, what the receiver answered.
CREATE TABLE webhook_attempts (
    attempt_id      BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     UUID        NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    started_at      TIMESTAMPTZ NOT NULL,
    latency_ms      DOUBLE PRECISION NOT NULL,
    status_code     INT,
    error           TEXT,
    -- When the next attempt was scheduled for (NULL: delivered, or no more attempts).
    retry_at        TIMESTAMPTZ
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt_id);

-- How each endpoint fares, for disabling one that fails for days.
CREATE TABLE webhook_endpoint_health (
    endpoint_id     UUID        PRIMARY KEY,
    failing_since   TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    last_error      TEXT
);

-- Signing secrets (`whsec_…`), sealed with BLAZZ_SECRET_KEY with the endpoint id as associated data,
-- never in the log. The current one has no expiry; after a rotation the previous one signs too until
-- it expires.
CREATE TABLE webhook_secrets (
    secret_id       BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id     UUID        NOT NULL,
    workspace_id    UUID        NOT NULL,
    sealed          BYTEA       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);
