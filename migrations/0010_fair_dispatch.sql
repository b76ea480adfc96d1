-- Fair dispatch: dispatchers take each channel's due messages separately (at most a second's worth
-- per channel per round, round-robin over channels), so a backlog on one channel never crowds out
-- another's. This index serves the per-channel lookup.
CREATE INDEX dispatch_queue_channel_due ON dispatch_queue (channel_id, due_at);
