import Foundation
import Logging
import PostgresNIO
import Prometheus
import Testing

@testable import Shared
@testable import SyncWorker

/// The figures an operator watches that no request or job counts on its own: read from PostgreSQL.
@Suite("Observability")
struct ObservabilityTests {
    /// The value of the sample `name{labels}` in `registry`'s output, labels in any order.
    static func sample(_ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [String: String] = [:]) -> Double? {
        for line in registry.emitToString().split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            let labelText = line.drop(while: { $0 != "{" }).prefix(while: { $0 != "}" })
            if labels.allSatisfy({ labelText.contains("\($0.key)=\"\($0.value)\"") }) {
                return line.split(separator: " ").last.flatMap { Double($0) }
            }
        }
        return nil
    }

    @Test("a process reports its own connections as PostgreSQL sees them: one holding a transaction shows as idle in transaction")
    func databaseConnections() async throws {
        try await TestDatabase.with { database async throws in
            let configuration = PortalConfiguration(database: database.settings, httpPort: 0, publicURL: URL(string: APIHarness.publicURL)!)
            let process = PortalProcess(name: "Probe", configuration: configuration, logger: database.logger)
            let registry = PrometheusCollectorRegistry()
            let gauges = DatabaseGauges(
                client: process.database, applicationName: process.applicationName, maximum: 7,
                factory: PrometheusMetricsFactory(registry: registry), logger: database.logger)
            try await process.database.whileRunning {
                try await process.database.withTransaction(logger: database.logger) { connection in
                    try await connection.query("SELECT 1", logger: database.logger)
                    await gauges.record()
                }
            }
            #expect(Self.sample(registry, "portal_database_connections", ["state": "idle_in_transaction"]) == 1)
            #expect(Self.sample(registry, "portal_database_connections", ["state": "active"]) == 1, "the reading itself")
            #expect(Self.sample(registry, "portal_database_connections_max") == 7)
            // Another process's connections (the test database's own client) are not counted.
            #expect(process.applicationName.hasPrefix("Probe/") && process.applicationName.utf8.count <= 63)
        }
    }

    @Test("the sync worker reports each department's lag, failures and pause, and the overdue cases; a department that goes reports 0")
    func syncGauges() async throws {
        try await TestDatabase.with { database async throws in
            let department = try await SyncHarness.feedDepartment(database, feed: URL(string: "https://feed.example")!)
            try await database.client.query(
                """
                UPDATE department_sync SET consecutive_failures = 3, behind_since = now() - interval '10 minutes',
                       last_success_at = now() - interval '1 hour'
                WHERE department_id = \(department)
                """)
            try await ConnectorStore().setPaused(true, departmentID: department, client: database.client, logger: database.logger)
            let registry = PrometheusCollectorRegistry()
            let gauges = SyncGauges(
                database: database.client, logger: database.logger, factory: PrometheusMetricsFactory(registry: registry))
            await gauges.record()
            let labels = ["department": department.uuidString.lowercased()]
            #expect(Self.sample(registry, "portal_sync_consecutive_failures", labels) == 3)
            #expect(Self.sample(registry, "portal_sync_paused", labels) == 1)
            #expect((599...660).contains(Self.sample(registry, "portal_sync_behind_seconds", labels) ?? 0))
            #expect((3599...3660).contains(Self.sample(registry, "portal_sync_seconds_since_success", labels) ?? 0))
            #expect(Self.sample(registry, "portal_cases_overdue") == 0)

            try await database.client.query("DELETE FROM department_connectors WHERE department_id = \(department)")
            await gauges.record()
            #expect(Self.sample(registry, "portal_sync_consecutive_failures", labels) == 0)
            #expect(Self.sample(registry, "portal_sync_behind_seconds", labels) == 0)
        }
    }
}
