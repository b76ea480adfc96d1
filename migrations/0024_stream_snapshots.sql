-- Snapshots of aggregate states for as-of queries (commands/src/as_of.rs): a cache, never the source
-- of truth. A snapshot holds the state after `version` events of its stream, as the fold named by
-- `code` made it; one of another code is ignored (and may be deleted at any time, as may all).
CREATE TABLE stream_snapshots (
    stream_id    text        NOT NULL,
    version      bigint      NOT NULL,
    workspace_id uuid        NOT NULL,
    position     bigint      NOT NULL,
    recorded_at  timestamptz NOT NULL,
    code         text        NOT NULL,
    state        jsonb       NOT NULL,
    PRIMARY KEY (stream_id, code, version)
);
