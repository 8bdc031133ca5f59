public import Foundation
public import Logging
public import PostgresNIO

/// A bericht between a department and a resident.
public struct MessageRecord: Sendable, Equatable {
    public enum Direction: String, Sendable, Codable {
        case toResident = "to-resident"
        case fromResident = "from-resident"
    }

    public var id: UUID
    public var departmentID: UUID
    public var owner: Subject
    public var caseID: UUID?
    public var direction: Direction
    public var title: String?
    public var body: String
    public var documentIDs: [UUID]
    public var readAt: Date?
    /// Messages from the resident: when the department got it; nil while pending.
    public var deliveredAt: Date?
    public var sentAt: Date
    public var position: Int64
}

/// A message about to be sent.
public struct NewMessage: Sendable {
    public var departmentID: UUID
    public var owner: Subject
    public var caseID: UUID?
    public var direction: MessageRecord.Direction
    public var title: String?
    public var body: String
    public var documentIDs: [UUID]
    public var externalID: String?

    public init(
        departmentID: UUID, owner: Subject, caseID: UUID?, direction: MessageRecord.Direction, title: String?, body: String,
        documentIDs: [UUID] = [], externalID: String? = nil
    ) {
        self.departmentID = departmentID
        self.owner = owner
        self.caseID = caseID
        self.direction = direction
        self.title = title
        self.body = body
        self.documentIDs = documentIDs
        self.externalID = externalID
    }
}

/// The `messages` table (migration 0008).
public struct MessageStore: Sendable {
    public init() {}

    /// The longest message body, in characters.
    public static let maxBodyLength = 10_000

    static let columns = """
        m.id, m.department_id, m.subject_kind, m.subject, m.case_id, m.direction, m.title, m.body, m.document_ids, m.read_at,
        m.delivered_at, m.created_at, m.position
        """

    typealias Row = (UUID, UUID, String, String, UUID?, String, String?, String, [UUID], Date?, Date?, Date, Int64)

    static func record(_ row: Row) throws -> MessageRecord {
        let (id, department, kind, subject, caseID, direction, title, body, documents, readAt, deliveredAt, sentAt, position) = row
        guard let kind = Subject.Kind(rawValue: kind), let owner = try? Subject(kind: kind, validating: subject),
            let direction = MessageRecord.Direction(rawValue: direction)
        else { throw StoreError.unexpectedValue("messages row \(id)") }
        return MessageRecord(
            id: id, departmentID: department, owner: owner, caseID: caseID, direction: direction, title: title, body: body,
            documentIDs: documents, readAt: readAt, deliveredAt: deliveredAt, sentAt: sentAt, position: position)
    }

    /// Stores a message; `isNew` is false when the department sent one with this external id before (that one is
    /// returned, unchanged).
    public func send(_ message: NewMessage, on connection: PostgresConnection, logger: Logger) async throws -> (MessageRecord, isNew: Bool)
    {
        let inserted = try await self.all(
            """
            INSERT INTO messages AS m (department_id, subject_kind, subject, case_id, direction, title, body, document_ids, external_id,
                                       delivery)
            VALUES (\(message.departmentID), \(message.owner.kind.rawValue), \(message.owner.number), \(message.caseID),
                    \(message.direction.rawValue), \(message.title), \(message.body), \(message.documentIDs), \(message.externalID),
                    \(message.direction == .fromResident ? "pending" : nil))
            ON CONFLICT (department_id, external_id) DO NOTHING
            RETURNING \(unescaped: Self.columns)
            """,
            on: connection, logger: logger)
        if let record = inserted.first { return (record, true) }
        let existing = try await self.all(
            """
            SELECT \(unescaped: Self.columns) FROM messages m
            WHERE m.department_id = \(message.departmentID) AND m.external_id = \(message.externalID)
            """,
            on: connection, logger: logger)
        guard let record = existing.first else { throw StoreError.noRowReturned }
        return (record, false)
    }

    /// The message a department sent under its own id.
    public func find(
        external id: String, department: UUID, on connection: PostgresConnection, logger: Logger
    ) async throws -> MessageRecord? {
        try await self.all(
            "SELECT \(unescaped: Self.columns) FROM messages m WHERE m.department_id = \(department) AND m.external_id = \(id)",
            on: connection, logger: logger
        ).first
    }

    /// A message of `owner`; another resident's id finds nothing.
    public func find(_ id: UUID, owner: Subject, on connection: PostgresConnection, logger: Logger) async throws -> MessageRecord? {
        try await self.all(
            """
            SELECT \(unescaped: Self.columns) FROM messages m
            WHERE m.id = \(id) AND m.subject_kind = \(owner.kind.rawValue) AND m.subject = \(owner.number)
            """,
            on: connection, logger: logger
        ).first
    }

    /// A page of the inbox, newest first.
    public func inbox(
        owner: Subject, unreadOnly: Bool, after cursor: PageCursor?, limit: Int, on connection: PostgresConnection, logger: Logger
    ) async throws -> (items: [MessageRecord], next: PageCursor?) {
        let items = try await self.all(
            """
            SELECT \(unescaped: Self.columns) FROM messages m
            WHERE m.subject_kind = \(owner.kind.rawValue) AND m.subject = \(owner.number)
              AND (NOT \(unreadOnly) OR (m.direction = 'to-resident' AND m.read_at IS NULL))
              AND (\(cursor?.microseconds)::int8 IS NULL
                   OR (m.created_at, m.id) < (timestamptz 'epoch' + \(cursor?.microseconds)::int8 * interval '1 microsecond', \(cursor?.id)::uuid))
            ORDER BY m.created_at DESC, m.id DESC
            LIMIT \(limit + 1)
            """,
            on: connection, logger: logger)
        guard items.count > limit else { return (items, nil) }
        let last = items[limit - 1]
        return (Array(items.prefix(limit)), PageCursor(microseconds: Self.microseconds(last.sentAt), id: last.id))
    }

    /// Whole microseconds since 1970, as PostgreSQL stores a timestamp.
    static func microseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// How many messages to `owner` are unread.
    public func unreadCount(owner: Subject, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query(
            """
            SELECT count(*)::int8 FROM messages
            WHERE subject_kind = \(owner.kind.rawValue) AND subject = \(owner.number) AND direction = 'to-resident' AND read_at IS NULL
            """,
            logger: logger
        )
        return Int(try await rows.decode(Int64.self).first { _ in true } ?? 0)
    }

    /// Unread messages and stored documents per case, for the case page (the case list reads them in its own query).
    public func counts(
        caseIDs: [UUID], on connection: PostgresConnection, logger: Logger
    ) async throws -> [UUID: (unread: Int, documents: Int)] {
        guard !caseIDs.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT c.id,
                   (SELECT count(*) FROM messages m WHERE m.case_id = c.id AND m.direction = 'to-resident' AND m.read_at IS NULL)::int8,
                   (SELECT count(*) FROM documents d WHERE d.case_id = c.id AND d.state = 'stored')::int8
            FROM unnest(\(caseIDs)) AS c(id)
            """,
            logger: logger
        )
        var result: [UUID: (Int, Int)] = [:]
        for try await (id, unread, documents) in rows.decode((UUID, Int64, Int64).self) { result[id] = (Int(unread), Int(documents)) }
        return result
    }

    /// A case's messages, oldest first.
    public func thread(caseID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> [MessageRecord] {
        try await self.all(
            "SELECT \(unescaped: Self.columns) FROM messages m WHERE m.case_id = \(caseID) ORDER BY m.created_at, m.id",
            on: connection, logger: logger)
    }

    /// A message of a department's (one from a resident to it, or its own).
    public func find(_ id: UUID, department: UUID, on connection: PostgresConnection, logger: Logger) async throws -> MessageRecord? {
        try await self.all(
            "SELECT \(unescaped: Self.columns) FROM messages m WHERE m.id = \(id) AND m.department_id = \(department)", on: connection,
            logger: logger
        ).first
    }

    /// Marks a resident's message delivered (the sync worker handed it over).
    public func markDelivered(_ id: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "UPDATE messages SET delivery = 'delivered', delivered_at = now() WHERE id = \(id) AND delivery = 'pending'", logger: logger)
    }

    /// Marks messages to `owner` read (those already read keep their first reading time).
    public func markRead(_ ids: [UUID], owner: Subject, on connection: PostgresConnection, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        try await connection.query(
            """
            UPDATE messages SET read_at = now()
            WHERE id = ANY(\(ids)) AND subject_kind = \(owner.kind.rawValue) AND subject = \(owner.number)
              AND direction = 'to-resident' AND read_at IS NULL
            """,
            logger: logger
        )
    }

    /// Residents' messages to a department in the order it fetches them: every pending one not in an earlier page, or
    /// after `position`. Asking after a position confirms the messages offered before up to it (marked delivered).
    public func departmentFeed(
        department: UUID, after position: Int64, limit: Int, on connection: PostgresConnection, logger: Logger
    ) async throws -> [MessageRecord] {
        try await connection.query(
            """
            UPDATE messages SET delivery = 'delivered', delivered_at = now()
            WHERE department_id = \(department) AND direction = 'from-resident' AND delivery = 'pending'
              AND position <= \(position) AND offered_at IS NOT NULL
            """,
            logger: logger
        )
        return try await self.all(
            """
            UPDATE messages m SET offered_at = coalesce(m.offered_at, now())
            WHERE m.id IN (
                SELECT id FROM messages
                WHERE department_id = \(department) AND direction = 'from-resident' AND delivery = 'pending'
                  AND (position > \(position) OR offered_at IS NULL)
                ORDER BY position LIMIT \(limit))
            RETURNING \(unescaped: Self.columns)
            """,
            on: connection, logger: logger
        ).sorted { $0.position < $1.position }
    }

    private func all(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> [MessageRecord] {
        var records: [MessageRecord] = []
        for try await row in try await connection.query(query, logger: logger).decode(Row.self) {
            records.append(try Self.record(row))
        }
        return records
    }
}
