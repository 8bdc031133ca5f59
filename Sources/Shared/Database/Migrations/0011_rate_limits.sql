-- 0011: rate limits (docs/SECURITY.md, "Rate limits"). One row per limited key (a hash of what is limited: a
-- client address for logins, a department for its requests) and its current fixed window. Every API replica counts in
-- the same row, so a limit holds for the whole deployment, however many replicas there are.
--
-- UNLOGGED: a counter is not worth a WAL record per request. After a crash of PostgreSQL the table is empty, and every
-- window starts again: at worst one extra window of attempts.
CREATE UNLOGGED TABLE rate_limits (
    key bytea PRIMARY KEY,
    resets_at timestamptz NOT NULL,
    hits integer NOT NULL
);
