-- Rate-limit counters shared by every gateway process on this database (issue 12, item 1).
--
-- One row per (bucket, fixed window): a bucket is what is limited ("source:203.0.113.7",
-- "app:app_x", "person:330...", "estimate-person:330..."), window_start the number of
-- the window (unix seconds / window length). One upsert per request adds its cost to
-- every bucket it falls in and returns the new counts.
--
-- UNLOGGED: counters are worth less than the WAL and the commit flush they would cost on
-- every request. A crash of the database server empties the table (limits start afresh,
-- for at most one window); a replica does not see it, which is right, since only the
-- primary counts.
CREATE UNLOGGED TABLE rate_limit_counters (
    bucket       text   NOT NULL CHECK (length(bucket) BETWEEN 1 AND 200),
    window_start bigint NOT NULL,
    hits         integer NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (bucket, window_start)
);
