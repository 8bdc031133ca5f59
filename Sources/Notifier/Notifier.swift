import Hummingbird
import Shared

/// Builds the notifier: the job processor for the `notifications` queue, with health and metrics over HTTP.
func buildNotifier(_ process: PortalProcess) -> some ApplicationProtocol {
    process.buildWorkerApplication(queues: [Queues.notifications], registry: JobRegistry())
}
