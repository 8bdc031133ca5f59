import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Prometheus
import ServiceLifecycle
import Shared

/// The notifier's own settings, besides those every process reads (docs/CONFIGURATION.md, "Notifier").
struct NotifierSettings: Sendable {
    var mail: MailSettings
    /// `PORTAL_MAIL_MERGE_WINDOW_SECONDS`: how long a notification waits for others to share its mail (0: none).
    var mergeWindow: Duration
    /// `PORTAL_MAIL_RETRY_SECONDS`: the first wait after a temporary failure; it doubles per attempt, to an hour.
    var retry: RetryPolicy
    /// `PORTAL_SMTP_SESSIONS`: sessions kept open to the relay.
    var sessions: Int
    /// `PORTAL_MAIL_TEMPLATES_DIR`, or nil for the bundled templates.
    var templatesDirectory: String?
    /// How often the housekeeping runs (abandoned deliveries, overdue cases).
    var housekeepingInterval: Duration = .seconds(60)

    init(mail: MailSettings, mergeWindow: Duration, retry: RetryPolicy, sessions: Int = 4, templatesDirectory: String? = nil) {
        self.mail = mail
        self.mergeWindow = mergeWindow
        self.retry = retry
        self.sessions = sessions
        self.templatesDirectory = templatesDirectory
    }

    init(_ environment: EnvironmentReader, publicURL: URL) throws(ConfigurationError) {
        self.mail = try MailSettings(environment, publicURL: publicURL)
        self.mergeWindow = try environment.seconds("PORTAL_MAIL_MERGE_WINDOW_SECONDS", default: .seconds(120), in: 0...3600)
        self.retry = RetryPolicy(base: try environment.seconds("PORTAL_MAIL_RETRY_SECONDS", default: .seconds(30), in: 0.1...3600))
        self.sessions = try environment.integer("PORTAL_SMTP_SESSIONS", default: 4, in: 1...64)
        self.templatesDirectory = environment.string("PORTAL_MAIL_TEMPLATES_DIR")
    }
}

/// Builds the notifier: the job processor for the `notifications` queue with the mail handlers, the relay's session
/// pool, the housekeeping (abandoned deliveries, overdue cases), and health and metrics over HTTP.
func buildNotifier(_ process: PortalProcess, settings: NotifierSettings, templates: MailTemplates) -> some ApplicationProtocol {
    var logger = process.logger
    logger[metadataKey: "portal.component"] = "smtp"
    let pool = SMTPSessionPool(relay: settings.mail.relay, size: settings.sessions, logger: logger)
    let deliveries = MailDeliveryStore(
        client: process.database, messageIDDomain: process.configuration.publicURL.host ?? "localhost", logger: process.logger)
    let sender = MailSender(
        deliveries: deliveries,
        jobs: process.jobs,
        pool: pool,
        settings: settings.mail,
        templates: templates,
        portal: process.configuration.publicURL,
        window: settings.mergeWindow,
        metrics: PrometheusMetricsFactory(registry: process.prometheus)
    )
    var registry = JobRegistry()
    sender.register(in: &registry, retry: settings.retry)
    let housekeeping = MailHousekeeping(sender: sender, interval: settings.housekeepingInterval, logger: process.logger)
    return process.buildWorkerApplication(queues: [Queues.notifications], registry: registry, services: [pool, housekeeping])
}

/// The notifier's housekeeping, every minute (``PeriodicWork``; every replica runs it, and each step is safe to run
/// from several at once):
/// - deliveries whose job ended without sending them are marked failed, with the error signal a refusal gets;
/// - an `overdue` notification is recorded for every open case whose due date passed in the last week (once per
///   case: the notification's key is the case).
struct MailHousekeeping: Service {
    let sender: MailSender
    let interval: Duration
    let logger: Logger

    func run() async throws {
        try await PeriodicWork(every: self.interval) {
            await self.failAbandoned()
            await self.scanOverdue()
        }.run()
    }

    func failAbandoned() async {
        do {
            for (id, kind) in try await self.sender.deliveries.failAbandoned() {
                self.sender.countFailure(kind: kind)
                self.logger.error(
                    "mail not delivered: its job ended before the relay accepted it",
                    metadata: ["portal.mail.delivery": "\(id)", "portal.mail.kind": "\(kind.rawValue)"])
            }
        } catch {
            self.logger.warning("checking for abandoned mail failed; it runs again later", metadata: ["error": "\(error)"])
        }
    }

    func scanOverdue() async {
        do {
            let recorded = try await self.sender.deliveries.client.transaction(logger: self.logger) { connection in
                try await NotificationStore().recordOverdue(jobs: self.sender.jobs, on: connection, logger: self.logger)
            }
            if recorded > 0 { self.logger.info("overdue cases announced", metadata: ["portal.notifications.recorded": "\(recorded)"]) }
        } catch {
            self.logger.warning("the overdue scan failed; it runs again later", metadata: ["error": "\(error)"])
        }
    }
}
