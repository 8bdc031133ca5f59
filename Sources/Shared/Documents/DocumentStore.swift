public import Foundation
public import Logging
public import PostgresNIO

/// A stored document's metadata.
public struct DocumentRecord: Sendable, Equatable {
    public enum Origin: String, Sendable, Codable {
        case resident
        case department
    }

    public var id: UUID
    public var departmentID: UUID
    public var owner: Subject
    public var caseID: UUID?
    public var origin: Origin
    public var fileName: String
    public var contentType: String
    public var size: Int64
    public var sha256: Data
    public var chunkHashes: Data
    public var storage: DocumentStorageKind
    public var scan: ScanResult
    /// Resident uploads: when the department got it; nil while pending. Always nil for the department's own.
    public var deliveredAt: Date?
    public var storedAt: Date
    /// The department's fetch order.
    public var position: Int64

    /// The SHA-256 of chunk `index`.
    public func chunkHash(_ index: Int) -> Data? {
        let start = index * 32
        guard index >= 0, start + 32 <= self.chunkHashes.count else { return nil }
        return self.chunkHashes.subdata(in: start..<start + 32)
    }
}

/// A document about to be received.
public struct NewDocument: Sendable {
    public var id: UUID
    public var departmentID: UUID
    public var owner: Subject
    public var caseID: UUID?
    public var origin: DocumentRecord.Origin
    public var fileName: String
    public var storage: DocumentStorageKind
    public var externalID: String?

    public init(
        id: UUID = UUID(), departmentID: UUID, owner: Subject, caseID: UUID?, origin: DocumentRecord.Origin, fileName: String,
        storage: DocumentStorageKind, externalID: String? = nil
    ) {
        self.id = id
        self.departmentID = departmentID
        self.owner = owner
        self.caseID = caseID
        self.origin = origin
        self.fileName = fileName
        self.storage = storage
        self.externalID = externalID
    }
}

/// How much a resident uploaded to a case.
public struct UploadUsage: Sendable, Equatable {
    public var files: Int
    public var bytes: Int64
}

/// The `documents` table (migration 0008). Content is in a ``DocumentStorage``.
public struct DocumentStore: Sendable {
    public init() {}

    static let columns = """
        d.id, d.department_id, d.subject_kind, d.subject, d.case_id, d.origin, d.file_name, d.content_type, d.size, d.sha256,
        d.chunk_hashes, d.storage, d.scan, d.delivered_at, d.stored_at, d.position
        """

    typealias Row = (
        UUID, UUID, String, String, UUID?, String, String, String, Int64, ByteBuffer, ByteBuffer, String, String, Date?, Date, Int64
    )

    static func record(_ row: Row) throws -> DocumentRecord {
        let (
            id, department, kind, subject, caseID, origin, fileName, contentType, size, sha256, chunkHashes, storage, scan, delivered,
            stored, position
        ) = row
        guard let kind = Subject.Kind(rawValue: kind), let owner = try? Subject(kind: kind, validating: subject),
            let origin = DocumentRecord.Origin(rawValue: origin), let storage = DocumentStorageKind(rawValue: storage),
            let scan = ScanResult(rawValue: scan)
        else { throw StoreError.unexpectedValue("documents row \(id)") }
        return DocumentRecord(
            id: id, departmentID: department, owner: owner, caseID: caseID, origin: origin, fileName: fileName, contentType: contentType,
            size: size, sha256: Data(sha256.readableBytesView), chunkHashes: Data(chunkHashes.readableBytesView), storage: storage,
            scan: scan, deliveredAt: delivered, storedAt: stored, position: position)
    }

    /// Registers a document whose content is about to stream in (state `receiving`), in its own short transaction,
    /// so the crash clean-up can find it whatever happens next. False when the department already published a
    /// document under this external id.
    public func begin(_ document: NewDocument, client: PostgresClient, logger: Logger) async throws -> Bool {
        let rows = try await client.query(
            """
            INSERT INTO documents (id, department_id, subject_kind, subject, case_id, origin, file_name, content_type, storage, external_id,
                                   delivery)
            VALUES (\(document.id), \(document.departmentID), \(document.owner.kind.rawValue), \(document.owner.number), \(document.caseID),
                    \(document.origin.rawValue), \(document.fileName), 'application/octet-stream', \(document.storage.rawValue),
                    \(document.externalID), \(document.origin == .resident ? "pending" : nil))
            ON CONFLICT (department_id, external_id) DO NOTHING
            RETURNING id
            """,
            logger: logger
        )
        return try await rows.decode(UUID.self).first { _ in true } != nil
    }

    /// Accepts a received document: it becomes visible (`stored`). Run in the transaction that also records its
    /// notification or delivery job.
    public func accept(
        _ id: UUID, content: ReceivedContent, on connection: PostgresConnection, logger: Logger
    ) async throws -> DocumentRecord {
        let rows = try await connection.query(
            """
            UPDATE documents d SET state = 'stored', content_type = \(content.type.contentType), size = \(content.size),
                   sha256 = \(ByteBuffer(bytes: content.sha256)), chunk_hashes = \(ByteBuffer(bytes: content.chunkHashes)),
                   scan = \(content.scan.rawValue), stored_at = now()
            WHERE id = \(id) AND state = 'receiving'
            RETURNING \(unescaped: Self.columns)
            """,
            logger: logger
        )
        guard let row = try await rows.decode(Row.self).first(where: { _ in true }) else {
            throw StoreError.unexpectedValue("document \(id) is no longer being received")
        }
        return try Self.record(row)
    }

    /// Forgets a document that was not accepted (its chunks go with it). False when there was no such row (it was
    /// accepted after all, by a commit whose answer got lost): its content must then stay.
    @discardableResult
    public func abandon(_ id: UUID, client: PostgresClient, logger: Logger) async throws -> Bool {
        let rows = try await client.query("DELETE FROM documents WHERE id = \(id) AND state = 'receiving' RETURNING id", logger: logger)
        return try await rows.decode(UUID.self).first { _ in true } != nil
    }

    /// What `owner` has stored in a case, with `upload` (one being accepted). Uploads still arriving elsewhere do not
    /// count: the final check runs under the case's lock, so parallel uploads are counted one after another, and an
    /// upload that died does not hold quota until it is cleaned up.
    public func usage(
        caseID: UUID, owner: Subject, including upload: UUID? = nil, on connection: PostgresConnection, logger: Logger
    ) async throws -> UploadUsage {
        let rows = try await connection.query(
            """
            SELECT count(*)::int8, coalesce(sum(size), 0)::int8 FROM documents
            WHERE case_id = \(caseID) AND subject_kind = \(owner.kind.rawValue) AND subject = \(owner.number) AND origin = 'resident'
              AND (state = 'stored' OR id = \(upload))
            """,
            logger: logger
        )
        for try await (files, bytes) in rows.decode((Int64, Int64).self) { return UploadUsage(files: Int(files), bytes: bytes) }
        return UploadUsage(files: 0, bytes: 0)
    }

    /// A stored document of `owner`: another resident's id finds nothing.
    public func find(_ id: UUID, owner: Subject, on connection: PostgresConnection, logger: Logger) async throws -> DocumentRecord? {
        try await self.first(
            """
            SELECT \(unescaped: Self.columns) FROM documents d
            WHERE d.id = \(id) AND d.subject_kind = \(owner.kind.rawValue) AND d.subject = \(owner.number) AND d.state = 'stored'
            """, on: connection, logger: logger)
    }

    /// A stored document of a department's case or message.
    public func find(_ id: UUID, department: UUID, on connection: PostgresConnection, logger: Logger) async throws -> DocumentRecord? {
        try await self.first(
            "SELECT \(unescaped: Self.columns) FROM documents d WHERE d.id = \(id) AND d.department_id = \(department) AND d.state = 'stored'",
            on: connection, logger: logger)
    }

    /// A case's stored documents, oldest first.
    public func list(caseID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> [DocumentRecord] {
        try await self.all(
            "SELECT \(unescaped: Self.columns) FROM documents d WHERE d.case_id = \(caseID) AND d.state = 'stored' ORDER BY d.stored_at, d.id",
            on: connection, logger: logger)
    }

    /// Documents by id, for the documents a message refers to.
    public func find(ids: [UUID], on connection: PostgresConnection, logger: Logger) async throws -> [DocumentRecord] {
        guard !ids.isEmpty else { return [] }
        return try await self.all(
            "SELECT \(unescaped: Self.columns) FROM documents d WHERE d.id = ANY(\(ids)) AND d.state = 'stored' ORDER BY d.stored_at, d.id",
            on: connection, logger: logger)
    }

    /// Residents' uploads for a department in the order it fetches them: every pending one that was not in an
    /// earlier page, or comes after `position`. Asking after a position confirms the uploads offered before up to it:
    /// those are marked delivered. (An upload stored after faster ones with higher positions is offered in a later
    /// page, never skipped.)
    public func departmentFeed(
        department: UUID, after position: Int64, limit: Int, on connection: PostgresConnection, logger: Logger
    ) async throws -> [DocumentRecord] {
        try await connection.query(
            """
            UPDATE documents SET delivery = 'delivered', delivered_at = now()
            WHERE department_id = \(department) AND origin = 'resident' AND state = 'stored' AND delivery = 'pending'
              AND position <= \(position) AND offered_at IS NOT NULL
            """,
            logger: logger
        )
        return try await self.all(
            """
            UPDATE documents d SET offered_at = coalesce(d.offered_at, now())
            WHERE d.id IN (
                SELECT id FROM documents
                WHERE department_id = \(department) AND origin = 'resident' AND state = 'stored' AND delivery = 'pending'
                  AND (position > \(position) OR offered_at IS NULL)
                ORDER BY position LIMIT \(limit))
            RETURNING \(unescaped: Self.columns)
            """,
            on: connection, logger: logger
        ).sorted { $0.position < $1.position }
    }

    /// Marks a resident's upload delivered (the sync worker handed it over).
    public func markDelivered(_ id: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "UPDATE documents SET delivery = 'delivered', delivered_at = now() WHERE id = \(id) AND delivery = 'pending'", logger: logger)
    }

    /// Documents that were still being received `age` ago: their upload died with its process.
    public func abandoned(olderThan age: Duration, client: PostgresClient, logger: Logger) async throws -> [(UUID, DocumentStorageKind)] {
        let rows = try await client.query(
            """
            SELECT id, storage FROM documents WHERE state = 'receiving' AND created_at < now() - make_interval(secs => \(age.seconds))
            LIMIT 1000
            """,
            logger: logger
        )
        var found: [(UUID, DocumentStorageKind)] = []
        for try await (id, storage) in rows.decode((UUID, String).self) {
            found.append((id, DocumentStorageKind(rawValue: storage) ?? .postgres))
        }
        return found
    }

    /// Removes the rows of abandoned uploads (their chunks go with them), once their content elsewhere is gone.
    public func removeAbandoned(_ ids: [UUID], client: PostgresClient, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        try await client.query("DELETE FROM documents WHERE id = ANY(\(ids)) AND state = 'receiving'", logger: logger)
    }

    private func first(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> DocumentRecord? {
        try await self.all(query, on: connection, logger: logger).first
    }

    private func all(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> [DocumentRecord] {
        var records: [DocumentRecord] = []
        for try await row in try await connection.query(query, logger: logger).decode(Row.self) {
            records.append(try Self.record(row))
        }
        return records
    }
}
