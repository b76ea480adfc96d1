-- The scaled-out read side: the relay publishes the log to a Kafka topic, projectors consume it in a
-- consumer group (docs/architecture.md, "Kafka").

-- Checkpoints of the Kafka feed: one row per projector and partition of the events topic. A
-- workspace's events all go to one partition in log order, so "applied up to this cursor" per
-- partition is exact, whatever offsets the broker has (a redelivered or republished event is skipped).
CREATE TABLE projection_partition_checkpoints (
    projection     TEXT        NOT NULL,
    partition      INT         NOT NULL,
    -- The (transaction_id, position) log cursor of the last applied event of this partition.
    transaction_id XID8        NOT NULL DEFAULT '0',
    position       BIGINT      NOT NULL DEFAULT 0,
    -- The relay epoch of that event: the topic's generation. The relay bumps it when it finds the topic
    -- emptied (a broker that lost its data, a recreated topic) and republishes; a consumer that meets a
    -- newer epoch reads the partition again from its start.
    epoch          BIGINT      NOT NULL DEFAULT 0,
    events_applied BIGINT      NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

-- The relay's own checkpoint, one row per events topic.
CREATE TABLE kafka_relay (
    topic            TEXT        PRIMARY KEY,
    -- The log cursor of the last event the broker acknowledged.
    transaction_id   XID8        NOT NULL DEFAULT '0',
    position         BIGINT      NOT NULL DEFAULT 0,
    epoch            BIGINT      NOT NULL DEFAULT 1,
    events_published BIGINT      NOT NULL DEFAULT 0,
    -- How often the relay found the topic emptied and republished.
    republished      INT         NOT NULL DEFAULT 0,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Per partition, the offset the relay's next message gets (the high watermark as the relay left it).
-- A lower high watermark on the broker means the broker lost the partition's messages.
CREATE TABLE kafka_relay_partitions (
    topic       TEXT   NOT NULL,
    partition   INT    NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
