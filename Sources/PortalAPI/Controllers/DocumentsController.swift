import Foundation
import Hummingbird
import NIOCore
import PostgresNIO
import Shared

/// A resident's documents: uploads to one of their cases, the case's list, and downloads. Every lookup goes through
/// the resident's subject, so another resident's case or document answers 404 like one that does not exist.
struct DocumentsController {
    let identity: IdentityServices
    let services: DocumentServices
    let jobs: JobQueue
    let cases = CaseStore()

    func register(on routes: APIRoutes) {
        routes.resident(.post, "/api/v1/cases/{id}/documents", self.upload)
        routes.resident(.get, "/api/v1/cases/{id}/documents", self.list)
        routes.resident(.get, "/api/v1/documents/{documentId}/content", self.content)
    }

    func upload(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        let caseID = try CasesController.caseID(context)
        let owner = context.resident.subject
        let logger = context.logger
        do {
            // The case, its status and the quota are checked before a byte of the file is read.
            let record = try await self.identity.database.withConnection { connection in
                guard let record = try await self.cases.find(.owned(caseID, by: owner), on: connection, logger: logger) else {
                    throw Problem.notFound
                }
                try await self.checkAllowed(record, owner: owner, counting: nil, on: connection, logger: logger)
                return record
            }
            let source = try await Self.source(request)
            let document = NewDocument(
                departmentID: record.departmentID, owner: owner, caseID: record.id, origin: .resident,
                fileName: FileName.sanitise(source.fileName), storage: self.services.storage.kind)
            let (stored, _) = try await self.services.receive(document, from: source, logger: logger) { stored, connection in
                // Again under the case's lock: the status may have moved on, and parallel uploads share the quota.
                _ = try await self.cases.find(.owned(caseID, by: owner), lock: true, on: connection, logger: logger)
                try await self.checkAllowed(record, owner: owner, counting: stored, on: connection, logger: logger)
                try await self.identity.audit.record(
                    Self.auditRecord("document.upload", stored.id, context: context), on: connection, logger: logger)
                try await SyncJobs.deliver(
                    document: stored.id, department: stored.departmentID, jobs: self.jobs, traceID: context.traceID, on: connection,
                    logger: logger)
            }
            var response = try JSONResponse.make(.created, DocumentView(stored, href: Self.href(stored)))
            response.headers[.location] = "/api/v1/cases/\(caseID.uuidString.lowercased())/documents"
            return response
        } catch let problem as Problem {
            return DocumentServices.closing(problem, traceID: context.traceID, channel: context.channel)
        }
    }

    /// An upload's file: the `file` part of a form, or the raw body.
    static func source(_ request: Request) async throws -> UploadSource {
        guard let boundary = MultipartReader.boundary(contentType: request.headers[.contentType]) else {
            return try UploadSource.raw(request)
        }
        let reader = MultipartReader(body: request.body, boundary: boundary)
        while let part = try await reader.nextPart() {
            if part.name == "file" { return try UploadSource.part(part, of: reader) }
        }
        throw Problem.invalidInput([FieldError(name: "file", code: "required", reason: "The form has no part named file.")])
    }

    /// Refuses an upload the case does not take now: a closed case, a status that takes no documents, or the
    /// resident's quota for the case used up. `counting` is the upload itself once stored (it is in the usage).
    func checkAllowed(
        _ record: CaseRecord, owner: Subject, counting stored: DocumentRecord?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        guard try await self.services.documents.uploadsAllowed(caseID: record.id, on: connection, logger: logger) else {
            throw Problem(
                status: .conflict, code: "uploads-closed",
                detail: record.status?.final == true
                    ? "This case is closed: it takes no more documents."
                    : "This case does not take documents at the moment. The case page says when it does.")
        }
        let usage = try await self.services.documents.usage(
            caseID: record.id, owner: owner, including: stored?.id, on: connection, logger: logger)
        let settings = self.services.settings
        let tooMany = stored == nil ? usage.files >= settings.maxFilesPerCase : usage.files > settings.maxFilesPerCase
        if tooMany || usage.bytes > Int64(settings.maxBytesPerCase) {
            logger.notice(
                "upload refused",
                metadata: [
                    "portal.refusal": "quota", "portal.documents.files": "\(usage.files)", "portal.documents.bytes": "\(usage.bytes)",
                ])
            throw Problem(
                status: .conflict, code: "upload-quota",
                detail:
                    "You have uploaded as much to this case as we accept (\(settings.maxFilesPerCase) files, \(ByteCountFormatter.string(fromByteCount: Int64(settings.maxBytesPerCase), countStyle: .binary)) in all). Ask the case handler if more is needed."
            )
        }
    }

    func list(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        let caseID = try CasesController.caseID(context)
        let owner = context.resident.subject
        let views = try await self.identity.database.transaction(logger: context.logger) { connection -> [DocumentView]? in
            guard try await self.cases.find(.owned(caseID, by: owner), on: connection, logger: context.logger) != nil else { return nil }
            let documents = try await self.services.documents.list(caseID: caseID, on: connection, logger: context.logger)
            try await self.identity.audit.record(
                Self.auditRecord("document.list.read", caseID, objectType: "case", context: context), on: connection, logger: context.logger
            )
            return documents.filter { $0.owner == owner }.map { DocumentView($0, href: Self.href($0)) }
        }
        guard let views else { throw Problem.notFound }
        return try JSONResponse.make(.ok, ["items": views])
    }

    func content(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        guard let text = context.parameters.get("documentId"), let id = UUID(uuidString: text) else { throw Problem.notFound }
        let record = try await self.identity.database.transaction(logger: context.logger) { connection -> DocumentRecord? in
            guard
                let record = try await self.services.documents.find(
                    id, owner: context.resident.subject, on: connection, logger: context.logger)
            else { return nil }
            try await self.identity.audit.record(
                Self.auditRecord("document.read", id, context: context), on: connection, logger: context.logger)
            return record
        }
        guard let record else { throw Problem.notFound }
        return try self.services.download(record, request: request, logger: context.logger)
    }

    static func href(_ record: DocumentRecord) -> String {
        "/api/v1/documents/\(record.id.uuidString.lowercased())/content"
    }

    static func auditRecord(_ activity: String, _ id: UUID, objectType: String = "document", context: ResidentRequestContext) -> AuditRecord
    {
        AuditRecord(
            activity: activity,
            actor: .resident(context.resident.id),
            subject: context.resident.subject,
            objectType: objectType,
            objectID: id.uuidString.lowercased(),
            traceID: context.traceID
        )
    }
}

extension DocumentStore {
    /// Whether a case takes uploads now: open, and its current status's type allows them.
    func uploadsAllowed(caseID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query(
            """
            SELECT NOT c.status_final AND coalesce(st.uploads_allowed, false)
            FROM cases c LEFT JOIN status_types st ON st.case_type_id = c.case_type_id AND st.code = c.status_code
            WHERE c.id = \(caseID)
            """,
            logger: logger
        )
        return try await rows.decode(Bool.self).first { _ in true } ?? false
    }
}
