import Hummingbird
import Shared

/// Builds the sync worker: the job processor for the `sync` queue, with health and metrics over HTTP.
func buildSyncWorker(_ process: PortalProcess) -> some ApplicationProtocol {
    process.buildWorkerApplication(queues: [Queues.sync], registry: JobRegistry())
}
