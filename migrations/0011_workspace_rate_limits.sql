-- A workspace's own request rate per API key, set by an operator (`PUT
-- /v1/operator/workspaces/{id}/rate-limit`); without a row, the gateway's default applies. Operational
-- configuration, not business history: it is not in the event log.
CREATE TABLE workspace_rate_limits (
    workspace_id UUID PRIMARY KEY,
    requests_per_second INT NOT NULL CHECK (requests_per_second > 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
