-- Projection `canned_responses`: a workspace's short codes for reply texts.
CREATE TABLE rm_canned_responses (
    workspace_id         UUID        NOT NULL,
    canned_response_id   UUID        NOT NULL,
    short_code           TEXT        NOT NULL,
    text                 TEXT        NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, canned_response_id)
);
