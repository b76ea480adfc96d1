-- Media (issue 14, item 4): inbound media fetched from the provider into object storage.
-- The `media` projector enqueues one row per inbound media message; the media fetcher owns the rest
-- of the row. The bytes live in the object store under `object_key`, never in PostgreSQL or the log.
CREATE TABLE media (
    media_id          UUID        PRIMARY KEY,
    workspace_id      UUID        NOT NULL,
    channel_id        UUID        NOT NULL,
    message_id        UUID        UNIQUE,
    direction         TEXT        NOT NULL CHECK (direction IN ('in', 'out')),
    -- image, video, audio, document, sticker.
    kind              TEXT        NOT NULL,
    provider_media_id TEXT,
    mime_type         TEXT,
    -- The SHA-256 the provider gave (inbound: checked against the bytes), then the bytes' own (hex).
    expected_sha256   TEXT,
    sha256            TEXT,
    size              BIGINT,
    filename          TEXT,
    object_key        TEXT,
    -- pending (due at next_attempt_at), stored, failed (retries exhausted).
    status            TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'stored', 'failed')),
    attempts          INT         NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    stored_at         TIMESTAMPTZ
);
CREATE INDEX media_due ON media (next_attempt_at) WHERE status = 'pending';
CREATE INDEX media_workspace ON media (workspace_id, created_at DESC);

-- Our media as uploaded to a channel's provider: sent by that id on that channel, uploaded once.
CREATE TABLE media_uploads (
    media_id          UUID        NOT NULL,
    channel_id        UUID        NOT NULL,
    provider_media_id TEXT        NOT NULL,
    uploaded_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, channel_id)
);
