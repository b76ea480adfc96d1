-- Claims that stay cheap whatever the statistics say. A table analyzed while nearly empty and then
-- filled in a burst (a first import fanned out to endpoints) led the planner to a nested-loop
-- anti-join over every pending delivery of an endpoint for each one: minutes per claim at 40,000
-- pending (docs/benchmarks.md "Outbound webhooks"). The deliverer's claim now walks this index in
-- position order and checks each candidate's order key with one probe of webhook_deliveries_order;
-- the tables are analyzed sooner as they grow.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, position) WHERE status = 'pending';
ALTER TABLE webhook_deliveries SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000);

-- The automation worker's claim: the oldest pending run of a conversation.
CREATE INDEX automation_runs_conversation ON automation_runs (conversation_id, position) WHERE status = 'pending';
ALTER TABLE automation_runs SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000);
