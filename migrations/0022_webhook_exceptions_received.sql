-- The operations page counts the last hour's webhook exceptions.
CREATE INDEX webhook_exceptions_received ON webhook_exceptions (received_at);
