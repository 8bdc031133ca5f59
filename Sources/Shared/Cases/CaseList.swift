public import Foundation
public import Logging
public import PostgresNIO

/// One line of a resident's case list.
public struct CaseListItem: Sendable, Equatable {
    public var id: UUID
    public var caseTypeCode: String
    public var caseTypeName: LocalizedText
    public var title: String
    public var status: CurrentStatus?
    public var dueDate: String?
    /// Past its due date (in Dutch time) and not closed.
    public var overdue: Bool
    /// Messages to the resident about the case they have not read.
    public var unreadMessages: Int
    /// Documents stored for the case.
    public var documents: Int
}

/// Which of a resident's cases to list.
public struct CaseListQuery: Sendable {
    public enum State: String, Sendable, CaseIterable {
        case open
        case closed
    }

    public var subject: Subject
    public var state: State?
    public var caseType: String?
    public var after: PageCursor?
    public var limit: Int

    public init(subject: Subject, state: State? = nil, caseType: String? = nil, after: PageCursor? = nil, limit: Int = 20) {
        self.subject = subject
        self.state = state
        self.caseType = caseType
        self.after = after
        self.limit = limit
    }
}

/// Where a page of a list ends (the case list, the inbox): the last item's time (in whole microseconds, exactly as PostgreSQL
/// stores it, so no row is skipped or repeated by rounding) and id. Opaque to clients.
public struct PageCursor: Sendable, Equatable {
    public var microseconds: Int64
    public var id: UUID

    public init(microseconds: Int64, id: UUID) {
        self.microseconds = microseconds
        self.id = id
    }

    /// `<microseconds since 1970>.<uuid>`, base64url.
    public var token: String {
        SecretToken.base64URL(Array("\(self.microseconds).\(self.id.uuidString.lowercased())".utf8))
    }

    public init?(token: String) {
        guard let data = SecretToken.base64URLDecode(token), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else { return nil }
        self.init(microseconds: micros, id: id)
    }
}

/// The case list query, as prepared statements: it runs on every list request, and planning it each time cost
/// PostgreSQL more than running it. The first page and the pages after a cursor are two statements, so that the
/// cursor is always a bound on the index (a generic plan for "cursor or none" could not use it).
protocol CaseListStatement: PostgresPreparedStatement
where Row == (UUID, String, String, String?, String, String?, String?, String?, Date?, Bool, String?, Bool?, Int64, Int64, Int64) {
    var query: CaseListQuery { get }
}

extension CaseListStatement {
    static func listSQL(afterCursor: Bool) -> String {
        """
        SELECT c.id, ct.code, ct.name_nl, ct.name_en, c.title, c.status_code, c.status_text_nl, c.status_text_en,
               c.status_set_at, c.status_final, c.due_date::text,
               (c.due_date < (now() AT TIME ZONE 'Europe/Amsterdam')::date AND NOT c.status_final),
               (extract(epoch FROM c.last_activity_at) * 1000000)::bigint,
               (SELECT count(*) FROM messages m WHERE m.case_id = c.id AND m.direction = 'to-resident' AND m.read_at IS NULL),
               (SELECT count(*) FROM documents d WHERE d.case_id = c.id AND d.state = 'stored')
        FROM cases c JOIN case_types ct ON ct.id = c.case_type_id
        WHERE c.subject_kind = $1 AND c.subject = $2
          AND ($3::text IS NULL OR c.status_final = ($3::text = 'closed'))
          AND ($4::text IS NULL OR ct.code = $4::text)
        \(afterCursor ? "AND (c.last_activity_at, c.id) < ('epoch'::timestamptz + $6 * interval '1 microsecond', $7)" : "")
        ORDER BY c.last_activity_at DESC, c.id DESC
        LIMIT $5
        """
    }

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(self.query.subject.kind.rawValue)
        bindings.append(self.query.subject.number)
        bindings.append(self.query.state?.rawValue)
        bindings.append(self.query.caseType)
        bindings.append(Int64(self.query.limit + 1))
        if let after = self.query.after {
            bindings.append(after.microseconds)
            bindings.append(after.id)
        }
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}

struct FirstCaseListPage: CaseListStatement {
    static let sql = Self.listSQL(afterCursor: false)
    static let bindingDataTypes: [PostgresDataType] = [.text, .text, .text, .text, .int8]
    let query: CaseListQuery
}

struct NextCaseListPage: CaseListStatement {
    static let sql = Self.listSQL(afterCursor: true)
    static let bindingDataTypes: [PostgresDataType] = [.text, .text, .text, .text, .int8, .int8, .uuid]
    let query: CaseListQuery
}

extension CaseStore {
    /// One page of a resident's cases, newest activity first, and the cursor of the next page (nil on the last).
    public func list(_ query: CaseListQuery, client: PostgresClient, logger: Logger) async throws -> ([CaseListItem], next: PageCursor?) {
        var items: [CaseListItem] = []
        var lastMicroseconds: Int64 = 0
        for try await (
            id, code, nameNL, nameEN, title, statusCode, statusNL, statusEN, setAt, final, dueDate, overdue, micros, unread, documents
        )
            in try await query.after == nil
            ? client.execute(FirstCaseListPage(query: query), logger: logger)
            : client.execute(NextCaseListPage(query: query), logger: logger)
        {
            if items.count < query.limit { lastMicroseconds = micros }
            var status: CurrentStatus?
            if let statusCode, let statusNL, let setAt {
                status = CurrentStatus(code: statusCode, text: LocalizedText(nl: statusNL, en: statusEN), setAt: setAt, final: final)
            }
            items.append(
                CaseListItem(
                    id: id,
                    caseTypeCode: code,
                    caseTypeName: LocalizedText(nl: nameNL, en: nameEN),
                    title: title,
                    status: status,
                    dueDate: dueDate,
                    overdue: overdue ?? false,
                    unreadMessages: Int(unread),
                    documents: Int(documents)
                )
            )
        }
        guard items.count > query.limit else { return (items, nil) }
        items.removeLast()
        let last = items[items.count - 1]
        return (items, PageCursor(microseconds: lastMicroseconds, id: last.id))
    }

    /// Records a resident's rating of a closed case, once.
    public func giveFeedback(
        on record: CaseRecord,
        rating: Int,
        comment: String?,
        connection: PostgresConnection,
        logger: Logger
    ) async throws {
        guard record.status?.final == true else { throw CaseError.notFinal }
        let rows = try await connection.query(
            """
            INSERT INTO case_feedback (case_id, rating, comment) VALUES (\(record.id), \(rating), \(comment))
            ON CONFLICT (case_id) DO NOTHING RETURNING 1
            """,
            logger: logger
        )
        guard try await rows.decode(Int.self).first(where: { _ in true }) != nil else { throw CaseError.feedbackGiven }
    }
}
