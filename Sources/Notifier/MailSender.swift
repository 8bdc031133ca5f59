import CoreMetrics
import Foundation
import Logging
import Shared

/// The notifier's job handlers: a notification's mail (merged with what else waits for the resident) and the e-mail
/// verification mail. Each prepares its delivery in the database first (``MailDeliveryStore``), then hands the mail
/// to the relay through the session pool, then records the attempt:
///
/// - accepted (2xx): the delivery is sent;
/// - "not now" (4xx) or no relay: the attempt is recorded and the job retried with backoff; the retry (or a restart
///   after a crash) resends the same delivery, same Message-ID;
/// - refused (5xx), or the last attempt failed: the delivery has failed for good. The job dies with the reply, which
///   the job processor logs at error level; `portal_mail_failed_total` counts it; `Notifier failed` lists it.
struct MailSender: Sendable {
    let deliveries: MailDeliveryStore
    let jobs: JobQueue
    let pool: SMTPSessionPool
    let settings: MailSettings
    let templates: MailTemplates
    /// Where the portal is: links in mails point into it.
    let portal: URL
    /// `PORTAL_MAIL_MERGE_WINDOW_SECONDS`.
    let window: Duration
    let metrics: any MetricsFactory

    func register(in registry: inout JobRegistry, retry: RetryPolicy) {
        registry.register(Self.retrying(NotificationJob.kind, retry)) { job, context in
            try await self.deliverNotification(job, context: context)
        }
        registry.register(Self.retrying(VerificationMailJob.kind, retry)) { job, context in
            try await self.deliverVerification(job, context: context)
        }
        registry.register(LegacyStatusJob.kind) { job, context in
            try await self.recordLegacy(job, context: context)
        }
    }

    /// A status announcement queued by an API from before notifications (during a rolling upgrade): recorded as a
    /// notification, whose own job then sends it.
    func recordLegacy(_ job: LegacyStatusJob, context: JobContext) async throws {
        _ = try await self.deliveries.client.transaction(logger: context.logger) { connection in
            try await NotificationStore().record(
                [.status(event: job.statusEvent, caseID: job.caseID, correction: job.correction)],
                jobs: self.jobs, traceID: context.job.traceID, on: connection, logger: context.logger)
        }
    }

    /// `kind` with the notifier's backoff between attempts (`PORTAL_MAIL_RETRY_SECONDS`).
    private static func retrying<Payload>(_ kind: JobKind<Payload>, _ retry: RetryPolicy) -> JobKind<Payload> {
        JobKind(kind.name, queue: kind.queue, maxAttempts: kind.maxAttempts, priority: kind.priority, retryPolicy: retry)
    }

    func deliverNotification(_ job: NotificationJob, context: JobContext) async throws {
        let delivery: MailDelivery
        switch try await self.deliveries.prepare(notification: job.notification, job: context.job.id, window: self.window) {
        case .send(let prepared): delivery = prepared
        case .wait(let delay): throw JobSnooze(for: delay)
        case .nothing: return
        }
        let view = UpdateMailView(
            items: UpdateMailView.lines(for: delivery.items).map {
                .init(
                    link: self.link($0.caseID.map { "zaken/\($0.uuidString.lowercased())" } ?? "berichten"), kind: $0.kind,
                    inbox: $0.caseID == nil)
            },
            preferences: self.preferencesLink)
        try await self.send(delivery, try self.templates.update(view, language: delivery.language), context: context)
    }

    func deliverVerification(_ job: VerificationMailJob, context: JobContext) async throws {
        let delivery: MailDelivery
        if let unfinished = try await self.deliveries.unfinished(job: context.job.id) {
            delivery = unfinished
        } else {
            guard let prepared = try await self.deliveries.prepareVerification(resident: job.resident, code: job.code, job: context.job.id)
            else {
                context.logger.debug("verification code superseded or expired; nothing to send")
                return
            }
            delivery = prepared
        }
        let minutes = Int(ResidentStore.verificationCodeLifetime.seconds / 60)
        let mail = try self.templates.verification(VerificationMailView(code: job.code, minutes: minutes), language: delivery.language)
        try await self.send(delivery, mail, context: context)
    }

    private var preferencesLink: String { self.link("instellingen/e-mail") }

    private func link(_ path: String) -> String {
        var base = self.portal.absoluteString
        if !base.hasSuffix("/") { base += "/" }
        return base + path
    }

    private func send(_ delivery: MailDelivery, _ mail: RenderedMail, context: JobContext) async throws {
        let message = MailMessage(
            from: self.settings.from,
            to: Mailbox(delivery.address),
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
            messageID: delivery.messageID,
            date: Date(),
            language: delivery.language.rawValue,
            unsubscribe: delivery.kind == .update ? URL(string: self.preferencesLink) : nil
        )
        let logger = context.logger.with("portal.mail.delivery", "\(delivery.id)")
        let data: [UInt8]
        do {
            data = try message.rendered()
        } catch {
            // An address the relay could never take (stored before it was checked this strictly).
            try await self.finish(delivery, .permanent, reply: "not sent: \(error)", logger: logger)
            throw PermanentJobError("mail delivery \(delivery.id) cannot be written: \(error)")
        }
        let relay = "\(self.settings.relay.host):\(self.settings.relay.port)"
        do {
            let reply = try await self.pool.send(
                SMTPEnvelope(sender: self.settings.from.address, recipient: delivery.address, message: data))
            try await self.finish(delivery, .sent, reply: "\(reply)", relay: relay, logger: logger)
        } catch let failure as SMTPFailure {
            let last = context.job.attempt >= context.job.maxAttempts
            // Only the relay's "no" (5xx) is final before the last attempt: a relay that cannot be reached, or that a
            // changed password or an expired certificate makes unusable, gets the whole retry budget to be fixed.
            let final = failure.kind == .permanent || last
            try await self.finish(delivery, final ? .permanent : .transient, reply: failure.description, relay: relay, logger: logger)
            let reason = "mail delivery \(delivery.id): \(MailAddress.redacted(failure.description))"
            if final { throw PermanentJobError(last && failure.kind == .transient ? "\(reason) (last attempt)" : reason) }
            throw MailRetry(description: reason)
        }
    }

    /// Counts a delivery that will not be sent (``MailDeliveryStore/failAbandoned()``, a refusal, the last attempt).
    func countFailure(kind: MailDelivery.Kind) {
        Counter(label: "portal_mail_failed_total", dimensions: [("kind", kind.rawValue)], factory: self.metrics).increment()
    }

    private func finish(
        _ delivery: MailDelivery, _ outcome: MailAttemptOutcome, reply: String, relay: String = "", logger: Logger
    ) async throws {
        try await self.deliveries.record(outcome, of: delivery.id, relay: relay, reply: reply)
        Counter(
            label: "portal_mail_attempts_total", dimensions: [("kind", delivery.kind.rawValue), ("outcome", outcome.rawValue)],
            factory: self.metrics
        )
        .increment()
        if outcome == .permanent { self.countFailure(kind: delivery.kind) }
        if outcome == .sent { logger.debug("mail accepted by the relay") }
    }
}

/// The job an API from before migration 0005 queued for a status that informs the resident.
struct LegacyStatusJob: Codable, Sendable {
    var caseID: UUID
    var statusEvent: Int64
    var correction: Bool

    static let kind = JobKind<LegacyStatusJob>("notification.status", queue: Queues.notifications)
}

/// A temporary failure: the job is retried with backoff.
struct MailRetry: Error, CustomStringConvertible {
    let description: String
}

extension Logger {
    fileprivate func with(_ key: String, _ value: String) -> Logger {
        var logger = self
        logger[metadataKey: key] = "\(value)"
        return logger
    }
}
