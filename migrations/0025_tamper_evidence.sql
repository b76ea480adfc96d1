-- Tamper evidence (docs/adr/0008-tamper-evidence.md, commands/src/audit/).
--
-- Every event carries two SHA-256 values:
--   content_digest: of the event's content (ids, stream, type, schema version, payload, metadata),
--                   computed by the writer over a canonical JSON form (commands/src/audit/chain.rs);
--   hash:           the link chaining it to its stream predecessor, computed here, at insert:
--                   sha256(predecessor's hash, or 32 zero bytes at version 1
--                          || content_digest
--                          || stream_version, position, recorded_at in µs since 1970, each 8 bytes
--                             big-endian).
-- Both are NULL only on events appended before this migration; the sealer seals those once
-- (commands/src/audit/seal.rs), and `blazz audit verify` reports any it still finds.
ALTER TABLE events ADD COLUMN content_digest BYTEA, ADD COLUMN hash BYTEA;
-- The events still to seal: empty but for events older than this migration (and the odd append
-- onto one of them before it was sealed).
CREATE INDEX events_unsealed ON events (stream_id, stream_version) WHERE hash IS NULL;

-- Row triggers of a multi-row INSERT see the rows the same statement inserted before them, and the
-- append inserts in (stream, version) order, so an event appended with its predecessor in one batch
-- finds it. A predecessor that is missing cannot happen (the append checks the expected version);
-- one without a hash (not yet sealed) leaves this event unsealed too, for the sealer to chain.
CREATE FUNCTION events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous BYTEA;
BEGIN
    IF NEW.content_digest IS NULL THEN
        RETURN NEW;
    END IF;
    IF NEW.stream_version = 1 THEN
        previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        SELECT e.hash INTO previous FROM events e
        WHERE e.stream_id = NEW.stream_id AND e.stream_version = NEW.stream_version - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event % of stream % has no predecessor', NEW.stream_version, NEW.stream_id;
        END IF;
        IF previous IS NULL THEN
            RETURN NEW;
        END IF;
    END IF;
    NEW.hash := sha256(previous || NEW.content_digest || int8send(NEW.stream_version) || int8send(NEW.position)
                       || int8send((extract(epoch FROM NEW.recorded_at) * 1000000)::int8));
    RETURN NEW;
END
$$;

CREATE TRIGGER events_chain BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_chain();

-- The sealer's running heads: per workspace, and for the whole log (scope = the nil UUID), the fold
-- head = sha256(head || event hash) over the scope's events in log order, from 32 zero bytes.
-- The whole-log row's (transaction_id, position) is where the sealer has read to.
CREATE TABLE audit_heads (
    scope          UUID   PRIMARY KEY,
    events         BIGINT NOT NULL,
    head           BYTEA  NOT NULL,
    transaction_id XID8   NOT NULL,
    position       BIGINT NOT NULL
);

-- Signed checkpoints: the head of a scope after `events` of its events, the last at `position`,
-- signed with the deployment's Ed25519 key. The signed text is `checkpoint::message`.
CREATE TABLE audit_checkpoints (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope      UUID        NOT NULL,
    events     BIGINT      NOT NULL,
    position   BIGINT      NOT NULL,
    head       BYTEA       NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL,
    -- The signer's public key (32 bytes): which key to check it with; trust comes from elsewhere.
    public_key BYTEA       NOT NULL,
    signature  BYTEA       NOT NULL,
    UNIQUE (scope, events)
);
