-- The relay's chain: each message of the events topic names the log cursor of the message the relay
-- published before it to the same partition in the same epoch, so a projector notices a message the
-- broker lost before applying the next one (docs/architecture.md, "Kafka").

-- The log cursor of the last event published to the partition in the current epoch (NULL: none yet).
ALTER TABLE kafka_relay_partitions
    ADD COLUMN last_transaction_id XID8,
    ADD COLUMN last_position BIGINT;
