import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Shared

/// Receiving and serving documents, shared by the resident's and the department's endpoints.
struct DocumentServices: Sendable {
    let settings: DocumentSettings
    let database: PostgresClient
    /// Where new documents go.
    let storage: any DocumentStorage
    /// Where documents are read from, by the storage they were written to.
    let storages: [DocumentStorageKind: any DocumentStorage]
    let receiver: DocumentReceiver
    let documents = DocumentStore()

    init(settings: DocumentSettings, database: PostgresClient, logger: Logger) {
        self.settings = settings
        self.database = database
        self.storage = settings.makeStorage(database: database, logger: logger)
        self.storages = settings.storages(database: database, logger: logger)
        self.receiver = DocumentReceiver(storage: self.storage, clamd: settings.clamd, maxBytes: settings.maxBytes)
    }

    /// Receives `source` as `document`, then accepts it in one transaction with whatever `accept` records beside it
    /// (the audit record, a notification, a delivery job, and checks that may still refuse it, such as a quota another
    /// upload used up meanwhile). A document the department published before under the same external id is returned
    /// as it is, with `isNew` false. Nothing of a refused file is kept.
    func receive(
        _ document: NewDocument,
        from source: UploadSource,
        logger: Logger,
        accept: @Sendable (DocumentRecord, PostgresConnection) async throws -> Void
    ) async throws -> (DocumentRecord, isNew: Bool) {
        guard try await self.documents.begin(document, client: self.database, logger: logger) else {
            let existing = try await self.database.withConnection { connection in
                try await self.documents.find(
                    external: document.externalID ?? "", department: document.departmentID, on: connection, logger: logger)
            }
            guard let existing else { throw Problem(status: .conflict, code: "conflict", detail: "This document is still being received.") }
            return (existing, false)
        }
        do {
            let content = try await self.receiver.receive(id: document.id, fileName: document.fileName, next: source.next)
            let record = try await self.database.transaction(logger: logger) { connection in
                let record = try await self.documents.accept(document.id, content: content, on: connection, logger: logger)
                try await accept(record, connection)
                return record
            }
            logger.info(
                "document stored",
                metadata: [
                    "portal.document.id": "\(record.id.uuidString.lowercased())", "portal.document.bytes": "\(record.size)",
                    "portal.document.type": "\(record.contentType)", "portal.document.scan": "\(record.scan.rawValue)",
                ])
            return (record, true)
        } catch {
            // Only the content of a row that is gone: a commit whose answer was lost may have stored it after all.
            if (try? await self.documents.abandon(document.id, client: self.database, logger: logger)) == true,
                case .directory = self.storage.kind
            {
                try? await self.storage.delete([document.id])
            }
            if let refusal = error as? UploadRefusal {
                logger.notice(
                    "upload refused",
                    metadata: ["portal.document.id": "\(document.id.uuidString.lowercased())", "portal.refusal": "\(Self.reason(refusal))"])
                throw Self.problem(refusal)
            }
            throw error
        }
    }

    /// A short, content-free reason for the log (never the file name, which may carry personal data).
    static func reason(_ refusal: UploadRefusal) -> String {
        switch refusal {
        case .tooLarge: "too-large"
        case .type(.empty): "empty"
        case .type(.archive): "archive"
        case .type(.notAllowed): "type-not-allowed"
        case .type(.mismatch): "type-mismatch"
        case .infected: "infected"
        case .scanFailed(let error): "scan-failed: \(error)"
        case .incomplete: "incomplete"
        }
    }

    static func problem(_ refusal: UploadRefusal) -> Problem {
        switch refusal {
        case .tooLarge:
            // The rest of the body is not read: the connection closes after this answer.
            Problem(status: .contentTooLarge, code: "too-large", detail: refusal.description)
        case .type(.empty): Problem(status: .badRequest, code: "empty-file", detail: refusal.description)
        case .type: Problem(status: .unsupportedMediaType, code: "unsupported-file-type", detail: refusal.description)
        case .infected: Problem(status: .unprocessableContent, code: "infected", detail: refusal.description)
        case .scanFailed:
            Problem(status: .serviceUnavailable, code: "scanner-unavailable", detail: refusal.description, headers: [.retryAfter: "60"])
        case .incomplete: Problem(status: .badRequest, code: "incomplete-upload", detail: refusal.description)
        }
    }

    /// The answer to a refused upload: the connection closes right after it (`Connection: close`), so the rest of the
    /// body (up to 200 MB of a file over the limit) is not read, beyond what arrives while the answer goes out.
    /// (Shutting down only the reading side does not help: Linux then accepts and drops whatever the client sends.)
    static func closing(_ problem: Problem, traceID: String, channel: any Channel) -> Response {
        var response = problem.response(traceID: traceID)
        response.headers[.connection] = "close"
        let buffer = problem.body(traceID: traceID)
        response.body = ResponseBody(contentLength: buffer.readableBytes) { writer in
            try await writer.write(buffer)
            try await writer.finish(nil)
            channel.close(mode: .all, promise: nil)
        }
        return response
    }

    // MARK: Downloads

    /// The document's content: all of it, or the one byte range asked for (RFC 9110 §14), streamed a few chunks at
    /// a time. Every chunk is checked against its stored SHA-256 before a byte of it is sent: a damaged file ends the
    /// response early (the client sees an incomplete download, never wrong bytes) and is logged.
    func download(_ record: DocumentRecord, request: Request, logger: Logger) throws -> Response {
        guard let storage = self.storages[record.storage] else {
            logger.error(
                "document in a storage this process does not have", metadata: ["portal.document.storage": "\(record.storage.rawValue)"])
            throw Problem(status: .serviceUnavailable, code: "storage-unavailable", detail: "This document cannot be read at the moment.")
        }
        var headers: HTTPFields = [
            .contentType: record.contentType,
            .contentDisposition: FileName.contentDisposition(record.fileName),
            .acceptRanges: "bytes",
            .eTag: "\"\(record.sha256.hexadecimal)\"",
        ]
        var range: Range<Int64> = 0..<record.size
        var status = HTTPResponse.Status.ok
        if let header = request.headers[.range], Self.rangeApplies(request: request, record: record) {
            switch Self.byteRange(header, size: record.size) {
            case .some(.some(let requested)):
                range = requested
                status = .partialContent
                headers[.contentRange] = "bytes \(requested.lowerBound)-\(requested.upperBound - 1)/\(record.size)"
            case .some(.none):
                throw Problem(
                    status: .rangeNotSatisfiable, code: "range-not-satisfiable", detail: "The file has \(record.size) bytes.",
                    headers: [.contentRange: "bytes */\(record.size)"])
            case .none:
                break
            }
        }
        if status == .ok {
            // RFC 9530: the whole representation's digest, for clients that check it.
            headers[.reprDigest] = "sha-256=:\(record.sha256.base64EncodedString()):"
        }
        let body = ResponseBody(contentLength: Int(range.count)) { [range] writer in
            do {
                try await storage.verifiedBytes(of: record, range: range) { try await writer.write($0) }
            } catch let error as DocumentStorageError {
                logger.error(
                    "document content does not match its hash",
                    metadata: ["portal.document.id": "\(record.id.uuidString.lowercased())", "error": "\(error)"])
                throw error
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// `If-Range` with an ETag other than the file's means: send it all.
    static func rangeApplies(request: Request, record: DocumentRecord) -> Bool {
        guard let ifRange = request.headers[.ifRange] else { return true }
        return ifRange == "\"\(record.sha256.hexadecimal)\""
    }

    /// One range of `bytes=first-last`, `bytes=first-` or `bytes=-suffix`: nil when the header is not one such
    /// range (it is then ignored and everything sent), `.some(nil)` when it is but lies outside the file (416).
    static func byteRange(_ header: String, size: Int64) -> Range<Int64>?? {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.lowercased().hasPrefix("bytes="), !text.contains(",") else { return nil }
        let spec = text.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash]
        let last = spec[spec.index(after: dash)...]
        guard first.allSatisfy(\.isNumber), last.allSatisfy(\.isNumber), !(first.isEmpty && last.isEmpty) else { return nil }
        if first.isEmpty {
            guard let suffix = Int64(last), suffix > 0 else { return .some(nil) }
            return .some(max(0, size - suffix)..<size)
        }
        guard let start = Int64(first) else { return nil }
        guard start < size else { return .some(nil) }
        let end = last.isEmpty ? size - 1 : min(Int64(last) ?? Int64.max, size - 1)
        guard end >= start else { return nil }
        return .some(start..<end + 1)
    }
}

extension DocumentStore {
    /// The department's document with its own id (a repeated publish).
    func find(external: String, department: UUID, on connection: PostgresConnection, logger: Logger) async throws -> DocumentRecord? {
        let rows = try await connection.query(
            "SELECT id FROM documents WHERE department_id = \(department) AND external_id = \(external) AND state = 'stored'",
            logger: logger)
        guard let id = try await rows.decode(UUID.self).first(where: { _ in true }) else { return nil }
        return try await self.find(id, department: department, on: connection, logger: logger)
    }
}

/// How a document is shown, to residents and departments alike.
struct DocumentView: Encodable {
    let id: String
    let caseId: String?
    let fileName: String
    let contentType: String
    let size: Int64
    /// `resident` or `department`.
    let addedBy: String
    let addedAt: Date
    /// `clean` or `not-scanned`.
    let scan: String
    /// Resident uploads: whether the department has it. Null for the department's own documents.
    let delivered: Bool?
    let sha256: String
    let href: String

    init(_ record: DocumentRecord, href: String) {
        self.id = record.id.uuidString.lowercased()
        self.caseId = record.caseID?.uuidString.lowercased()
        self.fileName = record.fileName
        self.contentType = record.contentType
        self.size = record.size
        self.addedBy = record.origin.rawValue
        self.addedAt = record.storedAt
        self.scan = record.scan.rawValue
        self.delivered = record.origin == .resident ? record.deliveredAt != nil : nil
        self.sha256 = record.sha256.hexadecimal
        self.href = href
    }
}

extension HTTPField.Name {
    static let reprDigest = Self("Repr-Digest")!
}
