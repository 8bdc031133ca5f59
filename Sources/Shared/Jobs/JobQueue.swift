public import Foundation
public import Logging
public import PostgresNIO

/// Every statement on the `jobs` table. Each operation is one statement; every state change of a running job is
/// fenced on (id, attempt, lease owner), so it succeeds only for the attempt that claimed the job.
///
/// Enqueueing takes the caller's connection, so a job becomes visible only if the caller's transaction commits.
/// The same statement sends ONE `NOTIFY portal_jobs, '<queue>'` per queue that received runnable jobs (PostgreSQL
/// delivers notifications at commit, and not at all on rollback); there is no trigger and no per-row notify.
public struct JobQueue: Sendable {
    /// The LISTEN/NOTIFY channel; the payload is the queue name.
    public static let notificationChannel = "portal_jobs"

    public let client: PostgresClient
    private let logger: Logger

    /// A `woken` CTE that sends one NOTIFY per distinct queue among the rows of CTE `rows` that satisfy
    /// `condition`. PostgreSQL keeps volatile calls in an unreferenced subquery's select list, and each statement
    /// selects `FROM <rows>, woken`, so the CTE runs exactly once. Both arguments are constants of this file.
    private static func wakeQueues(of rows: String, where condition: String) -> String {
        """
        woken AS (
            SELECT count(*) AS queues
            FROM (SELECT pg_notify('\(Self.notificationChannel)', queue)
                  FROM (SELECT DISTINCT queue FROM \(rows) WHERE \(condition)) AS runnable) AS notified
        )
        """
    }

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // MARK: Enqueue

    /// Enqueues one job in the caller's transaction.
    public func enqueue(_ job: NewJob, on connection: PostgresConnection) async throws -> EnqueueResult {
        try await self.enqueue([job], on: connection)[0]
    }

    /// Enqueues one job in a transaction of its own.
    @discardableResult
    public func enqueue(_ job: NewJob) async throws -> EnqueueResult {
        try await self.client.withConnection { try await self.enqueue(job, on: $0) }
    }

    /// Enqueues many jobs with one multi-row insert in the caller's transaction; the results are in input order.
    public func enqueue(_ jobs: [NewJob], on connection: PostgresConnection) async throws -> [EnqueueResult] {
        guard !jobs.isEmpty else { return [] }
        // Arrays cannot hold NULL through PostgresNIO's encoders, so "now" travels as a flag beside the date.
        let runAt = jobs.map { $0.runAt ?? Date(timeIntervalSince1970: 0) }
        let runNow = jobs.map { $0.runAt == nil }
        let query: PostgresQuery = """
            WITH inserted AS (
                INSERT INTO jobs (queue, kind, payload, priority, run_at, max_attempts, unique_key, trace_id)
                SELECT queue, kind, payload::jsonb, priority, CASE WHEN run_now THEN now() ELSE run_at END,
                       max_attempts, nullif(unique_key, ''), nullif(trace_id, '')
                FROM unnest(\(jobs.map(\.queue)), \(jobs.map(\.kind)), \(jobs.map(\.payload)),
                            \(jobs.map(\.priority)), \(runAt), \(runNow), \(jobs.map { Int32($0.maxAttempts) }),
                            \(jobs.map { $0.uniqueKey ?? "" }), \(jobs.map { $0.traceID ?? "" }))
                     WITH ORDINALITY AS input(queue, kind, payload, priority, run_at, run_now, max_attempts, unique_key, trace_id, position)
                ORDER BY position
                ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('pending', 'running') DO NOTHING
                RETURNING id, queue, run_at, unique_key
            ), \(unescaped: Self.wakeQueues(of: "inserted", where: "run_at <= now()"))
            SELECT inserted.id, inserted.unique_key FROM inserted, woken ORDER BY inserted.id
            """
        var inserted: [(JobID, String?)] = []
        for try await (id, key) in try await connection.query(query, logger: self.logger).decode((Int64, String?).self) {
            inserted.append((JobID(rawValue: id), key))
        }
        // Identity values are drawn in insertion order, so the inserted rows, sorted by id, line up with the inputs
        // that were not duplicates.
        var next = inserted.makeIterator()
        var pending = next.next()
        return jobs.map { job in
            if let key = job.uniqueKey, !key.isEmpty, pending?.1 != key {
                return .duplicate(uniqueKey: key)
            }
            guard let (id, _) = pending else { return .duplicate(uniqueKey: job.uniqueKey ?? "") }
            pending = next.next()
            return .enqueued(id)
        }
    }

    // MARK: Claim and finish

    /// Claims up to `limit` runnable jobs of `queue` in one statement, highest priority and longest due first.
    /// Rows locked by a concurrent claim are skipped, not waited for.
    public func claim(queue: String, limit: Int, owner: String, lease: Duration) async throws -> [ClaimedJob] {
        guard limit > 0 else { return [] }
        let query: PostgresQuery = """
            WITH next AS (
                SELECT id FROM jobs
                WHERE state = 'pending' AND queue = \(queue) AND run_at <= now()
                ORDER BY priority DESC, run_at, id
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE jobs
            SET state = 'running', attempt = jobs.attempt + 1, attempted_at = now(),
                lease_owner = \(owner), lease_expires_at = now() + make_interval(secs => \(lease.seconds))
            FROM next
            WHERE jobs.id = next.id
            RETURNING jobs.id, jobs.kind, jobs.payload::text, jobs.attempt, jobs.max_attempts, jobs.created_at,
                      extract(epoch FROM now() - jobs.run_at)::float8, jobs.trace_id
            """
        var claimed: [ClaimedJob] = []
        let rows = try await self.client.query(query, logger: self.logger)
        for try await (id, kind, payload, attempt, maxAttempts, createdAt, delay, traceID) in rows.decode(
            (Int64, String, String, Int, Int, Date, Double, String?).self)
        {
            claimed.append(
                ClaimedJob(
                    id: JobID(rawValue: id), queue: queue, kind: kind, payload: payload, attempt: attempt,
                    maxAttempts: maxAttempts, leaseOwner: owner, createdAt: createdAt,
                    startDelay: .milliseconds(Int64(max(delay, 0) * 1000)),
                    traceID: traceID ?? TraceContext.newTraceID()
                )
            )
        }
        return claimed
    }

    /// Marks claimed jobs completed. Returns the ids whose completion was refused because the attempt no longer
    /// holds the lease (the rescuer returned the job to the queue, and another attempt may be running).
    public func complete(_ jobs: [ClaimedJob]) async throws -> Set<JobID> {
        guard let owner = jobs.first?.leaseOwner else { return [] }
        let completed = try await self.updateHeld(
            jobs.map(\.fence),
            owner: owner,
            set: "state = 'completed', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL"
        )
        return Set(jobs.map(\.id)).subtracting(completed.map(\.id))
    }

    /// Records a failed attempt: back to `pending` after `retryAfter`, or `dead` when `giveUp` is set or the job
    /// has no attempts left. Returns the new state, or `nil` when the attempt no longer holds the lease.
    public func fail(_ job: ClaimedJob, error: String, retryAfter: Duration, giveUp: Bool) async throws -> JobState? {
        // The fence must be in the UPDATE's own WHERE clause: when the row changed while this statement waited for
        // its lock, PostgreSQL re-checks only that clause against the new row version.
        let query: PostgresQuery = """
            UPDATE jobs
            SET state = CASE WHEN \(giveUp) OR jobs.attempt >= jobs.max_attempts THEN 'dead'::job_state ELSE 'pending'::job_state END,
                run_at = CASE WHEN \(giveUp) OR jobs.attempt >= jobs.max_attempts THEN jobs.run_at
                              ELSE now() + make_interval(secs => \(retryAfter.seconds)) END,
                finished_at = CASE WHEN \(giveUp) OR jobs.attempt >= jobs.max_attempts THEN now() END,
                last_error = \(String(error.prefix(4000))), lease_owner = NULL, lease_expires_at = NULL
            WHERE id = \(job.id.rawValue) AND attempt = \(job.attempt) AND lease_owner = \(job.leaseOwner)
              AND state = 'running'
            RETURNING jobs.state::text
            """
        return try await self.client.query(query, logger: self.logger).decode(String.self).first { _ in true }
            .flatMap(JobState.init(rawValue:))
    }

    /// Puts a claimed job back to run after `delay` without spending its attempt. False when the lease was lost.
    public func snooze(_ job: ClaimedJob, for delay: Duration) async throws -> Bool {
        try await !self.giveBack([job], after: delay).isEmpty
    }

    /// Returns claimed jobs to the queue at once without spending their attempts (graceful shutdown). Returns the
    /// ids that were released; the others had already lost their lease.
    @discardableResult
    public func release(_ jobs: [ClaimedJob]) async throws -> Set<JobID> {
        try await self.giveBack(jobs, after: .zero)
    }

    private func giveBack(_ jobs: [ClaimedJob], after delay: Duration) async throws -> Set<JobID> {
        guard let owner = jobs.first?.leaseOwner else { return [] }
        let given = try await self.updateHeld(
            jobs.map(\.fence),
            owner: owner,
            set: "state = 'pending', attempt = jobs.attempt - 1, run_at = now() + held.delay, lease_owner = NULL, lease_expires_at = NULL",
            delay: delay
        )
        return Set(given.map(\.id))
    }

    // MARK: Leases

    /// Extends the leases of running attempts held by `owner` (the heartbeat). Returns the attempts still held;
    /// any attempt missing from the answer has lost its lease and its handler should stop.
    ///
    /// Like every multi-row fenced update here, it locks rows in id order, so it cannot deadlock with a batch of
    /// completions over the same jobs.
    public func extendLeases(of attempts: [JobAttempt], owner: String, lease: Duration) async throws -> Set<JobAttempt> {
        try await self.updateHeld(attempts, owner: owner, set: "lease_expires_at = now() + held.delay", delay: lease)
    }

    /// The one fenced multi-row update: applies `assignments` (a constant `SET` list of this file, which may use
    /// `held.delay`) to those of `attempts` that `owner` still holds, and returns the attempts it changed.
    ///
    /// The rows are locked in id order before they are changed, so completions, releases and heartbeats over the
    /// same jobs never deadlock; the fence is checked on the locked rows and again in the UPDATE's own WHERE
    /// clause. Jobs that became runnable wake their queue.
    private func updateHeld(
        _ attempts: [JobAttempt], owner: String, set assignments: String, delay: Duration = .zero
    ) async throws
        -> Set<JobAttempt>
    {
        guard !attempts.isEmpty else { return [] }
        let query: PostgresQuery = """
            WITH held AS (
                SELECT jobs.id, jobs.attempt, make_interval(secs => \(delay.seconds)) AS delay FROM jobs
                JOIN unnest(\(attempts.map(\.id.rawValue)), \(attempts.map { Int32($0.attempt) })) AS mine(id, attempt)
                  ON jobs.id = mine.id AND jobs.attempt = mine.attempt
                WHERE jobs.lease_owner = \(owner) AND jobs.state = 'running'
                ORDER BY jobs.id
                FOR UPDATE OF jobs
            ), updated AS (
                UPDATE jobs SET \(unescaped: assignments)
                FROM held
                WHERE jobs.id = held.id AND jobs.attempt = held.attempt AND jobs.lease_owner = \(owner) AND jobs.state = 'running'
                RETURNING jobs.id, held.attempt, jobs.queue, jobs.state, jobs.run_at
            ), \(unescaped: Self.wakeQueues(of: "updated", where: "state = 'pending' AND run_at <= now()"))
            SELECT updated.id, updated.attempt FROM updated, woken
            """
        var updated = Set<JobAttempt>()
        for try await (id, attempt) in try await self.client.query(query, logger: self.logger).decode((Int64, Int).self) {
            updated.insert(JobAttempt(id: JobID(rawValue: id), attempt: attempt))
        }
        return updated
    }

    /// A job the rescuer took back from a worker that stopped sending heartbeats.
    public struct RescuedJob: Sendable, Equatable {
        public let id: JobID
        public let queue: String
        public let kind: String
        /// `pending` when it will run again, `dead` when that was its last attempt.
        public let state: JobState
    }

    /// Returns running jobs whose lease expired to the queue (or to `dead` when they have no attempts left). The
    /// attempt stays counted: the process may have died because of the job. Safe to run from any number of
    /// processes at once.
    public func rescueExpired(limit: Int = 1000) async throws -> [RescuedJob] {
        let query: PostgresQuery = """
            WITH expired AS (
                SELECT id FROM jobs
                WHERE state = 'running' AND lease_expires_at < now()
                ORDER BY lease_expires_at
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), rescued AS (
                UPDATE jobs
                SET state = CASE WHEN jobs.attempt >= jobs.max_attempts THEN 'dead'::job_state ELSE 'pending'::job_state END,
                    finished_at = CASE WHEN jobs.attempt >= jobs.max_attempts THEN now() END,
                    run_at = now(),
                    last_error = 'lease expired: worker ' || jobs.lease_owner || ' stopped sending heartbeats',
                    lease_owner = NULL, lease_expires_at = NULL
                FROM expired
                WHERE jobs.id = expired.id
                RETURNING jobs.id, jobs.queue, jobs.kind, jobs.state
            ), \(unescaped: Self.wakeQueues(of: "rescued", where: "state = 'pending'"))
            SELECT rescued.id, rescued.queue, rescued.kind, rescued.state::text FROM rescued, woken
            """
        var rescued: [RescuedJob] = []
        let rows = try await self.client.query(query, logger: self.logger)
        for try await (id, queue, kind, state) in rows.decode((Int64, String, String, String).self) {
            rescued.append(RescuedJob(id: JobID(rawValue: id), queue: queue, kind: kind, state: JobState(rawValue: state) ?? .pending))
        }
        return rescued
    }

    // MARK: Operators and housekeeping

    /// Cancels a pending job. False when the job does not exist or is no longer pending.
    public func cancel(_ id: JobID) async throws -> Bool {
        let rows = try await self.client.query(
            "UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = \(id.rawValue) AND state = 'pending' RETURNING id",
            logger: self.logger
        )
        return try await rows.decode(Int64.self).first { _ in true } != nil
    }

    /// Runs a dead job again, or a waiting one now, with a fresh set of attempts (`PortalAPI jobs retry`). False when
    /// the job does not exist, is running or finished, or another job with its unique key waits or runs.
    public func retry(_ id: JobID) async throws -> Bool {
        let rows = try await self.client.query(
            """
            UPDATE jobs SET state = 'pending', run_at = now(), attempt = 0, finished_at = NULL
            WHERE id = \(id.rawValue) AND (state = 'dead' OR state = 'pending')
              AND (unique_key IS NULL OR state = 'pending'
                   OR NOT EXISTS (SELECT 1 FROM jobs other WHERE other.unique_key = jobs.unique_key AND other.state IN ('pending', 'running')))
            RETURNING id
            """,
            logger: self.logger
        )
        return try await rows.decode(Int64.self).first { _ in true } != nil
    }

    /// Jobs as an operator looks for them: newest first, filtered by queue, state and kind (`PortalAPI jobs list`).
    /// `scheduled` is a pending job whose time has not come.
    public func list(queue: String?, state: String?, kind: String?, limit: Int) async throws -> [JobSnapshot] {
        let query: PostgresQuery = """
            SELECT id, queue, kind, state::text, attempt, max_attempts, run_at, lease_owner, last_error, unique_key, created_at,
                   payload::text, trace_id
            FROM jobs
            WHERE (\(queue)::text IS NULL OR queue = \(queue))
              AND (\(kind)::text IS NULL OR kind = \(kind))
              AND (\(state)::text IS NULL
                   OR (\(state) = 'scheduled' AND state = 'pending' AND run_at > now())
                   OR (\(state) = 'available' AND state = 'pending' AND run_at <= now())
                   OR state::text = \(state))
            ORDER BY id DESC LIMIT \(limit)
            """
        return try await self.snapshots(query)
    }

    private func snapshots(_ query: PostgresQuery) async throws -> [JobSnapshot] {
        var result: [JobSnapshot] = []
        let rows = try await self.client.query(query, logger: self.logger)
        for try await row in rows {
            let (id, queue, kind, state, attempt, maxAttempts, runAt, owner, lastError, uniqueKey, createdAt, payload, traceID) =
                try row.decode((Int64, String, String, String, Int, Int, Date, String?, String?, String?, Date, String, String?).self)
            result.append(
                JobSnapshot(
                    id: JobID(rawValue: id), queue: queue, kind: kind, state: JobState(rawValue: state) ?? .pending,
                    attempt: attempt, maxAttempts: maxAttempts, runAt: runAt, leaseOwner: owner, lastError: lastError,
                    uniqueKey: uniqueKey, createdAt: createdAt, payload: payload, traceID: traceID))
        }
        return result
    }

    /// Deletes up to `limit` finished jobs older than their retention: completed and cancelled ones after
    /// `finishedRetention`, dead ones after `deadRetention`. Returns how many it deleted.
    public func prune(finishedRetention: Duration, deadRetention: Duration, limit: Int = 10_000) async throws -> Int {
        let query: PostgresQuery = """
            WITH doomed AS (
                SELECT id FROM jobs
                WHERE (state IN ('completed', 'cancelled') AND finished_at < now() - make_interval(secs => \(finishedRetention.seconds)))
                   OR (state = 'dead' AND finished_at < now() - make_interval(secs => \(deadRetention.seconds)))
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            )
            DELETE FROM jobs USING doomed WHERE jobs.id = doomed.id RETURNING jobs.id
            """
        var count = 0
        for try await _ in try await self.client.query(query, logger: self.logger) { count += 1 }
        return count
    }

    /// How many jobs each queue holds per state, and how long its oldest runnable job has waited.
    public func depth() async throws -> [QueueDepth] {
        let query: PostgresQuery = """
            SELECT queue,
                   count(*) FILTER (WHERE state = 'pending' AND run_at <= now()),
                   count(*) FILTER (WHERE state = 'pending' AND run_at > now()),
                   count(*) FILTER (WHERE state = 'running'),
                   count(*) FILTER (WHERE state = 'dead'),
                   coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'pending' AND run_at <= now())), 0)::float8
            FROM jobs
            WHERE state IN ('pending', 'running', 'dead')
            GROUP BY queue
            ORDER BY queue
            """
        var result: [QueueDepth] = []
        let rows = try await self.client.query(query, logger: self.logger)
        for try await (queue, available, scheduled, running, dead, oldest) in rows.decode((String, Int, Int, Int, Int, Double).self) {
            result.append(
                QueueDepth(
                    queue: queue, available: available, scheduled: scheduled, running: running, dead: dead, oldestAvailableSeconds: oldest)
            )
        }
        return result
    }

    /// One job as an operator sees it.
    public func job(_ id: JobID) async throws -> JobSnapshot? {
        try await self.snapshots(
            """
            SELECT id, queue, kind, state::text, attempt, max_attempts, run_at, lease_owner, last_error, unique_key, created_at,
                   payload::text, trace_id
            FROM jobs WHERE id = \(id.rawValue)
            """
        ).first
    }
}

/// The states of the `job_state` enum; see docs/JOBS.md for the diagram.
public enum JobState: String, Sendable, CaseIterable {
    case pending, running, completed, cancelled, dead
}

/// The size of one queue.
public struct QueueDepth: Sendable, Equatable {
    public let queue: String
    /// Pending and due now.
    public let available: Int
    /// Pending with a future `run_at` (scheduled, or waiting to retry).
    public let scheduled: Int
    public let running: Int
    public let dead: Int
    public let oldestAvailableSeconds: Double
}

/// One job's row.
public struct JobSnapshot: Sendable {
    public let id: JobID
    public let queue: String
    public let kind: String
    public let state: JobState
    public let attempt: Int
    public let maxAttempts: Int
    public let runAt: Date
    public let leaseOwner: String?
    public let lastError: String?
    public let uniqueKey: String?
    public let createdAt: Date
    /// The payload as stored (ids and URLs; never a BSN or a message body).
    public let payload: String
    public let traceID: String?
}
