import Foundation
import Logging
import Metrics
import PostgresNIO
import Shared

/// Who may send a request to a department, and when: pause, circuit breaker, concurrency and rate, all kept in
/// PostgreSQL (`department_sync`, `department_request_slots`), so the limits hold over every sync worker together
/// and survive their crashes. A job that may not send now gets a ``JobSnooze`` with how long to wait, so it gives
/// its worker back to other departments' jobs instead of holding it.
struct DepartmentGate: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Consecutive failures that open the circuit breaker.
    static let failuresToOpen = 5
    /// How long a paused department's jobs wait before they look again.
    static let pausedWait: Duration = .seconds(30)

    /// A taken request slot; give it back with ``release(_:)``.
    struct Permit: Sendable {
        let departmentID: UUID
        let slot: Int
        let holder: UUID
    }

    /// Waits up to this long inside a request for a token or a slot; a longer wait snoozes the job instead, so a
    /// job's later requests do not start it over for every short wait.
    static let longestInlineWait: Duration = .seconds(2)

    /// ``admit(_:lease:)``, waiting out short waits in place.
    func admitWaiting(_ connector: Connector, lease: Duration) async throws -> Permit {
        while true {
            do {
                return try await self.admit(connector, lease: lease)
            } catch let snooze as JobSnooze where snooze.delay <= Self.longestInlineWait {
                try await Task.sleep(for: snooze.delay)
            }
        }
    }

    /// Takes a request slot and a token for `connector`'s department, or throws ``JobSnooze``. The slot's lease lasts
    /// `lease` (a worker that dies holding it frees it then).
    func admit(_ connector: Connector, lease: Duration) async throws -> Permit {
        let id = connector.departmentID
        let burst = max(1, connector.maxPerSecond)
        let outcome = try await self.client.transaction(logger: self.logger) { connection -> Result<Permit, JobSnooze> in
            let rows = try await connection.query(
                """
                SELECT c.paused_at IS NOT NULL,
                       greatest(extract(epoch FROM s.open_until - clock_timestamp()), 0)::float8,
                       least(\(burst), s.tokens + extract(epoch FROM clock_timestamp() - s.tokens_at) * c.max_per_second)::float8
                FROM department_sync s JOIN department_connectors c ON c.department_id = s.department_id
                WHERE s.department_id = \(id)
                FOR UPDATE OF s
                """,
                logger: self.logger
            )
            guard let (paused, openFor, available) = try await rows.decode((Bool, Double, Double).self).first(where: { _ in true }) else {
                throw ConnectorError.noConnector
            }
            if paused { return .failure(JobSnooze(for: Self.pausedWait)) }
            if openFor > 0 { return .failure(JobSnooze(for: .milliseconds(Int64(openFor * 1000) + 1))) }
            if available < 1 {
                return .failure(JobSnooze(for: .milliseconds(Int64((1 - available) / connector.maxPerSecond * 1000) + 1)))
            }
            let holder = UUID()
            let slots = try await connection.query(
                """
                UPDATE department_request_slots
                SET lease_until = clock_timestamp() + \(lease.seconds) * interval '1 second', holder = \(holder)
                WHERE (department_id, slot) = (
                    SELECT department_id, slot FROM department_request_slots
                    WHERE department_id = \(id) AND lease_until < clock_timestamp()
                    ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING slot
                """,
                logger: self.logger
            )
            guard let slot = try await slots.decode(Int.self).first(where: { _ in true }) else {
                // Every slot is busy: a request takes a fraction of a second, so look again soon.
                return .failure(JobSnooze(for: .milliseconds(Int64.random(in: 50...250))))
            }
            try await connection.query(
                "UPDATE department_sync SET tokens = \(available - 1), tokens_at = clock_timestamp() WHERE department_id = \(id)",
                logger: self.logger
            )
            return .success(Permit(departmentID: id, slot: slot, holder: holder))
        }
        return try outcome.get()
    }

    func release(_ permit: Permit) async {
        do {
            try await self.client.query(
                """
                UPDATE department_request_slots SET lease_until = '-infinity', holder = NULL
                WHERE department_id = \(permit.departmentID) AND slot = \(permit.slot) AND holder = \(permit.holder)
                """,
                logger: self.logger
            )
        } catch {
            // The lease runs out by itself.
            self.logger.warning("a request slot was not given back; its lease frees it", metadata: ["error": "\(error)"])
        }
    }

    /// Records a successful exchange: the breaker closes.
    func succeeded(_ departmentID: UUID, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            UPDATE department_sync SET last_success_at = now(), consecutive_failures = 0, open_until = NULL
            WHERE department_id = \(departmentID)
            """,
            logger: self.logger
        )
    }

    /// Records a failed exchange, counts and logs it, and returns the snooze that backs the job off: a job is not
    /// failed for its department's trouble, so an outage uses up no attempts.
    func backOff(_ departmentID: UUID, after error: SyncError, logger: Logger) async throws -> JobSnooze {
        let wait = try await self.failed(departmentID, error: error.description)
        Counter(label: "portal_sync_failures_total", dimensions: [SyncGauges.label(departmentID)]).increment()
        logger.warning(
            "a request to the department failed; it is tried again", metadata: ["error": "\(error)", "portal.sync.retry_in": "\(wait)"])
        return JobSnooze(for: wait)
    }

    /// Records a failed exchange and returns how long the department's jobs should wait: the retry backoff, or,
    /// after ``failuresToOpen`` failures in a row, the breaker's open time (10 s, doubling with each failed probe after
    /// it, to ten minutes). While the breaker is open, the failures of requests that were already under way when it
    /// opened neither count nor lengthen it: one outage of a department with many requests in flight must not open
    /// its breaker for ten minutes.
    func failed(_ departmentID: UUID, error: String) async throws -> Duration {
        let rows = try await self.client.query(
            """
            WITH before AS (
                -- Only to say whether this failure opened the breaker (for the log line): a snapshot read suffices.
                SELECT coalesce(open_until > now(), false) AS open FROM department_sync WHERE department_id = \(departmentID)
            )
            UPDATE department_sync
            SET consecutive_failures = CASE WHEN open_until > now() THEN consecutive_failures ELSE consecutive_failures + 1 END,
                last_failure_at = now(), last_error = left(\(error), 1000),
                open_until = CASE
                    WHEN open_until > now() THEN open_until
                    WHEN consecutive_failures + 1 >= \(Self.failuresToOpen)
                    THEN now() + least(10 * power(2, consecutive_failures + 1 - \(Self.failuresToOpen)), 600) * interval '1 second'
                    END
            WHERE department_id = \(departmentID)
            RETURNING consecutive_failures, coalesce(extract(epoch FROM open_until - now()), 0)::float8,
                      coalesce((SELECT open FROM before), false)
            """,
            logger: self.logger
        )
        let (failures, openFor, wasOpen) = try await rows.decode((Int, Double, Bool).self).first { _ in true } ?? (1, 0, false)
        if openFor > 0 {
            if !wasOpen {
                self.logger.error(
                    "department unreachable or failing: its requests are held back (circuit breaker open)",
                    metadata: ["portal.department.id": "\(departmentID)", "portal.sync.failures": "\(failures)"])
            }
            return .milliseconds(Int64(openFor * 1000) + 1)
        }
        return RetryPolicy(base: .seconds(1), maximum: .seconds(30)).delay(afterAttempt: failures)
    }
}
