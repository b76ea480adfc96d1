-- The event log: the source of truth. Rows are never updated; deletes happen only inside the append
-- transaction that wrote them (a batch-mate of a failed command), so no reader ever sees them.
CREATE TABLE events (
    -- Global position, handed out at insert time (not commit time): readers must not checkpoint on it
    -- alone, see transaction_id.
    position        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id. Readers go in (transaction_id, position) order and only below the
    -- oldest running transaction (pg_snapshot_xmin), which makes the read gap-free.
    transaction_id  XID8        NOT NULL DEFAULT pg_current_xact_id(),
    -- '<category>-<uuid>', e.g. 'contact-0192...'.
    stream_id       TEXT        NOT NULL,
    -- 1-based, contiguous per stream.
    stream_version  BIGINT      NOT NULL CHECK (stream_version > 0),
    event_id        UUID        NOT NULL UNIQUE,
    -- Stable name such as 'contact.created' and the payload's schema version (see upcasters).
    event_type      TEXT        NOT NULL,
    schema_version  INT         NOT NULL,
    workspace_id    UUID        NOT NULL,
    payload         JSONB       NOT NULL,
    -- correlation_id, causation_id, actor, request_id.
    metadata        JSONB       NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_log_order ON events (transaction_id, position);
CREATE INDEX events_workspace_log_order ON events (workspace_id, transaction_id, position);

-- Uniqueness across streams (one contact per phone per workspace, one channel per provider number,
-- API keys by id), written in the same transaction as the events that take or free them.
CREATE TABLE unique_claims (
    scope        TEXT        NOT NULL,
    value        TEXT        NOT NULL,
    -- The stream holding the claim.
    owner        TEXT        NOT NULL,
    workspace_id UUID        NOT NULL,
    -- Facts that must not enter the immutable log, e.g. an API key's SHA-256 hash and role.
    data         JSONB       NOT NULL DEFAULT '{}',
    claimed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, value)
);

CREATE INDEX unique_claims_owner ON unique_claims (scope, workspace_id, owner);

-- Results of idempotent commands, written in the same transaction as their events.
CREATE TABLE idempotency_keys (
    -- The nil UUID for operator commands that have no workspace yet.
    workspace_id UUID        NOT NULL,
    key          TEXT        NOT NULL,
    -- SHA-256 of the request (method, path, body): a key reused for another request is rejected.
    fingerprint  TEXT        NOT NULL,
    result       JSONB       NOT NULL,
    -- Last log position the command wrote; NULL when it wrote nothing.
    position     BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, key)
);
