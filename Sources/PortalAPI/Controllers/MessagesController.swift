import Foundation
import Hummingbird
import PostgresNIO
import Shared

/// A resident's berichten: the inbox, one message, a case's thread, and writing to the case handler. Reading a
/// message (alone or in its thread) marks it read. Messages are never edited once sent.
struct MessagesController {
    let identity: IdentityServices
    let services: DocumentServices
    let jobs: JobQueue
    let messages = MessageStore()
    let cases = CaseStore()

    /// The longest message a resident can write, in characters.
    static let maxResidentBody = 5000

    func register(on routes: APIRoutes) {
        routes.resident(.get, "/api/v1/messages", self.inbox)
        routes.resident(.get, "/api/v1/messages/{messageId}", self.show)
        routes.resident(.get, "/api/v1/cases/{id}/messages", self.thread)
        routes.resident(.post, "/api/v1/cases/{id}/messages", self.send)
    }

    func inbox(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        var parameters = QueryReader(request)
        let unreadOnly = parameters.choice("unread", QueryFlag.self) == .true
        let cursor = parameters.cursor()
        let limit = parameters.limit(default: 20, maximum: 100)
        try parameters.finish()
        let owner = context.resident.subject
        let view = try await self.identity.database.transaction(logger: context.logger) { connection in
            let (items, next) = try await self.messages.inbox(
                owner: owner, unreadOnly: unreadOnly, after: cursor, limit: limit, on: connection, logger: context.logger)
            let unread = try await self.messages.unreadCount(owner: owner, on: connection, logger: context.logger)
            let views = try await self.views(items, on: connection, logger: context.logger)
            try await self.audit("message.list.read", nil, context: context, on: connection)
            return InboxView(items: views, next: next?.token, unreadCount: unread)
        }
        return try JSONResponse.make(.ok, view)
    }

    func show(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        guard let text = context.parameters.get("messageId"), let id = UUID(uuidString: text) else { throw Problem.notFound }
        let owner = context.resident.subject
        let view = try await self.identity.database.transaction(logger: context.logger) { connection -> MessageView? in
            guard var message = try await self.messages.find(id, owner: owner, on: connection, logger: context.logger) else { return nil }
            if message.direction == .toResident && message.readAt == nil {
                try await self.messages.markRead([id], owner: owner, on: connection, logger: context.logger)
                message.readAt = Date()
            }
            try await self.audit("message.read", id, context: context, on: connection)
            return try await self.views([message], on: connection, logger: context.logger).first
        }
        guard let view else { throw Problem.notFound }
        return try JSONResponse.make(.ok, view)
    }

    func thread(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        let caseID = try CasesController.caseID(context)
        let owner = context.resident.subject
        let views = try await self.identity.database.transaction(logger: context.logger) { connection -> [MessageView]? in
            guard try await self.cases.find(.owned(caseID, by: owner), on: connection, logger: context.logger) != nil else { return nil }
            let thread = try await self.messages.thread(caseID: caseID, on: connection, logger: context.logger).filter { $0.owner == owner }
            let unread = thread.filter { $0.direction == .toResident && $0.readAt == nil }.map(\.id)
            try await self.messages.markRead(unread, owner: owner, on: connection, logger: context.logger)
            try await self.audit("message.thread.read", caseID, objectType: "case", context: context, on: connection)
            let now = Date()
            return try await self.views(
                thread.map { message in
                    var message = message
                    if unread.contains(message.id) { message.readAt = now }
                    return message
                }, on: connection, logger: context.logger)
        }
        guard let views else { throw Problem.notFound }
        return try JSONResponse.make(.ok, ["items": views])
    }

    func send(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        let caseID = try CasesController.caseID(context)
        let owner = context.resident.subject
        // Someone else's case is "not found" whatever the body says.
        let exists = try await self.identity.database.withConnection { connection in
            try await self.cases.find(.owned(caseID, by: owner), on: connection, logger: context.logger) != nil
        }
        guard exists else { throw Problem.notFound }
        var body = try await JSONBody.read(request, context: context)
        let text = body.string("body", required: true, maxLength: Self.maxResidentBody)
        let documentIDs = body.uuids("documentIds", maxCount: 10) ?? []
        if let text, text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            body.fail("body", "required", "Write a message.")
        }
        try body.finish()
        guard let text else { throw Problem.invalidInput([]) }
        let view = try await self.identity.database.transaction(logger: context.logger) { connection in
            guard let record = try await self.cases.find(.owned(caseID, by: owner), on: connection, logger: context.logger) else {
                throw Problem.notFound
            }
            let documents = try await self.services.documents.find(ids: documentIDs, on: connection, logger: context.logger)
            let usable = documents.filter { $0.owner == owner && $0.caseID == caseID && $0.origin == .resident }
            guard usable.count == Set(documentIDs).count else {
                throw Problem.invalidInput([
                    FieldError(name: "documentIds", code: "invalid", reason: "Refer only to documents you uploaded to this case.")
                ])
            }
            let (message, _) = try await self.messages.send(
                NewMessage(
                    departmentID: record.departmentID, owner: owner, caseID: caseID, direction: .fromResident, title: nil, body: text,
                    documentIDs: Array(Set(documentIDs))),
                on: connection, logger: context.logger)
            try await self.audit("message.send", message.id, context: context, on: connection)
            try await SyncJobs.deliver(
                message: message.id, department: record.departmentID, jobs: self.jobs, traceID: context.traceID, on: connection,
                logger: context.logger)
            return try await self.views([message], on: connection, logger: context.logger)[0]
        }
        var response = try JSONResponse.make(.created, view)
        response.headers[.location] = "/api/v1/messages/\(view.id)"
        return response
    }

    /// Views with their documents.
    func views(_ messages: [MessageRecord], on connection: PostgresConnection, logger: Logger) async throws -> [MessageView] {
        let documents = try await self.services.documents.find(ids: messages.flatMap(\.documentIDs), on: connection, logger: logger)
        let byID = Dictionary(documents.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return messages.map { message in
            MessageView(
                message,
                documents: message.documentIDs.compactMap { byID[$0] }.map { DocumentView($0, href: DocumentsController.href($0)) })
        }
    }

    private func audit(
        _ activity: String, _ id: UUID?, objectType: String = "message", context: ResidentRequestContext, on connection: PostgresConnection
    ) async throws {
        try await self.identity.audit.record(
            AuditRecord(
                activity: activity, actor: .resident(context.resident.id), subject: context.resident.subject, objectType: objectType,
                objectID: id?.uuidString.lowercased(), traceID: context.traceID),
            on: connection, logger: context.logger)
    }
}

/// A query flag: `true` or `false`.
enum QueryFlag: String, CaseIterable {
    case `true`, `false`
}

struct InboxView: Encodable {
    let items: [MessageView]
    let next: String?
    let unreadCount: Int

    enum CodingKeys: String, CodingKey { case items, next, unreadCount }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.items, forKey: .items)
        try container.encode(self.next, forKey: .next)
        try container.encode(self.unreadCount, forKey: .unreadCount)
    }
}

/// A message as the resident sees it.
struct MessageView: Encodable {
    let id: String
    let caseId: String?
    /// `to-resident` (from the municipality) or `from-resident`.
    let direction: String
    let title: String?
    let body: String
    let documents: [DocumentView]
    let sentAt: Date
    /// Messages to the resident: whether they read it.
    let read: Bool?
    /// Messages from the resident: whether the department has it.
    let delivered: Bool?

    init(_ message: MessageRecord, documents: [DocumentView]) {
        self.id = message.id.uuidString.lowercased()
        self.caseId = message.caseID?.uuidString.lowercased()
        self.direction = message.direction.rawValue
        self.title = message.title
        self.body = message.body
        self.documents = documents
        self.sentAt = message.sentAt
        self.read = message.direction == .toResident ? message.readAt != nil : nil
        self.delivered = message.direction == .fromResident ? message.deliveredAt != nil : nil
    }
}
