import Foundation
public import Hummingbird
public import HummingbirdCore
public import Logging
import NIOCore
public import PostgresNIO
public import Prometheus

/// What every portal process holds: its configuration, one PostgreSQL client (a running service), the job queue,
/// the migrator and the Prometheus registry. Built once per process by its builder; tests build it the same way.
public struct PortalProcess: Sendable {
    public let name: String
    public let configuration: PortalConfiguration
    public let database: PostgresClient
    public let jobs: JobQueue
    public let migrator: Migrator
    public let prometheus: PrometheusCollectorRegistry
    public let logger: Logger
    /// What this process's database connections are called in `pg_stat_activity`: its name, host, process id and a
    /// random suffix (several processes of one test share a process id).
    public let applicationName: String

    public init(
        name: String,
        configuration: PortalConfiguration,
        prometheus: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        logger: Logger
    ) {
        self.name = name
        self.configuration = configuration
        self.prometheus = prometheus
        self.logger = logger
        var databaseLogger = logger
        databaseLogger[metadataKey: "portal.component"] = "database"
        self.applicationName = String(
            "\(name)/\(ProcessInfo.processInfo.hostName.prefix(24))/\(getpid())/\(UUID().uuidString.prefix(8).lowercased())".utf8
                .prefix(63))!
        self.database = PostgresClient(
            configuration: configuration.database.clientConfiguration(applicationName: self.applicationName),
            backgroundLogger: databaseLogger)
        self.jobs = JobQueue(client: self.database, logger: logger)
        self.migrator = Migrator(client: self.database, logger: logger)
    }

    /// The job metrics, reported into this process's registry.
    public var jobMetrics: JobMetrics { JobMetrics(factory: PrometheusMetricsFactory(registry: self.prometheus)) }

    /// Reports this process's database connections every 15 seconds (``DatabaseGauges``); every process runs it.
    public var databaseGauges: PeriodicWork {
        let gauges = DatabaseGauges(
            client: self.database, applicationName: self.applicationName,
            maximum: self.configuration.database.maximumConnections,
            factory: PrometheusMetricsFactory(registry: self.prometheus), logger: self.logger)
        return PeriodicWork(every: .seconds(15)) { await gauges.record() }
    }

    /// A router with the operational endpoints already on it.
    public func makeRouter<Context: RequestContext>(context: Context.Type = BasicRequestContext.self) -> Router<Context> {
        let router = Router(context: Context.self)
        OperationalRoutes(migrator: self.migrator, prometheus: self.prometheus).register(on: router)
        return router
    }

    /// The HTTP server configuration from `PORTAL_HTTP_HOST` and `PORTAL_HTTP_PORT`.
    public var httpConfiguration: ApplicationConfiguration {
        ApplicationConfiguration(
            address: .hostname(self.configuration.httpHost, port: self.configuration.httpPort),
            serverName: nil
        )
    }

    /// The HTTP/1.1 server with this process's limits: the idle timeout (`PORTAL_HTTP_IDLE_SECONDS`), the time to
    /// send one request (`PORTAL_HTTP_REQUEST_SECONDS`) and the header size limit (`PORTAL_HTTP_MAX_HEADER_BYTES`, at
    /// most 100 fields). A client past any of them is disconnected.
    public var httpServer: HTTPServerBuilder {
        let limit = self.configuration.httpMaxHeaderBytes
        let requestTimeout = TimeAmount.nanoseconds(Int64(self.configuration.httpRequestTimeout.nanoseconds))
        return .http1(
            configuration: HTTP1Channel.Configuration(
                additionalChannelHandlers: [RequestTimeoutHandler(timeout: requestTimeout)],
                idleTimeout: .nanoseconds(Int64(self.configuration.httpIdleTimeout.nanoseconds)),
                httpDecoderConfiguration: .init(maxHeaderFieldSize: limit, maxHeaderListSize: limit, maxHeaderFieldCount: 100)))
    }

    /// Waits until the schema is current, for at most `patience`: a process started together with its database
    /// (or while migrations run) waits a little instead of failing at once; one started against a schema that
    /// stays behind stops with a clear message.
    public func requireCurrentSchema(patience: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + patience
        while true {
            do {
                try await self.migrator.requireCurrent()
                return
            } catch let error as SchemaError {
                throw error
            } catch {
                guard ContinuousClock.now < deadline else {
                    throw DatabaseUnreachable(database: self.configuration.database.redactedDescription, underlying: error)
                }
                self.logger.notice("waiting for the database", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// PostgreSQL did not answer at start.
public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public let database: String
    public let underlying: any Error
    public var description: String { "cannot reach the database \(self.database): \(LoggableError.describe(self.underlying))" }
}
