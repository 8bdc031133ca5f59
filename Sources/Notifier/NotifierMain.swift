import Shared

/// The notifier: turns notification jobs into e-mails. Configuration: docs/CONFIGURATION.md.
/// Operators preview the templates with `PortalAPI templates preview`, and list and resend mails that could not be
/// delivered with `PortalAPI mail failed|resend` (docs/MAIL.md).
@main
enum NotifierMain {
    static func main() async {
        let configuration = EntryPoint.configuration(for: "Notifier", defaultHTTPPort: 8082)
        let settings: NotifierSettings
        let templates: MailTemplates
        do {
            settings = try NotifierSettings(EnvironmentReader(), publicURL: configuration.publicURL)
        } catch {
            EntryPoint.fail("Notifier", error, status: 78)
        }
        do {
            templates = try await MailTemplates(directory: settings.templatesDirectory)
        } catch {
            EntryPoint.fail("Notifier", error, status: 78)
        }
        let (logger, prometheus) = EntryPoint.bootstrap("Notifier", configuration: configuration)
        let process = PortalProcess(name: "Notifier", configuration: configuration, prometheus: prometheus, logger: logger)
        await EntryPoint.run("Notifier", buildNotifier(process, settings: settings, templates: templates), configuration: configuration)
    }
}
