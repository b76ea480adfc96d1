-- Tell the planner that stream ids are highly distinct (about 20 events per stream on average) without
-- waiting for ANALYZE: on a fast-growing, insert-only log the statistics lag behind, and with default
-- estimates stream reads were planned as bitmap or parallel scans of thousands of rows instead of an
-- index lookup of a few. A negative n_distinct is a fraction of the row count, so it stays right as
-- the table grows.
ALTER TABLE events ALTER COLUMN stream_id SET (n_distinct = -0.05);
ANALYZE events;
