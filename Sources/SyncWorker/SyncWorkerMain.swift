import Shared

/// The sync worker: keeps the portal in step with the departments' own case systems through jobs on the `sync`
/// queue (docs/SYNC.md). Configuration: docs/CONFIGURATION.md.
@main
enum SyncWorkerMain {
    static func main() async {
        let configuration = EntryPoint.configuration(for: "SyncWorker", defaultHTTPPort: 8081)
        let settings: SyncSettings
        do {
            settings = try SyncSettings(EnvironmentReader())
        } catch {
            EntryPoint.fail("SyncWorker", error, status: 78)
        }
        let (logger, prometheus) = EntryPoint.bootstrap("SyncWorker", configuration: configuration)
        let process = PortalProcess(name: "SyncWorker", configuration: configuration, prometheus: prometheus, logger: logger)
        await EntryPoint.run("SyncWorker", buildSyncWorker(process, settings: settings), configuration: configuration)
    }
}
