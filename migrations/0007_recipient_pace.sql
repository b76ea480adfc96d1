-- Pacing each recipient: campaign messages to one contact on one channel go out some seconds apart
-- (BLAZZ_RECIPIENT_PACE_SECS), shared by every dispatcher.

-- Projection `outbox`: the recipient of each queued message (NULL for rows queued before this column).
ALTER TABLE dispatch_queue ADD COLUMN contact_id UUID;

-- The earliest time the next campaign message may go to a recipient on a channel (not a projection:
-- operational state, like dispatch_rate).
CREATE TABLE dispatch_pace (
    channel_id UUID        NOT NULL,
    contact_id UUID        NOT NULL,
    next_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, contact_id)
);
