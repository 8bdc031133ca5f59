public import Foundation
public import Logging
public import PostgresNIO

/// One mail, sent or being sent (a `mail_deliveries` row).
public struct MailDelivery: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case update
        case verification
    }

    public var id: Int64
    public var kind: Kind
    /// The same on every attempt, so a resend after a crash is recognisably the same message.
    public var messageID: String
    public var address: String
    public var language: Resident.Locale
    /// What an update mail lists, in order: the kind and case of each notification.
    public var items: [Item]

    public struct Item: Sendable, Equatable {
        public var kind: NotificationKind
        /// Nil for a message that is not about a case.
        public var caseID: UUID?

        public init(kind: NotificationKind, caseID: UUID?) {
            self.kind = kind
            self.caseID = caseID
        }
    }
}

/// What preparing a notification's mail found.
public enum PreparedMail: Sendable, Equatable {
    /// Send this delivery.
    case send(MailDelivery)
    /// The notification is younger than the merge window: try again after this long, when its mail can carry
    /// whatever else arrived for the resident meanwhile.
    case wait(Duration)
    /// Nothing to send: the notification went out in another mail, or was skipped (no address, switched off).
    case nothing
}

/// How one attempt to hand a delivery to the relay ended.
public enum MailAttemptOutcome: String, Sendable {
    case sent
    /// The relay said "not now" or could not be reached; the delivery will be tried again.
    case transient
    /// The relay refused the mail for good, or the last attempt failed: the delivery has failed.
    case permanent
}

/// A delivery that failed for good (or whose job ended without sending it), as an operator sees it.
public struct FailedDelivery: Sendable, Equatable {
    public var id: Int64
    public var kind: MailDelivery.Kind
    public var createdAt: Date
    /// The address with its local part masked (`i***@example.nl`).
    public var maskedAddress: String
    public var attempts: Int
    public var lastReply: String?
}

/// The `notifications`, `mail_deliveries` and `mail_attempts` tables as the notifier uses them.
///
/// A delivery is written (with the notifications it carries) and committed BEFORE its mail is handed to the relay,
/// owned by the job that sends it. A job that finds a delivery of its own still `sending` is a retry, or a restart
/// after a crash, and resends that delivery unchanged, with its Message-ID: a crash can repeat a mail, never lose one
/// or give it another identity.
public struct MailDeliveryStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    /// The domain of the Message-IDs (the portal's host).
    public let messageIDDomain: String

    /// Attempts recorded by concurrent senders share one statement and one commit.
    private let attempts: GroupCommit<Attempt, Void>

    /// One attempt as `jsonb_to_recordset` reads it.
    private struct Attempt: Encodable, Sendable {
        let delivery: Int64
        let relay: String
        let outcome: String
        let reply: String?
    }

    public init(client: PostgresClient, messageIDDomain: String, logger: Logger) {
        self.client = client
        self.messageIDDomain = messageIDDomain
        self.logger = logger
        self.attempts = GroupCommit(maximumBatch: 500) { attempts, logger in
            try await client.query(Self.recordAttempts(attempts), logger: logger)
            return attempts.map { _ in () }
        }
    }

    /// The delivery `job` started and has not finished, if any.
    public func unfinished(job: JobID) async throws -> MailDelivery? {
        try await self.client.withConnection { try await self.unfinished(job: job, on: $0) }
    }

    private func unfinished(job: JobID, on connection: PostgresConnection) async throws -> MailDelivery? {
        let rows = try await connection.query(
            """
            SELECT id, kind, message_id, address, language FROM mail_deliveries
            WHERE job_id = \(job.rawValue) AND state = 'sending'
            ORDER BY id LIMIT 1
            """,
            logger: self.logger
        )
        guard
            let (id, kind, messageID, address, language) = try await rows.decode((Int64, String, String, String, String).self)
                .first(where: { _ in true }),
            let kind = MailDelivery.Kind(rawValue: kind), let language = Resident.Locale(rawValue: language)
        else { return nil }
        return MailDelivery(
            id: id, kind: kind, messageID: messageID, address: address, language: language,
            items: try await self.items(of: id, on: connection))
    }

    /// Prepares the mail for notification `id` as `job`: with every other open notification of the same resident that
    /// goes to the same address, unless it is younger than `window`. When the notification is already in a mail of
    /// this job that was not sent (a retry, or the job run again after a crash), that mail is returned unchanged.
    ///
    /// The resident's open notifications are locked in id order (`FOR UPDATE`): a job that prepares a mail for the
    /// same resident at the same moment waits, then finds the notifications the first one took no longer open
    /// (PostgreSQL re-checks a locked row that changed), so no notification is ever in two mails. Four round trips:
    /// begin, read and lock, write, commit.
    public func prepare(notification id: Int64, job: JobID, window: Duration) async throws -> PreparedMail {
        try await self.client.transaction(logger: self.logger) { connection in
            let openRows = try await connection.query(
                """
                WITH mine AS (
                    SELECT coalesce(c.subject_kind, n.subject_kind) AS subject_kind, coalesce(c.subject, n.subject) AS subject
                    FROM notifications n LEFT JOIN cases c ON c.id = n.case_id WHERE n.id = \(id)
                ), open AS (
                    -- Two index paths: the resident's cases' notifications, and those about no case.
                    SELECT n.id FROM mine
                    JOIN cases c ON c.subject_kind = mine.subject_kind AND c.subject = mine.subject
                    JOIN notifications n ON n.case_id = c.id AND n.delivery_id IS NULL AND n.skipped IS NULL
                    UNION ALL
                    SELECT n.id FROM mine
                    JOIN notifications n ON n.case_id IS NULL AND n.subject_kind = mine.subject_kind AND n.subject = mine.subject
                                        AND n.delivery_id IS NULL AND n.skipped IS NULL
                )
                SELECT n.id, n.kind, n.case_id, extract(epoch FROM now() - n.created_at)::float8, c.language, c.contact_email,
                       r.id, r.email, CASE WHEN r.locale_chosen_at IS NOT NULL THEN r.locale END, r.mail_preferences::text
                FROM notifications n
                CROSS JOIN mine
                LEFT JOIN cases c ON c.id = n.case_id
                LEFT JOIN residents r ON r.subject_kind = mine.subject_kind AND r.subject = mine.subject
                WHERE n.id IN (SELECT id FROM open) AND n.delivery_id IS NULL AND n.skipped IS NULL
                ORDER BY n.id
                FOR UPDATE OF n
                """,
                logger: self.logger
            )
            struct Open {
                var id: Int64
                var item: MailDelivery.Item
                var age: Double
                var address: String?
                var language: Resident.Locale
                var resident: UUID?
                var switchedOff: Bool
            }
            var notifications: [Open] = []
            for try await (nid, nkind, caseID, age, caseLanguage, contact, resident, email, locale, preferences) in openRows.decode(
                (Int64, String, UUID?, Double, String?, String?, UUID?, String?, String?, String?).self)
            {
                guard let nkind = NotificationKind(rawValue: nkind) else { throw StoreError.unexpectedValue("notifications row \(nid)") }
                let off = preferences.map(ResidentStore.switchedOff) ?? []
                notifications.append(
                    Open(
                        id: nid, item: .init(kind: nkind, caseID: caseID), age: age,
                        // The verified address; without one, the address the resident gave on the case's form.
                        address: email ?? contact,
                        // The language the resident chose; until they chose one, the case's.
                        language: Resident.Locale(rawValue: locale ?? caseLanguage ?? "nl") ?? .nl,
                        resident: resident,
                        switchedOff: nkind.preference.map(off.contains) ?? false))
            }
            guard let mine = notifications.first(where: { $0.id == id }) else {
                // In a mail already: this job's, not sent yet (send it again), or another job's (nothing to do).
                return try await self.unfinished(job: job, on: connection).map(PreparedMail.send) ?? .nothing
            }
            if mine.age < window.seconds { return .wait(.milliseconds(Int64((window.seconds - mine.age) * 1000) + 1)) }

            let noAddress = notifications.filter { $0.address == nil }.map(\.id)
            let switchedOff = notifications.filter { $0.address != nil && $0.switchedOff }.map(\.id)
            guard let address = mine.address, !mine.switchedOff else {
                try await self.skip(noAddress: noAddress, switchedOff: switchedOff, on: connection)
                return .nothing
            }
            // Another address (cases with different form addresses, no verified one) is another mail, by its own job.
            let carried = notifications.filter { !$0.switchedOff && $0.address?.lowercased() == address.lowercased() }
            let messageID = "<\(UUID().uuidString.lowercased())@\(self.messageIDDomain)>"
            let inserted = try await connection.query(
                """
                WITH no_address AS (
                    UPDATE notifications SET skipped = 'no-address' WHERE id = ANY(\(noAddress))
                ), switched_off AS (
                    UPDATE notifications SET skipped = 'switched-off' WHERE id = ANY(\(switchedOff))
                ), delivery AS (
                    INSERT INTO mail_deliveries (kind, message_id, resident_id, address, language, job_id)
                    VALUES ('update', \(messageID), \(mine.resident), \(address), \(mine.language.rawValue), \(job.rawValue))
                    RETURNING id
                ), carried AS (
                    UPDATE notifications SET delivery_id = delivery.id FROM delivery WHERE notifications.id = ANY(\(carried.map(\.id)))
                )
                SELECT id FROM delivery
                """,
                logger: self.logger
            )
            guard let delivery = try await inserted.decode(Int64.self).first(where: { _ in true }) else { throw StoreError.noRowReturned }
            return .send(
                MailDelivery(
                    id: delivery, kind: .update, messageID: messageID, address: address, language: mine.language,
                    items: carried.map(\.item)))
        }
    }

    /// Prepares the verification mail for `resident` as `job`, if `code` is still the code waiting for their pending
    /// address (a newer request or a verified address makes it moot).
    public func prepareVerification(resident: UUID, code: String, job: JobID) async throws -> MailDelivery? {
        try await self.client.transaction(logger: self.logger) { connection in
            let rows = try await connection.query(
                """
                SELECT pending_email, locale FROM residents
                WHERE id = \(resident) AND email_code_hash = \(ResidentStore.codeHash(code, resident: resident))
                  AND email_code_expires_at > now() AND pending_email IS NOT NULL
                """,
                logger: self.logger
            )
            guard let (address, locale) = try await rows.decode((String, String).self).first(where: { _ in true }) else { return nil }
            let language = Resident.Locale(rawValue: locale) ?? .nl
            let messageID = "<\(UUID().uuidString.lowercased())@\(self.messageIDDomain)>"
            let inserted = try await connection.query(
                """
                INSERT INTO mail_deliveries (kind, message_id, resident_id, address, language, job_id)
                VALUES ('verification', \(messageID), \(resident), \(address), \(language.rawValue), \(job.rawValue))
                RETURNING id
                """,
                logger: self.logger
            )
            guard let id = try await inserted.decode(Int64.self).first(where: { _ in true }) else { throw StoreError.noRowReturned }
            return MailDelivery(id: id, kind: .verification, messageID: messageID, address: address, language: language, items: [])
        }
    }

    /// Records an attempt; `sent` and `permanent` finish the delivery. Committed when this returns; the attempts of
    /// senders that finish together share one statement (``GroupCommit``). A finished delivery stays as it is (an
    /// attempt that lost its lease may report after another one finished it), but the attempt is recorded.
    public func record(_ outcome: MailAttemptOutcome, of delivery: Int64, relay: String, reply: String?) async throws {
        // jsonb cannot hold NUL, and one bad reply must not fail the attempts recorded with it.
        let clean = { (text: String) in String(text.replacingOccurrences(of: "\u{0}", with: "").prefix(1000)) }
        let attempt = Attempt(delivery: delivery, relay: clean(relay), outcome: outcome.rawValue, reply: reply.map(clean))
        try await self.attempts.submit(attempt, logger: self.logger)
    }

    /// One statement for a batch of attempts: every attempt is inserted; each delivery takes the state of its most
    /// final attempt in the batch (sent, then failed, then still sending), and its row is locked in id order first,
    /// so two batches never deadlock.
    private static func recordAttempts(_ attempts: [Attempt]) throws -> PostgresQuery {
        let json = String(decoding: try JSONEncoder().encode(attempts), as: UTF8.self)
        return """
            WITH input AS (
                SELECT * FROM jsonb_to_recordset(\(json)::jsonb) AS x(delivery bigint, relay text, outcome text, reply text)
            ), attempt AS (
                INSERT INTO mail_attempts (delivery_id, relay, outcome, reply) SELECT delivery, relay, outcome, reply FROM input
            ), chosen AS (
                SELECT DISTINCT ON (delivery) * FROM input
                ORDER BY delivery, CASE outcome WHEN 'sent' THEN 0 WHEN 'permanent' THEN 1 ELSE 2 END
            ), locked AS (
                SELECT d.id FROM mail_deliveries d JOIN chosen ON chosen.delivery = d.id
                WHERE d.state = 'sending'
                ORDER BY d.id
                FOR NO KEY UPDATE OF d
            )
            UPDATE mail_deliveries d
            SET state = CASE chosen.outcome WHEN 'sent' THEN 'sent' WHEN 'permanent' THEN 'failed' ELSE 'sending' END,
                last_reply = chosen.reply,
                finished_at = CASE WHEN chosen.outcome = 'transient' THEN NULL ELSE now() END
            FROM chosen JOIN locked ON locked.id = chosen.delivery
            WHERE d.id = chosen.delivery AND d.state = 'sending'
            """
    }

    /// Marks as failed the deliveries still `sending` whose job is no longer pending or running (it died on a crash
    /// during its last attempt, or an operator cancelled it): nothing will send them any more. Returns their ids and
    /// kinds, for the error signal.
    public func failAbandoned() async throws -> [(id: Int64, kind: MailDelivery.Kind)] {
        let rows = try await self.client.query(
            """
            UPDATE mail_deliveries d
            SET state = 'failed', finished_at = now(),
                last_reply = coalesce(d.last_reply || '; ', '') || 'not sent: its job ended before the relay accepted it'
            WHERE d.state = 'sending' AND d.created_at < now() - interval '1 minute'
              AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.job_id AND j.state IN ('pending', 'running'))
            RETURNING d.id, d.kind
            """,
            logger: self.logger
        )
        var abandoned: [(id: Int64, kind: MailDelivery.Kind)] = []
        for try await (id, kind) in rows.decode((Int64, String).self) {
            abandoned.append((id, MailDelivery.Kind(rawValue: kind) ?? .update))
        }
        return abandoned
    }

    /// Deliveries that failed for good, newest first (including those whose job ended without sending them:
    /// ``failAbandoned()``).
    public func failed(limit: Int = 100) async throws -> [FailedDelivery] {
        let rows = try await self.client.query(
            """
            SELECT d.id, d.kind, d.created_at, d.address, d.last_reply,
                   (SELECT count(*) FROM mail_attempts a WHERE a.delivery_id = d.id)
            FROM mail_deliveries d
            WHERE d.state = 'failed'
            ORDER BY d.created_at DESC
            LIMIT \(limit)
            """,
            logger: self.logger
        )
        var failed: [FailedDelivery] = []
        for try await (id, kind, createdAt, address, reply, attempts) in rows.decode((Int64, String, Date, String, String?, Int).self) {
            failed.append(
                FailedDelivery(
                    id: id, kind: MailDelivery.Kind(rawValue: kind) ?? .update, createdAt: createdAt,
                    maskedAddress: Self.mask(address), attempts: attempts, lastReply: reply))
        }
        return failed
    }

    /// What ``resend(_:jobs:)`` did.
    public enum Resend: Sendable, Equatable {
        /// The delivery is handed to a new notifier job, which sends it unchanged, with its Message-ID.
        case queued(JobID)
        case unknown
        /// Only a failed delivery is sent again (one being sent is already on its way; a sent one arrived).
        case notFailed
        /// A verification code is worthless after 30 minutes: the resident asks for a new one instead.
        case verification
    }

    /// Sends a failed mail again (`PortalAPI mail resend`): the delivery goes back to `sending` under a new notifier
    /// job, which finds it as its own unfinished mail and sends it to the same address with the same Message-ID.
    public func resend(_ id: Int64, jobs: JobQueue) async throws -> Resend {
        try await self.client.transaction(logger: self.logger) { connection in
            let rows = try await connection.query(
                """
                SELECT d.kind, d.state, (SELECT min(n.id) FROM notifications n WHERE n.delivery_id = d.id)
                FROM mail_deliveries d WHERE d.id = \(id) FOR UPDATE
                """,
                logger: self.logger)
            guard let (kind, state, notification) = try await rows.decode((String, String, Int64?).self).first(where: { _ in true }) else {
                return .unknown
            }
            guard state == "failed" else { return .notFailed }
            guard kind == MailDelivery.Kind.update.rawValue, let notification else { return .verification }
            let job = try NewJob(
                NotificationJob.kind, payload: NotificationJob(notification: notification), uniqueKey: "notification:\(notification)")
            guard case .enqueued(let jobID) = try await jobs.enqueue(job, on: connection) else { return .notFailed }
            try await connection.query(
                "UPDATE mail_deliveries SET state = 'sending', job_id = \(jobID.rawValue), finished_at = NULL WHERE id = \(id)",
                logger: self.logger)
            return .queued(jobID)
        }
    }

    /// Open notifications whose job is no longer pending or running (it was cancelled, or died before preparing a
    /// mail): nothing will send them unless an operator acts (docs/MAIL.md).
    public func stranded() async throws -> Int {
        let rows = try await self.client.query(
            """
            SELECT count(*) FROM notifications n
            WHERE n.delivery_id IS NULL AND n.skipped IS NULL AND n.created_at < now() - interval '1 minute'
              AND NOT EXISTS (
                  SELECT 1 FROM jobs j
                  WHERE j.unique_key = 'notification:' || n.id AND j.state IN ('pending', 'running'))
            """,
            logger: self.logger
        )
        return try await rows.decode(Int.self).first { _ in true } ?? 0
    }

    /// `inwoner@example.nl` as `i***@example.nl`.
    public static func mask(_ address: String) -> String {
        guard let at = address.lastIndex(of: "@"), at > address.startIndex else { return "***" }
        return "\(address[address.startIndex])***\(address[at...])"
    }

    private func items(of delivery: Int64, on connection: PostgresConnection) async throws -> [MailDelivery.Item] {
        let rows = try await connection.query(
            "SELECT kind, case_id FROM notifications WHERE delivery_id = \(delivery) ORDER BY id", logger: self.logger)
        var items: [MailDelivery.Item] = []
        for try await (kind, caseID) in rows.decode((String, UUID?).self) {
            guard let kind = NotificationKind(rawValue: kind) else {
                throw StoreError.unexpectedValue("notification of delivery \(delivery)")
            }
            items.append(.init(kind: kind, caseID: caseID))
        }
        return items
    }

    private func skip(noAddress: [Int64], switchedOff: [Int64], on connection: PostgresConnection) async throws {
        guard !noAddress.isEmpty || !switchedOff.isEmpty else { return }
        try await connection.query(
            """
            UPDATE notifications SET skipped = CASE WHEN id = ANY(\(noAddress)) THEN 'no-address' ELSE 'switched-off' END
            WHERE id = ANY(\(noAddress + switchedOff))
            """,
            logger: self.logger
        )
    }
}
