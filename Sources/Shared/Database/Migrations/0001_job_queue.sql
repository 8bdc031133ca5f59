-- 0001: the job queue.
--
-- One table holds every job of every queue. A job's life is described in docs/JOBS.md; in short:
--   pending -> running -> completed | pending (retry, snooze, rescue, release) | dead
--   pending -> cancelled
-- "Scheduled" and "retrying" are not states of their own: they are pending jobs whose run_at lies ahead.

CREATE TYPE job_state AS ENUM ('pending', 'running', 'completed', 'cancelled', 'dead');

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text        NOT NULL CHECK (queue <> ''),
    kind             text        NOT NULL CHECK (kind <> ''),
    payload          jsonb       NOT NULL DEFAULT '{}',
    state            job_state   NOT NULL DEFAULT 'pending',
    -- Higher runs first; among equal priorities the job that was due first runs first.
    priority         smallint    NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    -- Attempts started so far. A claim increments it; a snooze or a graceful release gives it back.
    attempt          integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    -- At most one pending or running job per key (see jobs_unique_key below).
    unique_key       text,
    -- Who holds a running job, and until when. Every state change of a running job is fenced on
    -- (id, attempt, lease_owner), so a worker that was presumed dead cannot overwrite what the rescuer did.
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    finished_at      timestamptz,
    last_error       text,
    trace_id         text,
    CONSTRAINT jobs_running_has_lease
        CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_finished_has_time
        CHECK ((state IN ('completed', 'cancelled', 'dead')) = (finished_at IS NOT NULL))
);

-- The claim query walks this index in order: only runnable rows are in it, so it stays small however many
-- finished jobs the table holds until they are pruned.
CREATE INDEX jobs_claim_order ON jobs (queue, priority DESC, run_at, id) WHERE state = 'pending';

-- Uniqueness covers pending and running jobs: a duplicate enqueued while the original waits or runs is a no-op.
-- Once the original has finished, the same key may be enqueued again (the next pull, the next time slot).
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'running');

-- The rescuer looks for running jobs whose lease has expired.
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE state = 'running';

-- Retention prunes finished jobs by age.
CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
