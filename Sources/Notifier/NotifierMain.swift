import Shared

/// The notifier: turns notification jobs into e-mails. Configuration: docs/CONFIGURATION.md.
@main
enum NotifierMain {
    static func main() async {
        let configuration = EntryPoint.configuration(for: "Notifier", defaultHTTPPort: 8082)
        let (logger, prometheus) = EntryPoint.bootstrap("Notifier", configuration: configuration)
        let process = PortalProcess(name: "Notifier", configuration: configuration, prometheus: prometheus, logger: logger)
        await EntryPoint.run("Notifier", buildNotifier(process), configuration: configuration)
    }
}
