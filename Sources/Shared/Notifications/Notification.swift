public import Foundation
public import Logging
public import PostgresNIO

/// What a resident hears about. Each kind is a line in the update mail; the resident can switch off the kinds that
/// are ``switchable``.
public enum NotificationKind: String, Sendable, CaseIterable, Codable {
    /// A status that informs the resident became current.
    case status
    /// An earlier status was corrected: said as such, never as progress.
    case correction
    /// The municipality sent a message.
    case message
    /// A document was published to the resident.
    case document
    /// The case passed its due date (once per case).
    case overdue

    /// The preference that governs this kind (a correction follows the status setting).
    public var preference: MailPreference? { MailPreference(rawValue: self == .correction ? "status" : self.rawValue) }
}

/// The kinds of mail a resident can switch on or off in `PATCH /api/v1/me`. A message from the municipality usually
/// asks for something, and the e-mail verification mail is asked for by the resident: neither can be switched off.
public enum MailPreference: String, Sendable, CaseIterable, Codable {
    case status
    case document
    case overdue
}

/// A notification to record in the transaction of the event that causes it.
public struct NewNotification: Sendable, Equatable {
    /// Makes it happen at most once, e.g. `status:<event id>`; recording the same key again does nothing.
    public var key: String
    public var kind: NotificationKind
    /// The case it is about; nil for a message that is not about a case, which names its resident in `subject`.
    public var caseID: UUID?
    public var subject: Subject?

    public init(key: String, kind: NotificationKind, caseID: UUID) {
        self.key = key
        self.kind = kind
        self.caseID = caseID
        self.subject = nil
    }

    /// A notification about a case when there is one, else to the resident.
    public init(key: String, kind: NotificationKind, caseID: UUID?, subject: Subject) {
        self.key = key
        self.kind = kind
        self.caseID = caseID
        self.subject = caseID == nil ? subject : nil
    }

    /// A status event that became current and informs (a correction when it corrects an earlier one).
    public static func status(event: Int64, caseID: UUID, correction: Bool) -> NewNotification {
        NewNotification(key: "status:\(event)", kind: correction ? .correction : .status, caseID: caseID)
    }
}

/// The notifier's job for one notification: deliver it, merged with the resident's other open notifications.
public struct NotificationJob: Codable, Sendable, Equatable {
    /// `notifications.id`.
    public var notification: Int64

    public init(notification: Int64) { self.notification = notification }

    /// 25 attempts with the notifier's backoff (30 s doubling to an hour by default) keep retrying for about half a
    /// day, so a relay that is down for hours delays mail without losing it.
    public static let kind = JobKind<NotificationJob>("mail.notification", queue: Queues.notifications, maxAttempts: 25)
}

/// The notifier's job for an e-mail verification code. The code travels in the payload (the database keeps only its
/// hash elsewhere) and is useless after 30 minutes, so it is retried for a shorter time than other mail.
public struct VerificationMailJob: Codable, Sendable, Equatable {
    public var resident: UUID
    public var code: String

    public init(resident: UUID, code: String) {
        self.resident = resident
        self.code = code
    }

    /// Sent before anything else waiting: the resident is looking at the screen that asks for the code.
    public static let kind = JobKind<VerificationMailJob>("mail.verification", queue: Queues.notifications, maxAttempts: 8, priority: 10)
}

/// Records notifications in the caller's transaction, with a notifier job for each, so an event and its
/// announcement commit together or not at all.
public struct NotificationStore: Sendable {
    public init() {}

    /// Records `notifications`; a key recorded before, or a case that no longer exists, is skipped (with its job).
    /// Returns how many were new.
    @discardableResult
    public func record(
        _ notifications: [NewNotification],
        jobs: JobQueue,
        traceID: String?,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> Int {
        guard !notifications.isEmpty else { return 0 }
        let query: PostgresQuery = """
            INSERT INTO notifications (key, kind, case_id, subject_kind, subject)
            SELECT input.key, input.kind, nullif(input.case_id, '')::uuid, nullif(input.subject_kind, ''), nullif(input.subject, '')
            FROM unnest(\(notifications.map(\.key)), \(notifications.map(\.kind.rawValue)),
                        \(notifications.map { $0.caseID?.uuidString ?? "" }), \(notifications.map { $0.subject?.kind.rawValue ?? "" }),
                        \(notifications.map { $0.subject?.number ?? "" }))
                 WITH ORDINALITY AS input(key, kind, case_id, subject_kind, subject, position)
            WHERE input.case_id = '' OR EXISTS (SELECT 1 FROM cases WHERE cases.id = nullif(input.case_id, '')::uuid)
            ORDER BY input.position
            ON CONFLICT (key) DO NOTHING
            RETURNING id
            """
        var ids: [Int64] = []
        for try await id in try await connection.query(query, logger: logger).decode(Int64.self) { ids.append(id) }
        let newJobs = try ids.map {
            try NewJob(NotificationJob.kind, payload: NotificationJob(notification: $0), uniqueKey: "notification:\($0)", traceID: traceID)
        }
        _ = try await jobs.enqueue(newJobs, on: connection)
        return ids.count
    }

    /// Records an `overdue` notification for every open case whose due date (a Dutch calendar day) passed within the
    /// last week, once per case. Older ones are left alone: a case that has been overdue for long is not news, and a
    /// first run on an existing database must not mail every late case at once. Returns how many were new.
    @discardableResult
    public func recordOverdue(jobs: JobQueue, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query(
            """
            SELECT c.id FROM cases c
            WHERE NOT c.status_final AND c.due_date IS NOT NULL
              AND c.due_date < (now() AT TIME ZONE 'Europe/Amsterdam')::date
              AND c.due_date >= (now() AT TIME ZONE 'Europe/Amsterdam')::date - 7
              AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.key = 'overdue:' || c.id::text)
            """,
            logger: logger
        )
        var overdue: [NewNotification] = []
        for try await caseID in rows.decode(UUID.self) {
            overdue.append(NewNotification(key: "overdue:\(caseID.uuidString.lowercased())", kind: .overdue, caseID: caseID))
        }
        return try await self.record(overdue, jobs: jobs, traceID: nil, on: connection, logger: logger)
    }

    /// Whether the last mail about the case that finished failed: the case page then says "we could not e-mail you",
    /// so the resident knows to check their address.
    public func lastMailFailed(caseID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query(
            """
            SELECT d.state = 'failed'
            FROM notifications n JOIN mail_deliveries d ON d.id = n.delivery_id
            WHERE n.case_id = \(caseID) AND d.state <> 'sending'
            ORDER BY d.finished_at DESC
            LIMIT 1
            """,
            logger: logger
        )
        return try await rows.decode(Bool.self).first { _ in true } ?? false
    }
}
