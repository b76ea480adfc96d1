-- A queue row says which of its message's events it reflects (`version`: the stream version of the
-- last event the `outbox` projector applied to it). Dispatchers pass over a row whose message has a
-- later event (other than `message.billed`, which never changes the row): the row is stale, the
-- projector has not caught up yet. Before this, a dispatcher remembered for 30 s what it had handled;
-- when the projectors lagged longer (a 100k campaign at 1,000/s), it walked sent messages again.
ALTER TABLE dispatch_queue ADD COLUMN version BIGINT;

-- Rows of before: the message's latest event. Where the projector lagged at shutdown, such a row
-- may be picked once more and skipped (the dispatcher reads the message) until the projector
-- catches up; it is never sent twice (the append of `message.dispatched` checks the version).
UPDATE dispatch_queue q SET version = (
    SELECT max(e.stream_version) FROM events e
    WHERE e.stream_id = 'message-' || q.message_id AND e.event_type <> 'message.billed'
);
