-- Events a projector could not apply (the apply failed or panicked, or the event could not be
-- decoded). The projector records the event here and goes on: no single event can stop a projection
-- for every workspace. Later events of the same stream wait here behind it (status 'parked', with
-- `held_by` naming the first), so the stream's read model never applies them out of order. Operators
-- list, retry and skip them (`blazz projections parked|retry|skip`, `/v1/operator/parked-events`).
CREATE TABLE parked_events (
    id BIGSERIAL PRIMARY KEY,
    projection TEXT NOT NULL,
    -- The feed lane it came from (-1: the log feed; else a Kafka partition).
    lane INT4 NOT NULL,
    transaction_id XID8 NOT NULL,
    position BIGINT NOT NULL,
    stream_id TEXT NOT NULL,
    stream_version BIGINT NOT NULL,
    workspace_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    -- Why it failed (the database's message, the panic's, the decoder's), or why it waits.
    error TEXT NOT NULL,
    -- The parked event of the same projection and stream this one waits behind (NULL: it failed itself).
    held_by BIGINT REFERENCES parked_events (id),
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- How often applying it was tried (the first time included).
    attempts INT4 NOT NULL DEFAULT 1,
    -- parked: waiting for an operator; applied: a retry applied it; skipped: an operator dropped it.
    status TEXT NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'applied', 'skipped')),
    resolved_at TIMESTAMPTZ,
    UNIQUE (projection, position)
);

-- The runner asks, per batch, which of its streams have parked events.
CREATE INDEX parked_events_open ON parked_events (stream_id, projection) WHERE status = 'parked';
