-- `GET /v1/history/correlations/{id}`: everything one request caused, found by the correlation id in
-- the events' metadata (no rewrite of stored events: an index on the expression).
CREATE INDEX events_correlation ON events (workspace_id, (metadata->>'correlation_id'), position);
