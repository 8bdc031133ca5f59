import Crypto
public import Foundation
public import Logging
public import NIOCore
import NIOFileSystem
public import PostgresNIO

/// Where documents' content lives: in fixed chunks of ``chunkSize`` bytes (the last one shorter), addressed by the
/// document's id and the chunk's index. The metadata, with the SHA-256 of every chunk, is in `documents`
/// (``DocumentStore``); a storage only keeps and hands back bytes.
public protocol DocumentStorage: Sendable {
    var kind: DocumentStorageKind { get }
    /// Starts writing a new document's content; ``DocumentWriter/commit()`` makes it durable.
    func writer(for id: UUID) async throws -> any DocumentWriter
    /// The chunks `range` of a stored document, in order.
    func read(_ id: UUID, chunks range: Range<Int>) async throws -> [ByteBuffer]
    /// Removes the content of documents (present or not).
    func delete(_ ids: [UUID]) async throws
}

/// Writes one document's chunks, in order, from one task.
public protocol DocumentWriter {
    mutating func append(_ chunk: ByteBuffer, index: Int) async throws
    /// Everything appended is durable when this returns.
    mutating func commit() async throws
    /// Gives up: nothing of this document stays (as far as can be; the crash clean-up takes the rest).
    mutating func abandon() async
}

public enum DocumentStorageKind: String, Sendable, CaseIterable {
    case postgres
    case directory
}

/// The chunking every storage shares.
public enum DocumentChunks {
    /// 256 KiB: small enough to keep memory flat while streaming, large enough that a 25 MB file is 100 rows.
    public static let chunkSize = 256 * 1024
    /// How many chunks are fetched at once while a download streams (1 MiB).
    public static let readBatch = 4

    /// The chunks that hold the bytes `range` of a file.
    public static func chunks(covering range: Range<Int64>) -> Range<Int> {
        guard !range.isEmpty else { return 0..<0 }
        return Int(range.lowerBound / Int64(self.chunkSize))..<Int((range.upperBound - 1) / Int64(self.chunkSize)) + 1
    }

    /// How many chunks a file of `size` bytes has.
    public static func count(size: Int64) -> Int { Int((size + Int64(self.chunkSize) - 1) / Int64(self.chunkSize)) }
}

// MARK: PostgreSQL

/// Content in `document_chunks`, one row per chunk, each written in its own short statement: an upload never holds a
/// connection while it waits for the client.
public struct PostgresDocumentStorage: DocumentStorage {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public var kind: DocumentStorageKind { .postgres }

    public func writer(for id: UUID) async throws -> any DocumentWriter {
        Writer(id: id, client: self.client, logger: self.logger)
    }

    struct Writer: DocumentWriter {
        let id: UUID
        let client: PostgresClient
        let logger: Logger

        func append(_ chunk: ByteBuffer, index: Int) async throws {
            try await self.client.query(
                "INSERT INTO document_chunks (document_id, index, data) VALUES (\(self.id), \(index), \(chunk))", logger: self.logger)
        }

        /// Every chunk was committed by its own statement.
        func commit() async throws {}

        func abandon() async {
            _ = try? await self.client.query("DELETE FROM document_chunks WHERE document_id = \(self.id)", logger: self.logger)
        }
    }

    public func read(_ id: UUID, chunks range: Range<Int>) async throws -> [ByteBuffer] {
        let rows = try await self.client.query(
            """
            SELECT index, data FROM document_chunks
            WHERE document_id = \(id) AND index >= \(range.lowerBound) AND index < \(range.upperBound) ORDER BY index
            """,
            logger: self.logger
        )
        var chunks: [ByteBuffer] = []
        for try await (index, data) in rows.decode((Int, ByteBuffer).self) {
            guard index == range.lowerBound + chunks.count else {
                throw DocumentStorageError.missingChunk(id, index: range.lowerBound + chunks.count)
            }
            chunks.append(data)
        }
        guard chunks.count == range.count else { throw DocumentStorageError.missingChunk(id, index: range.lowerBound + chunks.count) }
        return chunks
    }

    /// The chunks go with their `documents` row (`ON DELETE CASCADE`); this removes any left without one.
    public func delete(_ ids: [UUID]) async throws {
        guard !ids.isEmpty else { return }
        try await self.client.query("DELETE FROM document_chunks WHERE document_id = ANY(\(ids))", logger: self.logger)
    }
}

// MARK: Directory

/// Content in files on a file system all replicas share (NFS, a mounted volume): `<root>/<first two hex digits of
/// the id>/<id>`. A file appears under its name only once it is complete and flushed to disk (written under a
/// temporary name, then renamed, then the directory flushed), so a crash leaves no half file under a real name.
public struct DirectoryDocumentStorage: DocumentStorage {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    public var kind: DocumentStorageKind { .directory }

    func path(of id: UUID) -> FilePath {
        let name = id.uuidString.lowercased()
        return FilePath(self.root).appending(String(name.prefix(2))).appending(name)
    }

    /// Checks at start that the folder exists and is writable, so a wrong setting stops the process with one line.
    public static func check(root: String) async throws(ConfigurationError) {
        let probe = FilePath(root).appending(".portal-write-check-\(UUID().uuidString.lowercased())")
        do {
            try await FileSystem.shared.withFileHandle(forWritingAt: probe, options: .newFile(replaceExisting: true)) { handle in
                _ = try await handle.write(contentsOf: ByteBuffer(string: "ok"), toAbsoluteOffset: 0)
            }
            try await FileSystem.shared.removeItem(at: probe, strategy: .platformDefault, recursively: false)
        } catch {
            throw ConfigurationError(variable: "PORTAL_DOCUMENT_DIRECTORY", problem: "must name a folder this process can write to")
        }
    }

    public func writer(for id: UUID) async throws -> any DocumentWriter {
        let path = self.path(of: id)
        let folder = path.removingLastComponent()
        if try await FileSystem.shared.info(forFileAt: folder) == nil {
            do {
                try await FileSystem.shared.createDirectory(at: folder, withIntermediateDirectories: true, permissions: nil)
            } catch let error as FileSystemError where error.code == .fileAlreadyExists {
                // Another upload made it first.
            }
        }
        let handle = try await FileSystem.shared.openFile(
            forWritingAt: path, options: .newFile(replaceExisting: false, permissions: [.ownerReadWrite]))
        return Writer(path: path, handle: handle)
    }

    struct Writer: DocumentWriter {
        let path: FilePath
        let handle: WriteFileHandle
        var closed = false

        mutating func append(_ chunk: ByteBuffer, index: Int) async throws {
            do {
                try await self.handle.write(contentsOf: chunk, toAbsoluteOffset: Int64(index) * Int64(DocumentChunks.chunkSize))
            } catch {
                try? await self.handle.close(makeChangesVisible: false)
                self.closed = true
                throw error
            }
        }

        mutating func commit() async throws {
            guard !self.closed else { throw DocumentStorageError.closed }
            self.closed = true
            try await self.handle.synchronize()
            try await self.handle.close(makeChangesVisible: true)
            try await FileSystem.shared.withDirectoryHandle(atPath: self.path.removingLastComponent()) { try await $0.synchronize() }
        }

        mutating func abandon() async {
            guard !self.closed else { return }
            self.closed = true
            try? await self.handle.close(makeChangesVisible: false)
        }
    }

    public func read(_ id: UUID, chunks range: Range<Int>) async throws -> [ByteBuffer] {
        try await FileSystem.shared.withFileHandle(forReadingAt: self.path(of: id)) { handle in
            var chunks: [ByteBuffer] = []
            for index in range {
                // One read may return less (a network file system does): read on until the chunk is whole or the file ends.
                let start = Int64(index) * Int64(DocumentChunks.chunkSize)
                var chunk = ByteBuffer()
                while chunk.readableBytes < DocumentChunks.chunkSize {
                    var more = try await handle.readChunk(
                        fromAbsoluteOffset: start + Int64(chunk.readableBytes),
                        length: .bytes(Int64(DocumentChunks.chunkSize - chunk.readableBytes)))
                    if more.readableBytes == 0 { break }
                    chunk.writeBuffer(&more)
                }
                guard chunk.readableBytes > 0 else { throw DocumentStorageError.missingChunk(id, index: index) }
                chunks.append(chunk)
            }
            return chunks
        }
    }

    public func delete(_ ids: [UUID]) async throws {
        for id in ids {
            try await FileSystem.shared.removeItem(at: self.path(of: id), strategy: .platformDefault, recursively: false)
        }
    }
}

extension DocumentStorage {
    /// The bytes `range` of a stored document, handed to `body` a few chunks at a time. Every chunk is checked against
    /// its stored SHA-256 before any of it is handed out: a damaged document throws ``DocumentStorageError/damaged``
    /// where the damage is, and what went out before was intact.
    public func verifiedBytes(
        of record: DocumentRecord, range: Range<Int64>, _ body: (ByteBuffer) async throws -> Void
    ) async throws {
        let chunks = DocumentChunks.chunks(covering: range)
        var index = chunks.lowerBound
        while index < chunks.upperBound {
            let batch = index..<min(chunks.upperBound, index + DocumentChunks.readBatch)
            for (offset, var chunk) in try await self.read(record.id, chunks: batch).enumerated() {
                let chunkIndex = batch.lowerBound + offset
                guard Data(SHA256.hash(data: chunk.readableBytesView)) == record.chunkHash(chunkIndex) else {
                    throw DocumentStorageError.damaged(record.id, index: chunkIndex)
                }
                let chunkStart = Int64(chunkIndex) * Int64(DocumentChunks.chunkSize)
                let from = max(range.lowerBound, chunkStart) - chunkStart
                let to = min(range.upperBound, chunkStart + Int64(chunk.readableBytes)) - chunkStart
                chunk.moveReaderIndex(forwardBy: Int(from))
                chunk.moveWriterIndex(to: chunk.readerIndex + Int(to - from))
                try await body(chunk)
            }
            index = batch.upperBound
        }
    }
}

public enum DocumentStorageError: Error, CustomStringConvertible {
    case missingChunk(UUID, index: Int)
    /// A chunk's content does not match its stored SHA-256.
    case damaged(UUID, index: Int)
    case closed

    public var description: String {
        switch self {
        case .missingChunk(let id, let index): "chunk \(index) of document \(id.uuidString.lowercased()) is missing"
        case .damaged(let id, let index): "chunk \(index) of document \(id.uuidString.lowercased()) does not match its hash"
        case .closed: "the document writer was closed after a failed write"
        }
    }
}
