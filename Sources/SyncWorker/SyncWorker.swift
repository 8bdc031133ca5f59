import AsyncHTTPClient
import Hummingbird
import Logging
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

    init() {}

    init(_ environment: EnvironmentReader) throws(ConfigurationError) {
        self.requestTimeout = try environment.seconds("PORTAL_SYNC_REQUEST_TIMEOUT_SECONDS", default: .seconds(30), in: 1...600)
        self.pageSize = try environment.integer("PORTAL_SYNC_PAGE_SIZE", default: 500, in: 1...1000)
        self.lookback = .seconds(try environment.integer("PORTAL_SYNC_ZGW_LOOKBACK_DAYS", default: 90, in: 1...3650) * 86400)
        self.documents = try DocumentSettings(environment)
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
    let schedule = ScheduleRepair(
        database: process.database, jobs: process.jobs, interval: settings.repairInterval, lookback: settings.lookback, logger: logger)
    return process.buildWorkerApplication(
        queues: [Queues.sync], registry: registry, services: [HTTPClientService(client: http), schedule])
}

/// Starts again the schedule job of every connector that has none (its job died, or was cancelled by an operator),
/// and applies the sync tables' retention: refusals are kept 90 days for operators, skipped ZGW statuses until
/// reconciliation can no longer meet them (the lookback and a month). Every replica runs it; the jobs' unique keys
/// and the idempotent deletes make running it twice harmless.
struct ScheduleRepair: Service {
    let database: PostgresClient
    let jobs: JobQueue
    let interval: Duration
    var lookback: Duration = .seconds(90 * 86400)
    let logger: Logger

    static let refusalRetention: Duration = .seconds(90 * 86400)

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
                return started
            }
            if started > 0 {
                self.logger.warning("schedule jobs were missing and started again", metadata: ["portal.sync.started": "\(started)"])
            }
        } catch {
            self.logger.warning("checking the schedule jobs failed; it runs again later", metadata: ["error": "\(error)"])
        }
        do {
            try await self.database.query(
                "DELETE FROM sync_refusals WHERE refused_at < now() - make_interval(secs => \(Self.refusalRetention.seconds))",
                logger: self.logger)
            try await self.database.query(
                "DELETE FROM zgw_skipped WHERE skipped_at < now() - make_interval(secs => \((self.lookback + .seconds(30 * 86400)).seconds))",
                logger: self.logger)
        } catch {
            self.logger.warning("the sync tables' retention failed; it runs again later", metadata: ["error": "\(error)"])
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
