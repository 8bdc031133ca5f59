public import CoreMetrics
import Foundation
public import Logging
public import PostgresNIO

/// How much of its connection pool a process uses, as PostgreSQL sees it: the connections named with the process's
/// `application_name`, by state. PostgresNIO keeps its pool's figures to itself, and the server's view is the one
/// that matters for `max_connections` anyway.
///
/// - `portal_database_connections{state}`: `active` (running a statement), `idle_in_transaction` (holding a
///   transaction open, e.g. a job's or an upload's), `idle`, or `other`;
/// - `portal_database_connections_max`: `PORTAL_DATABASE_MAX_CONNECTIONS`.
///
/// The reading itself takes one of the pool's connections for a moment, and shows as `active`.
public struct DatabaseGauges: Sendable {
    let client: PostgresClient
    let applicationName: String
    let maximum: Int
    let factory: any MetricsFactory
    let logger: Logger

    public init(client: PostgresClient, applicationName: String, maximum: Int, factory: any MetricsFactory, logger: Logger) {
        self.client = client
        self.applicationName = applicationName
        self.maximum = maximum
        self.factory = factory
        self.logger = logger
    }

    static let states = ["active", "idle", "idle_in_transaction", "other"]

    /// Reads and records the figures; a failed reading is logged and the gauges keep their last values.
    public func record() async {
        do {
            let counts = try await self.read()
            for state in Self.states {
                Gauge(label: "portal_database_connections", dimensions: [("state", state)], factory: self.factory)
                    .record(counts[state, default: 0])
            }
            Gauge(label: "portal_database_connections_max", factory: self.factory).record(self.maximum)
        } catch {
            self.logger.warning("reading the database connection figures failed", metadata: ["error": "\(LoggableError.describe(error))"])
        }
    }

    /// This process's connections by state.
    public func read() async throws -> [String: Int] {
        let rows = try await self.client.query(
            """
            SELECT CASE WHEN state IN ('active', 'idle') THEN state
                        WHEN state LIKE 'idle in transaction%' THEN 'idle_in_transaction'
                        ELSE 'other' END, count(*)::bigint
            FROM pg_stat_activity WHERE application_name = \(self.applicationName) GROUP BY 1
            """,
            logger: self.logger)
        var counts: [String: Int] = [:]
        for try await (state, count) in rows.decode((String, Int).self) { counts[state] = count }
        return counts
    }
}
