public import Hummingbird
import Logging
import Prometheus
public import ServiceLifecycle

extension PortalProcess {
    /// A job-running process (the sync worker, the notifier): the job processor for `queues` with `registry`'s
    /// handlers and the `services` they use, plus health and metrics over HTTP. The service order makes shutdown run
    /// in reverse: the HTTP server stops first, then the processor drains its jobs, then `services` stop, and the
    /// database client closes last.
    public func buildWorkerApplication(queues: [String], registry: JobRegistry, services: [any Service] = []) -> some ApplicationProtocol {
        let processor = JobProcessor(
            jobs: self.jobs,
            registry: registry,
            queues: queues,
            settings: self.configuration.jobs,
            metrics: self.jobMetrics,
            logger: self.logger,
            preflight: { try await self.requireCurrentSchema() }
        )
        return Application(
            router: self.makeRouter(),
            server: self.httpServer,
            configuration: self.httpConfiguration,
            services: [self.database, self.databaseGauges] + services + [processor],
            logger: self.logger
        )
    }
}
