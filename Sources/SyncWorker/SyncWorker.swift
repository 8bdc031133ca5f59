import AsyncHTTPClient
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Shared

/// The sync worker's own settings, besides those every process reads (docs/CONFIGURATION.md, "Sync worker").
struct SyncSettings: Sendable {
    /// `PORTAL_SYNC_REQUEST_TIMEOUT_SECONDS`: the longest a request to a department may take, answer included.
    var requestTimeout: Duration = .seconds(30)
    /// `PORTAL_SYNC_PAGE_SIZE`: changes asked for per feed request.
    var pageSize: Int = 500
    /// How often every connector's schedule job is checked for (and started again if it died).
    var repairInterval: Duration = .seconds(300)
    /// `PORTAL_SYNC_ZGW_LOOKBACK_DAYS`: ZGW reconciliation looks at zaken started this long ago or later.
    var lookback: Duration = .seconds(90 * 86400)
    /// `PORTAL_DOCUMENT_STORAGE` and `PORTAL_DOCUMENT_DIRECTORY`, as the API has them: where residents' uploads are
    /// read from for delivery.
    var documents = DocumentSettings()
    /// `PORTAL_RETENTION_*`: how long each kind of data is kept; the sync worker applies it.
    var retention = RetentionSettings()

    init() {}

    init(_ environment: EnvironmentReader) throws(ConfigurationError) {
        self.requestTimeout = try environment.seconds("PORTAL_SYNC_REQUEST_TIMEOUT_SECONDS", default: .seconds(30), in: 1...600)
        self.pageSize = try environment.integer("PORTAL_SYNC_PAGE_SIZE", default: 500, in: 1...1000)
        self.lookback = .seconds(try environment.integer("PORTAL_SYNC_ZGW_LOOKBACK_DAYS", default: 90, in: 1...3650) * 86400)
        self.documents = try DocumentSettings(environment)
        self.retention = try RetentionSettings(environment, zgwLookbackDays: Int(self.lookback.seconds / 86400))
    }
}

/// Builds the sync worker: the job processor for the `sync` queue with the connectors' handlers, the schedule
/// repair, and health and metrics over HTTP.
func buildSyncWorker(_ process: PortalProcess, settings: SyncSettings) -> some ApplicationProtocol {
    var logger = process.logger
    logger[metadataKey: "portal.component"] = "sync"
    let http = DepartmentClient.makeHTTPClient()
    let gate = DepartmentGate(client: process.database, logger: logger)
    let client = DepartmentClient(http: http, gate: gate, timeout: settings.requestTimeout)
    var registry = JobRegistry()
    FeedPuller(client: client, database: process.database, jobs: process.jobs, pageSize: settings.pageSize).register(in: &registry)
    ZGWSync(client: client, database: process.database, jobs: process.jobs, lookback: settings.lookback).register(in: &registry)
    DocumentDelivery(
        client: client, database: process.database, storages: settings.documents.storages(database: process.database, logger: logger)
    )
    .register(in: &registry)
    WebhookDelivery(http: http, database: process.database, publicURL: process.configuration.publicURL, timeout: settings.requestTimeout)
        .register(in: &registry)
    RetentionJob(
        retention: Retention(
            settings: settings.retention, client: process.database,
            storages: settings.documents.storages(database: process.database, logger: logger), logger: logger)
    )
    .register(in: &registry)
    let schedule = ScheduleRepair(database: process.database, jobs: process.jobs, interval: settings.repairInterval, logger: logger)
    return process.buildWorkerApplication(
        queues: [Queues.sync, Queues.maintenance], registry: registry,
        services: [HTTPClientService(client: http), schedule, SyncGauges(database: process.database, logger: logger).service])
}

/// Starts again every schedule job that is missing (its job died, or was cancelled by an operator): each
/// connector's, and the retention job. Every replica runs it; the jobs' unique keys make running it twice harmless.
struct ScheduleRepair: Service {
    let database: PostgresClient
    let jobs: JobQueue
    let interval: Duration
    let logger: Logger

    func run() async throws {
        try await PeriodicWork(every: self.interval) { await self.repair() }.run()
    }

    func repair() async {
        do {
            let started = try await self.database.transaction(logger: self.logger) { connection in
                var started = 0
                for connector in try await ConnectorStore().all(on: connection, logger: self.logger) {
                    if case .enqueued = try await self.jobs.enqueue(try SyncJobs.schedule(for: connector), on: connection) { started += 1 }
                }
                if case .enqueued = try await self.jobs.enqueue(try MaintenanceJobs.retentionJob(), on: connection) { started += 1 }
                return started
            }
            if started > 0 {
                self.logger.notice("schedule jobs were missing and started", metadata: ["portal.jobs.started": "\(started)"])
            }
        } catch {
            self.logger.warning("checking the schedule jobs failed; it runs again later", metadata: ["error": "\(error)"])
        }
    }
}

/// Runs ``Retention`` and snoozes until the next run; a run that reached its time budget continues at once.
struct RetentionJob: Sendable {
    let retention: Retention

    func register(in registry: inout JobRegistry) {
        registry.register(MaintenanceJobs.retention) { _, context in
            let report = try await self.retention.apply()
            let removed: [(String, Int)] = [
                ("closed-cases", report.closedCases), ("delivered-documents", report.deliveredDocuments),
                ("notifications", report.notifications), ("mail-deliveries", report.mailDeliveries),
                ("audit-records", report.auditRecords), ("sync-refusals", report.syncRefusals), ("zgw-skipped", report.zgwSkipped),
            ]
            for (kind, count) in removed where count > 0 {
                Counter(label: "portal_retention_removed_total", dimensions: [("kind", kind)]).increment(by: count)
            }
            if report.total > 0 {
                context.logger.info(
                    "retention removed what was past its term",
                    metadata: Dictionary(uniqueKeysWithValues: removed.map { ("portal.retention.\($0.0)", "\($0.1)") }))
            }
            throw JobSnooze(for: report.complete ? self.retention.settings.interval : .zero)
        }
    }
}

/// Shuts the sync worker's HTTP client down when the process stops.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await self.client.shutdown()
    }
}
