public import Foundation
public import Logging
public import PostgresNIO

/// Everything the portal holds about one person, for a request under the GDPR: an export (access, art. 15) and an
/// erasure (art. 17) of what the portal may erase. The departments' own systems stay the record of authority: an
/// erased case comes back if the department sends it again.
public struct PrivacyStore: Sendable {
    public let client: PostgresClient
    public let audit: AuditLog
    public let logger: Logger

    public init(client: PostgresClient, audit: AuditLog, logger: Logger) {
        self.client = client
        self.audit = audit
        self.logger = logger
    }

    /// One JSON document with every row about `subject`: the resident's profile and sessions, cases with their status
    /// history and feedback, documents (metadata; the content is downloaded in the portal), messages, notifications,
    /// mails sent to the resident's addresses, and the audit records about them. Recorded in the audit log.
    public func export(_ subject: Subject, hasher: SubjectHasher, actor: String, traceID: String) async throws -> String {
        let (kind, number, hash) = (subject.kind.rawValue, subject.number, hasher.hash(subject))
        return try await self.client.transaction(logger: self.logger) { connection in
            let rows = try await connection.query(
                """
                WITH r AS (SELECT * FROM residents WHERE subject_kind = \(kind) AND subject = \(number)),
                     c AS (SELECT * FROM cases WHERE subject_kind = \(kind) AND subject = \(number))
                SELECT jsonb_pretty(jsonb_build_object(
                  'subject', jsonb_build_object('kind', \(kind), 'number', \(number)),
                  'exportedAt', now(),
                  'resident', (SELECT to_jsonb(x) FROM (
                      SELECT id, locale, email, email_verified_at, pending_email, mail_preferences, created_at, last_login_at
                      FROM r) x),
                  'sessions', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.created_at), '[]') FROM (
                      SELECT s.method, s.acr, s.created_at, s.last_seen_at, s.expires_at FROM sessions s JOIN r ON r.id = s.resident_id) x),
                  'cases', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.submitted_at), '[]') FROM (
                      SELECT c.id, d.name AS department, c.reference, t.code AS case_type, c.title, c.submitted_at, c.due_date,
                             c.language, c.contact_email, c.handler, c.status_code, c.status_text_nl, c.status_text_en,
                             c.status_set_at, c.status_final,
                             (SELECT coalesce(jsonb_agg(to_jsonb(e) - 'case_id' ORDER BY e.sort_at, e.id), '[]')
                              FROM status_events e WHERE e.case_id = c.id) AS history,
                             (SELECT to_jsonb(f) - 'case_id' FROM case_feedback f WHERE f.case_id = c.id) AS feedback
                      FROM c JOIN departments d ON d.id = c.department_id JOIN case_types t ON t.id = c.case_type_id) x),
                  'documents', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.created_at), '[]') FROM (
                      SELECT id, case_id, origin, state, file_name, content_type, size, encode(sha256, 'hex') AS sha256, scan,
                             delivery, delivered_at, created_at
                      FROM documents WHERE subject_kind = \(kind) AND subject = \(number)) x),
                  'messages', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.created_at), '[]') FROM (
                      SELECT id, case_id, direction, title, body, document_ids, read_at, delivery, delivered_at, created_at
                      FROM messages WHERE subject_kind = \(kind) AND subject = \(number)) x),
                  'notifications', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.created_at), '[]') FROM (
                      SELECT n.kind, n.case_id, n.created_at, n.skipped, n.delivery_id FROM notifications n
                      WHERE n.case_id IN (SELECT id FROM c) OR (n.subject_kind = \(kind) AND n.subject = \(number))) x),
                  'mails', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.created_at), '[]') FROM (
                      SELECT id, kind, message_id, address, language, state, created_at, finished_at FROM mail_deliveries
                      WHERE resident_id IN (SELECT id FROM r)
                         OR id IN (SELECT n.delivery_id FROM notifications n
                                   WHERE n.case_id IN (SELECT id FROM c) OR (n.subject_kind = \(kind) AND n.subject = \(number)))) x),
                  'auditRecords', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.occurred_at), '[]') FROM (
                      SELECT occurred_at, activity, actor_kind, object_type, object_id, result FROM audit_log
                      WHERE subject_hash = \(hash)) x)
                ))::text
                """,
                logger: self.logger)
            let document = try await rows.decode(String.self).first { _ in true } ?? "{}"
            try await self.audit.record(
                AuditRecord(activity: "privacy.export", actor: .operator(actor), subject: subject, objectType: "subject", traceID: traceID),
                on: connection, logger: self.logger)
            return document
        }
    }

    /// What an erasure removed, or what stopped it.
    public struct Erasure: Sendable, Codable, Equatable {
        public var resident = 0
        public var cases = 0
        public var documents = 0
        public var messages = 0
        public var notifications = 0
        public var mails = 0
        /// Uploads and messages the department does not have yet: while any exist, nothing is erased (they are the
        /// resident's submissions to the municipality; erasing them here would lose them).
        public var waitingForDepartment = 0
        public var erased = false
        /// Documents whose content is in a shared folder, to remove after the commit.
        public var files: [UUID] = []

        public init() {}
    }

    /// Erases what the portal holds about `subject`: the profile (addresses, preferences) with its sessions, cases with
    /// their history, documents, messages and notifications, and the mails sent to the resident. Audit records stay
    /// (the municipality must be able to account for its processing; they hold only the keyed hash), and one more
    /// records the erasure. Nothing is erased while something the resident sent waits for the department; with
    /// `dryRun` it only counts.
    public func erase(
        _ subject: Subject, actor: String, traceID: String, dryRun: Bool, storages: [DocumentStorageKind: any DocumentStorage]
    ) async throws -> Erasure {
        let (kind, number) = (subject.kind.rawValue, subject.number)
        var erasure = try await self.client.transaction(logger: self.logger) { connection in
            // Lock the resident's cases first, so no upload or status can be accepted for them halfway through.
            try await connection.query(
                "SELECT id FROM cases WHERE subject_kind = \(kind) AND subject = \(number) ORDER BY id FOR UPDATE", logger: self.logger)
            let counts = try await connection.query(
                """
                SELECT (SELECT count(*) FROM residents WHERE subject_kind = \(kind) AND subject = \(number))::int8,
                       (SELECT count(*) FROM cases WHERE subject_kind = \(kind) AND subject = \(number))::int8,
                       (SELECT count(*) FROM documents WHERE subject_kind = \(kind) AND subject = \(number))::int8,
                       (SELECT count(*) FROM messages WHERE subject_kind = \(kind) AND subject = \(number))::int8,
                       (SELECT count(*) FROM notifications n LEFT JOIN cases c ON c.id = n.case_id
                        WHERE (c.subject_kind = \(kind) AND c.subject = \(number)) OR (n.subject_kind = \(kind) AND n.subject = \(number)))::int8,
                       (SELECT count(*) FROM mail_deliveries d
                        WHERE d.resident_id IN (SELECT id FROM residents WHERE subject_kind = \(kind) AND subject = \(number))
                           OR d.id IN (SELECT n.delivery_id FROM notifications n LEFT JOIN cases c ON c.id = n.case_id
                                       WHERE (c.subject_kind = \(kind) AND c.subject = \(number))
                                          OR (n.subject_kind = \(kind) AND n.subject = \(number))))::int8,
                       (SELECT count(*) FROM documents WHERE subject_kind = \(kind) AND subject = \(number) AND delivery = 'pending')::int8
                         + (SELECT count(*) FROM messages WHERE subject_kind = \(kind) AND subject = \(number) AND delivery = 'pending')::int8
                """,
                logger: self.logger)
            var erasure = Erasure()
            for try await (residents, cases, documents, messages, notifications, mails, waiting) in counts.decode(
                (Int, Int, Int, Int, Int, Int, Int).self)
            {
                (erasure.resident, erasure.cases, erasure.documents, erasure.messages) = (residents, cases, documents, messages)
                (erasure.notifications, erasure.mails, erasure.waitingForDepartment) = (notifications, mails, waiting)
            }
            guard !dryRun, erasure.waitingForDepartment == 0 else { return erasure }
            let files = try await connection.query(
                "SELECT id FROM documents WHERE subject_kind = \(kind) AND subject = \(number) AND storage <> 'postgres'",
                logger: self.logger)
            for try await id in files.decode(UUID.self) { erasure.files.append(id) }
            // Notifications point at mail deliveries, so they go first; cases take their own with them.
            // A mail goes with the notifications it carried (all of one resident), and with the resident it was sent to.
            let statements: [PostgresQuery] = [
                """
                WITH gone AS (
                    DELETE FROM notifications WHERE (subject_kind = \(kind) AND subject = \(number))
                       OR case_id IN (SELECT id FROM cases WHERE subject_kind = \(kind) AND subject = \(number))
                    RETURNING delivery_id)
                DELETE FROM mail_deliveries WHERE id IN (SELECT delivery_id FROM gone)
                """,
                """
                WITH mails AS (
                    SELECT d.id FROM mail_deliveries d JOIN residents r ON r.id = d.resident_id
                    WHERE r.subject_kind = \(kind) AND r.subject = \(number)),
                gone AS (DELETE FROM notifications WHERE delivery_id IN (SELECT id FROM mails))
                DELETE FROM mail_deliveries WHERE id IN (SELECT id FROM mails)
                """,
                "DELETE FROM messages WHERE subject_kind = \(kind) AND subject = \(number)",
                "DELETE FROM documents WHERE subject_kind = \(kind) AND subject = \(number)",
                "DELETE FROM cases WHERE subject_kind = \(kind) AND subject = \(number)",
                "DELETE FROM residents WHERE subject_kind = \(kind) AND subject = \(number)",
            ]
            for statement in statements { try await connection.query(statement, logger: self.logger) }
            try await self.audit.record(
                AuditRecord(activity: "privacy.erase", actor: .operator(actor), subject: subject, objectType: "subject", traceID: traceID),
                on: connection, logger: self.logger)
            erasure.erased = true
            return erasure
        }
        if erasure.erased, !erasure.files.isEmpty {
            for (_, storage) in storages where !(storage is PostgresDocumentStorage) { try await storage.delete(erasure.files) }
        }
        erasure.files = []
        return erasure
    }
}
