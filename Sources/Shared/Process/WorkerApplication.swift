public import Hummingbird
import Logging
import Prometheus

extension PortalProcess {
    /// A job-running process (the sync worker, the notifier): the job processor for `queues` with `registry`'s
    /// handlers, plus health and metrics over HTTP. The service order makes shutdown run in reverse: the HTTP
    /// server stops first, then the processor drains its jobs, and the database client closes last.
    public func buildWorkerApplication(queues: [String], registry: JobRegistry) -> some ApplicationProtocol {
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
            configuration: self.httpConfiguration,
            services: [self.database, processor],
            logger: self.logger
        )
    }
}
