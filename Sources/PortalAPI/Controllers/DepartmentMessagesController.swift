import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PostgresNIO
import Shared

/// The department's side of documents and berichten: publishing a document to a resident's case, sending a message
/// (with an attachment when sent as a form), and fetching what residents uploaded and wrote. A department sees
/// only its own cases, messages and documents.
struct DepartmentMessagesController {
    let identity: IdentityServices
    let services: DocumentServices
    let jobs: JobQueue
    let messages = MessageStore()
    let cases = CaseStore()

    func register(on routes: APIRoutes) {
        routes.department(.post, "/api/v1/department/cases/{reference}/documents", self.publishDocument)
        routes.department(.post, "/api/v1/department/messages", self.sendMessage)
        routes.department(.get, "/api/v1/department/messages", self.fetchMessages)
        routes.department(.get, "/api/v1/department/documents", self.fetchDocuments)
        routes.department(.get, "/api/v1/department/documents/{documentId}/content", self.documentContent)
    }

    // MARK: Documents

    /// `POST /api/v1/department/cases/{reference}/documents`: a raw body named by `Content-Disposition`, or a form's
    /// `file` part. `Idempotency-Key` (the department's own id for the document) makes a repeat change nothing.
    func publishDocument(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        do {
            let reference = try DepartmentCasesController.pathCode(
                context, "reference", check: CaseCodes.isReference, what: "case reference")
            let externalID = try Self.idempotencyKey(request)
            let record = try await self.identity.database.withConnection { connection in
                try await self.cases.find(.reference(department: context.department.id, reference), on: connection, logger: context.logger)
            }
            guard let record else { throw Problem.notFound }
            let source = try await DocumentsController.source(request)
            let (document, isNew) = try await self.publish(
                source, owner: record.subject, caseID: record.id, externalID: externalID.map { "doc:\($0)" }, context: context)
            return try JSONResponse.make(isNew ? .created : .ok, DocumentView(document, href: Self.href(document)))
        } catch let problem as Problem {
            return DocumentServices.closing(problem, traceID: context.traceID, channel: context.channel)
        }
    }

    /// Receives a department's document for `owner` and tells them (by mail) in the same transaction.
    private func publish(
        _ source: UploadSource, owner: Subject, caseID: UUID?, externalID: String?, context: DepartmentRequestContext,
        alsoAccept: @Sendable (DocumentRecord, PostgresConnection) async throws -> Void = { _, _ in }
    ) async throws -> (DocumentRecord, isNew: Bool) {
        let document = NewDocument(
            departmentID: context.department.id, owner: owner, caseID: caseID, origin: .department,
            fileName: FileName.sanitise(source.fileName), storage: self.services.storage.kind, externalID: externalID)
        return try await self.services.receive(document, from: source, logger: context.logger) { stored, connection in
            try await self.identity.audit.record(
                Self.auditRecord("document.publish", stored.id, owner, objectType: "document", context: context), on: connection,
                logger: context.logger)
            if let caseID {
                try await NotificationStore().record(
                    [NewNotification(key: "document:\(stored.id.uuidString.lowercased())", kind: .document, caseID: caseID)],
                    jobs: self.jobs, traceID: context.traceID, on: connection, logger: context.logger)
            }
            try await alsoAccept(stored, connection)
        }
    }

    func fetchDocuments(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let (after, limit) = try Self.pageParameters(request)
        let page = try await self.identity.database.transaction(logger: context.logger) { connection in
            let documents = try await self.services.documents.departmentFeed(
                department: context.department.id, after: after, limit: limit, on: connection, logger: context.logger)
            let references = try await self.references(of: documents.compactMap(\.caseID), on: connection, context: context)
            try await self.identity.audit.record(
                documents.map { Self.auditRecord("document.fetch", $0.id, $0.owner, objectType: "document", context: context) },
                on: connection, logger: context.logger)
            return documents.map { DepartmentDocumentView($0, caseReference: $0.caseID.flatMap { references[$0] }, href: Self.href($0)) }
        }
        return try JSONResponse.make(.ok, DepartmentPage(items: page, next: max(after, page.map(\.position).max() ?? after)))
    }

    func documentContent(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        guard let text = context.parameters.get("documentId"), let id = UUID(uuidString: text) else { throw Problem.notFound }
        let record = try await self.identity.database.transaction(logger: context.logger) { connection -> DocumentRecord? in
            guard
                let record = try await self.services.documents.find(
                    id, department: context.department.id, on: connection, logger: context.logger)
            else { return nil }
            try await self.identity.audit.record(
                Self.auditRecord("document.read", id, record.owner, objectType: "document", context: context), on: connection,
                logger: context.logger)
            return record
        }
        guard let record else { throw Problem.notFound }
        return try self.services.download(record, request: request, logger: context.logger)
    }

    // MARK: Messages

    /// `POST /api/v1/department/messages`: a JSON message, or a form whose first part `message` is that JSON and whose
    /// optional second part `file` is an attachment.
    func sendMessage(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        do {
            if let boundary = MultipartReader.boundary(contentType: request.headers[.contentType]) {
                let reader = MultipartReader(body: request.body, boundary: boundary)
                guard let first = try await reader.nextPart(), first.name == "message" else {
                    throw Problem.invalidInput([
                        FieldError(name: "message", code: "required", reason: "The first part of the form must be the message, as JSON.")
                    ])
                }
                var body = try JSONBody.parse(ByteBuffer(string: try await reader.text(limit: JSONBody.bodyLimit)))
                let input = try await self.messageInput(&body, context: context)
                var file: UploadSource?
                while let part = try await reader.nextPart() {
                    if part.name == "file" {
                        file = try UploadSource.part(part, of: reader)
                        break
                    }
                }
                guard let file else { return try await self.store(input, attachment: nil, context: context) }
                return try await self.store(input, attachment: file, context: context)
            }
            var body = try await JSONBody.read(request, context: context)
            let input = try await self.messageInput(&body, context: context)
            return try await self.store(input, attachment: nil, context: context)
        } catch let problem as Problem {
            return DocumentServices.closing(problem, traceID: context.traceID, channel: context.channel)
        }
    }

    /// A message as the department sent it, checked.
    struct MessageInput: Sendable {
        var externalID: String?
        var owner: Subject
        var caseID: UUID?
        var title: String
        var body: String
        var documentID: UUID?
    }

    private func messageInput(_ body: inout JSONFields, context: DepartmentRequestContext) async throws -> MessageInput {
        let externalID = body.string("id", maxLength: 200)
        let reference = body.string("caseReference", maxLength: 200)
        let recipient = body.subject("recipient", required: reference == nil)
        let title = body.string("title", required: true, maxLength: 200)
        let text = body.string("body", required: true, maxLength: MessageStore.maxBodyLength)
        let documentID = body.uuids("documentIds", maxCount: 1)?.first
        if let externalID, externalID.isEmpty { body.fail("id", "invalid", "Must not be empty.") }
        if let title, title.trimmingCharacters(in: .whitespaces).isEmpty { body.fail("title", "required", "Must not be empty.") }
        if let text, text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { body.fail("body", "required", "Must not be empty.") }
        var caseRecord: CaseRecord?
        if let reference {
            caseRecord = try await self.identity.database.withConnection { connection in
                try await self.cases.find(.reference(department: context.department.id, reference), on: connection, logger: context.logger)
            }
            if caseRecord == nil { body.fail("caseReference", "unknown", "No case of yours has this reference.") }
            if let caseRecord, let recipient, recipient != caseRecord.subject {
                body.fail("recipient", "invalid", "The case belongs to someone else; leave recipient out for a message about a case.")
            }
        }
        if documentID != nil && reference == nil {
            body.fail("documentIds", "invalid", "Only a message about a case can refer to a document of that case.")
        }
        try body.finish()
        guard let title, let text, let owner = caseRecord?.subject ?? recipient else { throw Problem.invalidInput([]) }
        return MessageInput(externalID: externalID, owner: owner, caseID: caseRecord?.id, title: title, body: text, documentID: documentID)
    }

    private func store(_ input: MessageInput, attachment: UploadSource?, context: DepartmentRequestContext) async throws -> Response {
        // A repeat is answered with what was sent the first time, before any attachment is read.
        if let externalID = input.externalID,
            let existing = try await self.identity.database.withConnection({ connection in
                try await self.messages.find(
                    external: externalID, department: context.department.id, on: connection, logger: context.logger)
            })
        {
            return try await self.respond(existing, isNew: false, context: context)
        }
        let send: @Sendable (UUID?, PostgresConnection) async throws -> (MessageRecord, Bool) = { attachmentID, connection in
            var documentIDs: [UUID] = []
            if let id = input.documentID {
                guard
                    let document = try await self.services.documents.find(
                        id, department: context.department.id, on: connection, logger: context.logger),
                    document.caseID == input.caseID
                else {
                    throw Problem.invalidInput([
                        FieldError(name: "documentIds", code: "unknown", reason: "No document of this case has this id.")
                    ])
                }
                documentIDs.append(id)
            }
            if let attachmentID { documentIDs.append(attachmentID) }
            let (message, isNew) = try await self.messages.send(
                NewMessage(
                    departmentID: context.department.id, owner: input.owner, caseID: input.caseID, direction: .toResident,
                    title: input.title,
                    body: input.body, documentIDs: documentIDs, externalID: input.externalID),
                on: connection, logger: context.logger)
            if isNew {
                try await self.identity.audit.record(
                    Self.auditRecord("message.send", message.id, input.owner, objectType: "message", context: context), on: connection,
                    logger: context.logger)
                try await NotificationStore().record(
                    [NewNotification.message(message)], jobs: self.jobs, traceID: context.traceID, on: connection, logger: context.logger)
            }
            return (message, isNew)
        }
        let result: (MessageRecord, Bool)
        if let attachment {
            let box = ResultBox()
            _ = try await self.publish(
                attachment, owner: input.owner, caseID: input.caseID,
                externalID: input.externalID.map { "msg:\($0)" }, context: context
            ) { document, connection in
                box.set(try await send(document.id, connection))
            }
            // A repeated message with its attachment: the first one stands.
            if let stored = box.value {
                result = stored
            } else {
                result = try await self.identity.database.transaction(logger: context.logger) { try await send(nil, $0) }
            }
        } else {
            result = try await self.identity.database.transaction(logger: context.logger) { try await send(nil, $0) }
        }
        let (message, isNew) = result
        return try await self.respond(message, isNew: isNew, context: context)
    }

    private func respond(_ message: MessageRecord, isNew: Bool, context: DepartmentRequestContext) async throws -> Response {
        let documents = try await self.identity.database.withConnection { connection in
            try await self.services.documents.find(ids: message.documentIDs, on: connection, logger: context.logger)
        }
        let view = DepartmentMessageView(
            message, caseReference: nil, documents: documents.map { DepartmentDocumentView($0, caseReference: nil, href: Self.href($0)) })
        return try JSONResponse.make(isNew ? .created : .ok, view)
    }

    func fetchMessages(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let (after, limit) = try Self.pageParameters(request)
        let page = try await self.identity.database.transaction(logger: context.logger) { connection in
            let messages = try await self.messages.departmentFeed(
                department: context.department.id, after: after, limit: limit, on: connection, logger: context.logger)
            let references = try await self.references(of: messages.compactMap(\.caseID), on: connection, context: context)
            let documents = try await self.services.documents.find(
                ids: messages.flatMap(\.documentIDs), on: connection, logger: context.logger)
            let byID = Dictionary(documents.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            try await self.identity.audit.record(
                messages.map { Self.auditRecord("message.fetch", $0.id, $0.owner, objectType: "message", context: context) },
                on: connection, logger: context.logger)
            return messages.map { message in
                let reference = message.caseID.flatMap { references[$0] }
                return DepartmentMessageView(
                    message, caseReference: reference,
                    documents: message.documentIDs.compactMap { byID[$0] }.map {
                        DepartmentDocumentView($0, caseReference: reference, href: Self.href($0))
                    })
            }
        }
        return try JSONResponse.make(.ok, DepartmentPage(items: page, next: max(after, page.map(\.position).max() ?? after)))
    }

    // MARK: Helpers

    /// `after` (a position from an earlier page; fetching after it confirms everything up to it) and `limit`.
    static func pageParameters(_ request: Request) throws -> (after: Int64, limit: Int) {
        var parameters = QueryReader(request)
        let after = parameters.position("after")
        let limit = parameters.limit(default: 100, maximum: 500)
        try parameters.finish()
        return (after, limit)
    }

    static func idempotencyKey(_ request: Request) throws -> String? {
        guard let key = request.headers[.idempotencyKey] else { return nil }
        guard (1...200).contains(key.count), key.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw Problem.invalidInput([
                FieldError(
                    name: "Idempotency-Key", code: "invalid", reason: "1 to 200 visible ASCII characters: your own id for the document.")
            ])
        }
        return key
    }

    static func href(_ record: DocumentRecord) -> String {
        "/api/v1/department/documents/\(record.id.uuidString.lowercased())/content"
    }

    private func references(
        of caseIDs: [UUID], on connection: PostgresConnection, context: DepartmentRequestContext
    ) async throws -> [UUID: String] {
        guard !caseIDs.isEmpty else { return [:] }
        let rows = try await connection.query(
            "SELECT id, reference FROM cases WHERE id = ANY(\(caseIDs)) AND department_id = \(context.department.id)",
            logger: context.logger)
        var references: [UUID: String] = [:]
        for try await (id, reference) in rows.decode((UUID, String).self) { references[id] = reference }
        return references
    }

    static func auditRecord(
        _ activity: String, _ id: UUID, _ subject: Subject, objectType: String, context: DepartmentRequestContext
    ) -> AuditRecord {
        AuditRecord(
            activity: activity, actor: .department(context.department.id), subject: subject, objectType: objectType,
            objectID: id.uuidString.lowercased(), traceID: context.traceID)
    }
}

/// Carries a value out of a transaction closure.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (MessageRecord, Bool)?

    func set(_ value: (MessageRecord, Bool)) { self.lock.withLock { self.stored = value } }
    var value: (MessageRecord, Bool)? { self.lock.withLock { self.stored } }
}

extension NewNotification {
    /// A message to the resident: about its case, or (in general) to the resident.
    static func message(_ message: MessageRecord) -> NewNotification {
        NewNotification(
            key: "message:\(message.id.uuidString.lowercased())", kind: .message, caseID: message.caseID, subject: message.owner)
    }
}

struct DepartmentPage<Item: Encodable>: Encodable {
    let items: [Item]
    /// Pass as `after` for the next page; doing so confirms this page's items as received.
    let next: Int64
}

struct DepartmentDocumentView: Encodable {
    let id: String
    let position: Int64
    let caseReference: String?
    let fileName: String
    let contentType: String
    let size: Int64
    let sha256: String
    let addedBy: String
    let addedAt: Date
    let scan: String
    let href: String

    init(_ record: DocumentRecord, caseReference: String?, href: String) {
        self.id = record.id.uuidString.lowercased()
        self.position = record.position
        self.caseReference = caseReference
        self.fileName = record.fileName
        self.contentType = record.contentType
        self.size = record.size
        self.sha256 = record.sha256.hexadecimal
        self.addedBy = record.origin.rawValue
        self.addedAt = record.storedAt
        self.scan = record.scan.rawValue
        self.href = href
    }
}

struct DepartmentMessageView: Encodable {
    let id: String
    let position: Int64
    let caseReference: String?
    let direction: String
    let title: String?
    let body: String
    let documents: [DepartmentDocumentView]
    let sentAt: Date

    init(_ message: MessageRecord, caseReference: String?, documents: [DepartmentDocumentView]) {
        self.id = message.id.uuidString.lowercased()
        self.position = message.position
        self.caseReference = caseReference
        self.direction = message.direction.rawValue
        self.title = message.title
        self.body = message.body
        self.documents = documents
        self.sentAt = message.sentAt
    }
}

extension HTTPField.Name {
    static let idempotencyKey = Self("Idempotency-Key")!
}
