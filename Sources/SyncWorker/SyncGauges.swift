import Foundation
import Logging
import Metrics
import PostgresNIO
import Shared
import Synchronization

/// The figures an operator watches about departments and cases, read from PostgreSQL every 30 seconds by each sync
/// worker (every replica reports the same values; dashboards and alerts take the maximum):
///
/// - `portal_sync_behind_seconds{department}`: how long the oldest change known to wait has waited (0 when caught up);
/// - `portal_sync_seconds_since_success{department}`: since the last request to the department that worked;
/// - `portal_sync_consecutive_failures{department}`: failed requests in a row (the circuit breaker opens at 5);
/// - `portal_sync_paused{department}`: 1 while an operator has paused it;
/// - `portal_cases_overdue`: open cases past their due date (Dutch time).
///
/// A department that is no longer connected reports 0, so it cannot keep an alert firing.
final class SyncGauges: Sendable {
    let database: PostgresClient
    let logger: Logger
    let factory: any MetricsFactory
    private let reported = Mutex<Set<String>>([])

    init(database: PostgresClient, logger: Logger, factory: any MetricsFactory = MetricsSystem.factory) {
        self.database = database
        self.logger = logger
        self.factory = factory
    }

    /// The `department` label of every sync metric: the id as the database and the `department` commands show it.
    static func label(_ department: UUID) -> (String, String) { ("department", department.uuidString.lowercased()) }

    var service: PeriodicWork { PeriodicWork(every: .seconds(30)) { await self.record() } }

    func record() async {
        do {
            let statuses = try await ConnectorStore().status(client: self.database, logger: self.logger)
            let now = Date()
            let present = Set(statuses.map { $0.departmentID.uuidString.lowercased() })
            let vanished = self.reported.withLock { reported in
                defer { reported = present }
                return reported.subtracting(present)
            }
            for status in statuses {
                self.record(
                    department: status.departmentID.uuidString.lowercased(), behind: status.lagSeconds,
                    sinceSuccess: status.lastSuccessAt.map { max(now.timeIntervalSince($0), 0) } ?? 0,
                    failures: status.consecutiveFailures, paused: status.paused)
            }
            for department in vanished { self.record(department: department, behind: 0, sinceSuccess: 0, failures: 0, paused: false) }
            let overdue =
                try await self.database.query(
                    """
                    SELECT count(*)::bigint FROM cases
                    WHERE NOT status_final AND due_date < (now() AT TIME ZONE 'Europe/Amsterdam')::date
                    """,
                    logger: self.logger
                ).decode(Int.self).first { _ in true } ?? 0
            Gauge(label: "portal_cases_overdue", factory: self.factory).record(overdue)
        } catch {
            self.logger.warning("reading the sync figures failed", metadata: ["error": "\(LoggableError.describe(error))"])
        }
    }

    private func record(department: String, behind: Double, sinceSuccess: Double, failures: Int, paused: Bool) {
        let dimensions = [("department", department)]
        Gauge(label: "portal_sync_behind_seconds", dimensions: dimensions, factory: self.factory).record(behind)
        Gauge(label: "portal_sync_seconds_since_success", dimensions: dimensions, factory: self.factory).record(sinceSuccess)
        Gauge(label: "portal_sync_consecutive_failures", dimensions: dimensions, factory: self.factory).record(failures)
        Gauge(label: "portal_sync_paused", dimensions: dimensions, factory: self.factory).record(paused ? 1 : 0)
    }
}
