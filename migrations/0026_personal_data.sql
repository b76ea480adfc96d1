-- Crypto-shredding (docs/adr/0003-personal-data.md): one data key per contact, sealed with the
-- deployment key (BLAZZ_SECRET_KEY, the keyring of channel credentials) with the contact id as
-- associated data. Personal fields of events are sealed with it. Erasure sets `sealed` to NULL; the
-- row stays, so a contact once erased stays erased.
CREATE TABLE contact_keys (
    contact_id   UUID        PRIMARY KEY,
    workspace_id UUID        NOT NULL,
    sealed       BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    erased_at    TIMESTAMPTZ,
    CHECK ((sealed IS NULL) = (erased_at IS NOT NULL))
);
