-- pgbench script: the queue's claim and completion as raw SQL, ten jobs per transaction pair, the same statements
-- and indexes the JobQueue uses. This is the physical limit our code is compared with (bench/queue.sh).
WITH next AS (
    SELECT id FROM jobs
    WHERE state = 'pending' AND queue = 'pgbench' AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT 10
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET state = 'running', attempt = jobs.attempt + 1, attempted_at = now(),
    lease_owner = 'pgbench-' || pg_backend_pid(), lease_expires_at = now() + interval '30 seconds'
FROM next
WHERE jobs.id = next.id;
UPDATE jobs
SET state = 'completed', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL
WHERE state = 'running' AND lease_owner = 'pgbench-' || pg_backend_pid();
