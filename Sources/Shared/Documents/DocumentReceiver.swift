import Crypto
public import Foundation
public import NIOCore

/// What was received and stored of one file, once every check passed.
public struct ReceivedContent: Sendable, Equatable {
    public var type: FileType
    public var size: Int64
    public var sha256: Data
    /// The SHA-256 of each ``DocumentChunks/chunkSize`` chunk, concatenated.
    public var chunkHashes: Data
    public var scan: ScanResult
}

public enum ScanResult: String, Sendable, Codable {
    case clean
    case notScanned = "not-scanned"
}

/// Why a file was not accepted. Nothing of it is kept.
public enum UploadRefusal: Error, Sendable, CustomStringConvertible {
    /// More than `limit` bytes: reading stopped as soon as the limit was passed.
    case tooLarge(limit: Int)
    case type(FileTypeError)
    case infected
    /// No verdict from the scanner (unreachable, an error, no answer): refused, never stored unscanned.
    case scanFailed(ClamdError)
    /// The body ended in the middle (the client went away, or a malformed multipart body).
    case incomplete

    public var description: String {
        switch self {
        case .tooLarge(let limit):
            "The file is larger than \(ByteCountFormatter.string(fromByteCount: Int64(limit), countStyle: .binary)), the most we accept."
        case .type(let error): error.description
        case .infected: "Our virus scanner found a threat in this file, so we did not accept it. Check the file, or send it another way."
        case .scanFailed:
            "We cannot check files for viruses at the moment, so we cannot accept uploads. Please try again later."
        case .incomplete: "The upload ended before the whole file arrived."
        }
    }
}

/// Receives one file: reads at most `maxBytes` (refusing the moment there is more), checks the type on the first
/// bytes before anything is written, then streams each chunk to clamd and to the storage at the same time while
/// hashing it. Memory use is a few chunks, whatever the file's size.
public struct DocumentReceiver: Sendable {
    public let storage: any DocumentStorage
    public let clamd: ClamdScanner?
    public let maxBytes: Int

    public init(storage: any DocumentStorage, clamd: ClamdScanner?, maxBytes: Int) {
        self.storage = storage
        self.clamd = clamd
        self.maxBytes = maxBytes
    }

    /// Reads the file from `next` (nil at its end) and stores it as document `id`; throws ``UploadRefusal`` for the
    /// file's own faults and anything else for ours. Nothing is left in the storage when it throws.
    public func receive(id: UUID, fileName: String, next: @escaping () async throws -> ByteBuffer?) async throws -> ReceivedContent {
        var reader = LimitedReader(next: next, limit: self.maxBytes)
        // The type is checked on the first bytes, before anything is stored or scanned.
        var head = ByteBuffer()
        while head.readableBytes < FileType.sniffLength, var part = try await reader.next() {
            head.writeBuffer(&part)
        }
        let type: FileType
        do {
            type = try FileType.check(head: head.readableBytesView, fileName: fileName)
        } catch {
            throw UploadRefusal.type(error)
        }
        var writer = try await self.storage.writer(for: id)
        do {
            var content: ReceivedContent
            if let clamd = self.clamd {
                let verdict: ClamdVerdict
                do {
                    (content, verdict) = try await clamd.scan { stream in
                        try await Self.pump(head: head, reader: &reader, type: type, writer: &writer, scan: stream)
                    }
                } catch let error as ClamdError {
                    throw UploadRefusal.scanFailed(error)
                }
                guard verdict == .clean else { throw UploadRefusal.infected }
                content.scan = .clean
            } else {
                content = try await Self.pump(head: head, reader: &reader, type: type, writer: &writer, scan: nil)
            }
            try await writer.commit()
            return content
        } catch {
            await writer.abandon()
            throw error
        }
    }

    /// Cuts the bytes into chunks and sends each to the scanner and the storage at once.
    private static func pump(
        head: ByteBuffer,
        reader: inout LimitedReader,
        type: FileType,
        writer: inout any DocumentWriter,
        scan: ClamdScanner.Stream?
    ) async throws -> ReceivedContent {
        var whole = SHA256()
        var chunkHashes = Data()
        var index = 0
        var size: Int64 = 0
        var pending = head
        func emit(_ chunk: ByteBuffer) async throws {
            whole.update(data: chunk.readableBytesView)
            chunkHashes.append(contentsOf: SHA256.hash(data: chunk.readableBytesView))
            size += Int64(chunk.readableBytes)
            if let scan {
                async let scanned: Void = scan.send(chunk)
                try await writer.append(chunk, index: index)
                try await scanned
            } else {
                try await writer.append(chunk, index: index)
            }
            index += 1
        }
        while true {
            while pending.readableBytes >= DocumentChunks.chunkSize {
                try await emit(pending.readSlice(length: DocumentChunks.chunkSize)!)
            }
            guard var part = try await reader.next() else { break }
            if pending.readableBytes == 0 {
                pending = part
            } else {
                pending.discardReadBytes()
                pending.writeBuffer(&part)
            }
        }
        if pending.readableBytes > 0 { try await emit(pending) }
        return ReceivedContent(type: type, size: size, sha256: Data(whole.finalize()), chunkHashes: chunkHashes, scan: .notScanned)
    }
}

/// A body that throws ``UploadRefusal/tooLarge(limit:)`` as soon as more than `limit` bytes came.
struct LimitedReader {
    /// Where the bytes come from. (Not named `next`: a call `reader.next()` would then call it, not the method.)
    let source: () async throws -> ByteBuffer?
    let limit: Int
    var count = 0
    var ended = false

    init(next: @escaping () async throws -> ByteBuffer?, limit: Int) {
        self.source = next
        self.limit = limit
    }

    /// The next piece; nil at the end, and after it.
    mutating func next() async throws -> ByteBuffer? {
        guard !self.ended else { return nil }
        guard let part = try await self.source() else {
            self.ended = true
            return nil
        }
        self.count += part.readableBytes
        if self.count > self.limit { throw UploadRefusal.tooLarge(limit: self.limit) }
        return part
    }
}
