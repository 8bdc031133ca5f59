import Shared

/// The sync worker: keeps the portal in step with the departments' own case systems through jobs on the `sync`
/// queue. Configuration: docs/CONFIGURATION.md.
@main
enum SyncWorkerMain {
    static func main() async {
        let configuration = EntryPoint.configuration(for: "SyncWorker", defaultHTTPPort: 8081)
        let (logger, prometheus) = EntryPoint.bootstrap("SyncWorker", configuration: configuration)
        let process = PortalProcess(name: "SyncWorker", configuration: configuration, prometheus: prometheus, logger: logger)
        await EntryPoint.run("SyncWorker", buildSyncWorker(process), configuration: configuration)
    }
}
