import Foundation
public import Hummingbird
public import Logging
import Metrics
public import Prometheus
import ServiceLifecycle
import UnixSignals

/// The shared start of every executable: read the configuration (stopping with one line naming a bad setting),
/// bootstrap logging and metrics once, build, run until SIGTERM or SIGINT.
public enum EntryPoint {
    /// Reads the configuration, or prints the one-line reason and exits with status 78 (EX_CONFIG).
    public static func configuration(for name: String, defaultHTTPPort: Int) -> PortalConfiguration {
        do {
            return try PortalConfiguration(defaultHTTPPort: defaultHTTPPort)
        } catch {
            self.fail(name, error, status: 78)
        }
    }

    /// Bootstraps logging and the global metrics system (for library metrics such as Hummingbird's), returning the
    /// process logger and the registry `/metrics` serves.
    public static func bootstrap(_ name: String, configuration: PortalConfiguration) -> (Logger, PrometheusCollectorRegistry) {
        configuration.bootstrapLogging()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var logger = Logger(label: name)
        logger.logLevel = configuration.logLevel
        return (logger, registry)
    }

    /// Runs the application until SIGTERM or SIGINT asks it to stop; a startup failure prints one line and exits 1.
    ///
    /// A replica must always go away when asked, whatever hangs inside it: the graceful shutdown may take the job
    /// shutdown timeout (`PORTAL_JOB_SHUTDOWN_TIMEOUT_SECONDS`) plus ``shutdownMargin``, then the services are
    /// cancelled, and ten seconds later swift-service-lifecycle ends the process regardless, with a fatal error (a
    /// backtrace on standard error).
    public static func run(_ name: String, _ application: some ApplicationProtocol, configuration: PortalConfiguration) async -> Never {
        var group = ServiceGroupConfiguration(
            services: [.init(service: application)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: application.logger
        )
        group.maximumGracefulShutdownDuration = configuration.jobs.shutdownTimeout + Self.shutdownMargin
        group.maximumCancellationDuration = .seconds(10)
        do {
            try await ServiceGroup(configuration: group).run()
            exit(0)
        } catch {
            self.fail(name, error, status: 1)
        }
    }

    /// Time for the HTTP server's in-flight requests and the database client, on top of the jobs' shutdown timeout.
    public static let shutdownMargin: Duration = .seconds(30)

    /// Prints `name: reason` on standard error and exits.
    public static func fail(_ name: String, _ error: any Error, status: Int32) -> Never {
        FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
        exit(status)
    }
}
