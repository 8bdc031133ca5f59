import Shared

/// The notifier: turns notification jobs into e-mails. Configuration: docs/CONFIGURATION.md.
/// `Notifier preview` prints every mail template rendered with sample data (docs/MAIL.md).
@main
enum NotifierMain {
    static func main() async {
        if CommandLine.arguments.dropFirst().first == "preview" { await MailPreview.run() }
        let configuration = EntryPoint.configuration(for: "Notifier", defaultHTTPPort: 8082)
        let (logger, prometheus) = EntryPoint.bootstrap("Notifier", configuration: configuration)
        let process = PortalProcess(name: "Notifier", configuration: configuration, prometheus: prometheus, logger: logger)
        await EntryPoint.run("Notifier", buildNotifier(process), configuration: configuration)
    }
}
