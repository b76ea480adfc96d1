-- The relay's chain: each message of the events topic names the log cursor of the message the relay
-- published before it to the same partition in the same epoch, so a projector notices a message the
-- broker lost before applying the next one (docs/architecture.md, "Kafka").

-- The log cursor of the last event published to the partition in the current epoch (NULL: none yet).
ALTER TABLE kafka_relay_partitions
    ADD COLUMN last_transaction_id XID8,
    ADD COLUMN last_position BIGINT;

-- Not exactly the next offset: the offset of the first message of the relay's last batch to the
-- partition, plus one. A broker that still has the batch reports a high watermark at least this high,
-- even one whose high watermark lags behind a multi-message produce request (tansu 0.6 does).
COMMENT ON COLUMN kafka_relay_partitions.next_offset IS
    'floor: first offset of the relay''s last batch to the partition + 1; a lower high watermark means the broker lost data';
