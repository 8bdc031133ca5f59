import Foundation
import Hummingbird
import PostgresNIO
import Shared

/// What residents and businesses see of their cases: `GET /api/v1/cases`, `GET /api/v1/cases/{id}` and
/// `POST /api/v1/cases/{id}/feedback`. Every lookup goes through the subject in the request's context, so another
/// resident's case id answers 404 exactly like an id that does not exist. Texts come in the resident's language.
struct CasesController {
    let identity: IdentityServices
    let cases = CaseStore()
    let caseTypes = CaseTypeStore()

    func register(on routes: APIRoutes) {
        routes.resident(.get, "/api/v1/cases", self.list)
        routes.resident(.get, "/api/v1/cases/{id}", self.show)
        routes.resident(.post, "/api/v1/cases/{id}/feedback", self.feedback)
    }

    func list(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        var parameters = QueryReader(request)
        var query = CaseListQuery(subject: context.resident.subject)
        query.state = parameters.choice("state", CaseListQuery.State.self)
        query.caseType = parameters.string("caseType")
        query.after = parameters.cursor()
        query.limit = parameters.limit(default: query.limit, maximum: 100)
        try parameters.finish()
        // The record is written while the list is read, and committed before the data is sent: no disclosure
        // without its record.
        async let recorded: Void = self.identity.audit.record(
            self.auditRecord("case.list.read", objectID: nil, context: context), logger: context.logger)
        let (items, next) = try await self.cases.list(query, client: self.identity.database, logger: context.logger)
        try await recorded
        let locale = context.resident.locale
        return try JSONResponse.make(
            .ok, CaseListView(items: items.map { CaseListItemView($0, locale: locale) }, next: next?.token)
        )
    }

    func show(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        let id = try Self.caseID(context)
        let view = try await self.identity.database.transaction(logger: context.logger) { connection -> CaseDetailView? in
            guard let record = try await self.cases.find(.owned(id, by: context.resident.subject), on: connection, logger: context.logger)
            else { return nil }
            let history = try await self.cases.history(of: record.id, on: connection, logger: context.logger)
            let caseType = try await self.caseTypes.find(id: record.caseTypeID, on: connection, logger: context.logger)
            let department = try await self.identity.departments.contact(of: record.departmentID, on: connection, logger: context.logger)
            let mailFailed = try await NotificationStore().lastMailFailed(caseID: record.id, on: connection, logger: context.logger)
            let counts = try await MessageStore().counts(caseIDs: [record.id], on: connection, logger: context.logger)[record.id] ?? (0, 0)
            try await self.audit("case.read", objectID: record.id, context: context, on: connection)
            return CaseDetailView(
                record,
                caseType: caseType,
                history: history,
                departmentName: department?.name ?? "",
                departmentContact: department?.contact,
                mailFailed: mailFailed,
                counts: counts,
                locale: context.resident.locale
            )
        }
        guard let view else { throw Problem.notFound }
        return try JSONResponse.make(.ok, view)
    }

    func feedback(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        let id = try Self.caseID(context)
        var body = try await JSONBody.read(request, context: context, limit: 16 * 1024)
        let rating = body.integer("rating", required: true, in: 1...5)
        let comment = body.string("comment", maxLength: 2000)
        try body.finish()
        guard let rating else { throw Problem.invalidInput([]) }
        do {
            try await self.identity.database.transaction(logger: context.logger) { connection in
                guard
                    let record = try await self.cases.find(
                        .owned(id, by: context.resident.subject),
                        lock: true,
                        on: connection,
                        logger: context.logger
                    )
                else { throw Problem.notFound }
                try await self.cases.giveFeedback(
                    on: record, rating: rating, comment: comment, connection: connection, logger: context.logger)
                try await self.audit("case.feedback", objectID: record.id, context: context, on: connection)
            }
        } catch let error as CaseError {
            throw Problem(status: .conflict, code: "conflict", detail: error.description)
        }
        return Response(status: .created)
    }

    /// The case id from the path; an id that is not a UUID is simply not found.
    static func caseID(_ context: ResidentRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else { throw Problem.notFound }
        return id
    }

    private func audit(_ activity: String, objectID: UUID?, context: ResidentRequestContext, on connection: PostgresConnection) async throws
    {
        try await self.identity.audit.record(
            self.auditRecord(activity, objectID: objectID, context: context), on: connection, logger: context.logger)
    }

    private func auditRecord(_ activity: String, objectID: UUID?, context: ResidentRequestContext) -> AuditRecord {
        AuditRecord(
            activity: activity,
            actor: .resident(context.resident.id),
            subject: context.resident.subject,
            objectType: "case",
            objectID: objectID?.uuidString.lowercased(),
            traceID: context.traceID
        )
    }
}

// MARK: Views

struct CaseListView: Encodable {
    let items: [CaseListItemView]
    /// The cursor of the next page; null on the last page. Encoded explicitly, so clients always see the key.
    let next: String?

    enum CodingKeys: String, CodingKey { case items, next }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.items, forKey: .items)
        try container.encode(self.next, forKey: .next)
    }
}

struct CaseTypeRef: Encodable {
    let code: String
    let name: String
}

struct ResidentStatusView: Encodable {
    let code: String
    let text: String
    let setAt: Date
    let final: Bool

    init(_ status: CurrentStatus, locale: Resident.Locale) {
        self.code = status.code
        self.text = status.text.text(for: locale)
        self.setAt = status.setAt
        self.final = status.final
    }
}

struct CaseListItemView: Encodable {
    let id: String
    let caseType: CaseTypeRef
    let title: String
    let status: ResidentStatusView?
    let dueDate: String?
    let overdue: Bool
    let unreadMessages: Int
    let documents: Int

    init(_ item: CaseListItem, locale: Resident.Locale) {
        self.id = item.id.uuidString.lowercased()
        self.caseType = CaseTypeRef(code: item.caseTypeCode, name: item.caseTypeName.text(for: locale))
        self.title = item.title
        self.status = item.status.map { ResidentStatusView($0, locale: locale) }
        self.dueDate = item.dueDate
        self.overdue = item.overdue
        self.unreadMessages = item.unreadMessages
        self.documents = item.documents
    }
}

struct CaseDetailView: Encodable {
    struct HistoryEntry: Encodable {
        let code: String
        let text: String
        let explanation: String?
        let setAt: Date
        let final: Bool
        /// This entry corrects an earlier status, which it replaces.
        let correction: Bool
    }

    struct ContactView: Encodable {
        let name: String
        let phone: String?
        let email: String?
        let hours: String?
    }

    let id: String
    let caseType: CaseTypeRef
    let title: String
    let department: String
    let submittedAt: Date
    let status: ResidentStatusView?
    let dueDate: String?
    let overdue: Bool
    /// Days past the due date while the case is open; 0 when on time.
    let overdueDays: Int
    let history: [HistoryEntry]
    /// The names of the steps still to come, in order.
    let nextSteps: [String]
    let contact: ContactView
    let unreadMessages: Int
    let documents: Int
    /// The last mail about this case could not be delivered: "we could not e-mail you; check your address".
    let mailFailed: Bool

    init(
        _ record: CaseRecord,
        caseType: CaseType?,
        history: [StatusEvent],
        departmentName: String,
        departmentContact: Contact?,
        mailFailed: Bool = false,
        counts: (unread: Int, documents: Int) = (0, 0),
        locale: Resident.Locale
    ) {
        self.id = record.id.uuidString.lowercased()
        self.caseType = CaseTypeRef(code: record.caseTypeCode, name: caseType?.name.text(for: locale) ?? record.caseTypeCode)
        self.title = record.title
        self.department = departmentName
        self.submittedAt = record.submittedAt
        self.status = record.status.map { ResidentStatusView($0, locale: locale) }
        self.dueDate = record.dueDate
        let days = Self.daysOverdue(record.dueDate, final: record.status?.final ?? false)
        self.overdue = days > 0
        self.overdueDays = days
        self.history = history.map {
            HistoryEntry(
                code: $0.statusCode,
                text: $0.text.text(for: locale),
                explanation: $0.explanation?.text(for: locale),
                setAt: $0.setAt,
                final: $0.final,
                correction: $0.corrects != nil
            )
        }
        var next: [String] = []
        if let caseType, record.status?.final != true {
            let steps = caseType.statusTypes
            let position = record.status.flatMap { current in steps.firstIndex { $0.code == current.code } }
            let remaining = position.map { steps[($0 + 1)...] } ?? steps[...]
            next = remaining.map { $0.name.text(for: locale) }
        }
        self.nextSteps = next
        // Whom to ask: the case's handler, else the department's general contact, else at least the department's name.
        let contact = record.handler ?? departmentContact ?? Contact(name: departmentName)
        self.contact = ContactView(name: contact.name, phone: contact.phone, email: contact.email, hours: contact.hours)
        self.unreadMessages = counts.unread
        self.documents = counts.documents
        self.mailFailed = mailFailed
    }

    /// Whole days from the due date to today in Dutch time, for an open case past it; otherwise 0.
    static func daysOverdue(_ dueDate: String?, final: Bool, now: Date = Date()) -> Int {
        guard !final, let dueDate else { return 0 }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Europe/Amsterdam")!
        let parts = dueDate.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, let due = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2])) else {
            return 0
        }
        let today = calendar.startOfDay(for: now)
        return max(0, calendar.dateComponents([.day], from: due, to: today).day ?? 0)
    }
}
