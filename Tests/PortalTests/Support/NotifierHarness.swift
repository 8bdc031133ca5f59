import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Prometheus
import ServiceLifecycle

@testable import Notifier
@testable import Shared

/// The notifier, built by the same builder as the executable, running in this test process against a test database
/// and a relay, with its own metrics registry.
struct NotifierHarness: Sendable {
    let process: PortalProcess
    let settings: NotifierSettings

    /// Settings for a test relay: its port and security, the test CA, a user when it wants AUTH.
    static func settings(
        _ smtp: SMTPTestServer? = nil, port: Int? = nil, mode: SMTPTestServer.Mode = .plain, user: String? = nil,
        password: String? = nil, window: Duration = .zero, housekeeping: Duration = .seconds(60)
    ) throws -> NotifierSettings {
        let security: SMTPTransportSecurity =
            switch mode {
            case .plain: .none
            case .starttls: .startTLS
            case .implicit: .implicitTLS
            }
        // Generous timeouts: the suite runs many tests at once on two cores, and a starved test relay must not look like
        // one that fails (a test that needs a timeout sets its own).
        let relay = SMTPRelay(
            host: mode == .plain ? "127.0.0.1" : "localhost", port: port ?? smtp?.port ?? 0, security: security, user: user,
            password: password, certificateAuthorityFile: try SMTPTestServer.certificate.get().certificate,
            heloDomain: "portal.test", connectTimeout: .seconds(10), replyTimeout: .seconds(30))
        var settings = NotifierSettings(
            mail: MailSettings(relay: relay, from: Mailbox("noreply@portal.test", name: "Gemeente Test")),
            mergeWindow: window,
            retry: RetryPolicy(base: .milliseconds(100), maximum: .milliseconds(400)),
            sessions: 2
        )
        settings.housekeepingInterval = housekeeping
        return settings
    }

    /// Runs the notifier while `body` runs, then shuts it down gracefully.
    static func with<T: Sendable>(
        _ database: TestDatabase, settings: NotifierSettings, logger: Logger? = nil,
        _ body: @Sendable (NotifierHarness) async throws -> T
    ) async throws -> T {
        var jobs = JobSettings()
        jobs.pollInterval = .milliseconds(200)
        let configuration = PortalConfiguration(
            database: database.settings, httpPort: 0, publicURL: URL(string: APIHarness.publicURL)!, jobs: jobs)
        let process = PortalProcess(name: "Notifier", configuration: configuration, logger: logger ?? database.logger)
        let templates = try await MailTemplates()
        let application = buildNotifier(process, settings: settings, templates: templates)
        let group = ServiceGroup(configuration: .init(services: [application], logger: process.logger))
        let harness = NotifierHarness(process: process, settings: settings)
        return try await whileRunning(group) { try await body(harness) }
    }

    /// The value of one sample of the notifier's metrics, e.g. `portal_mail_failed_total{kind="update"}`.
    func metric(_ sample: String) -> Double? {
        var buffer: [UInt8] = []
        self.process.prometheus.emit(into: &buffer)
        for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.dropFirst(sample.count + 1))
        }
        return nil
    }
}
