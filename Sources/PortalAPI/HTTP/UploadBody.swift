import Foundation
import Hummingbird
import MultipartKit
import NIOCore
import Shared

/// A request body read part by part as `multipart/form-data` (RFC 7578), each part's content streamed: nothing is
/// collected but the small fields a caller asks for.
final class MultipartReader {
    struct Part {
        /// The `name` of the part's `Content-Disposition`.
        let name: String
        /// The `filename`, for a file.
        let fileName: String?
    }

    private enum Event {
        case header(String, String)
        case body(ByteBuffer)
        case end
    }

    private var iterator: RequestBody.AsyncIterator
    private let parser: MultipartParser
    private var headerGuard: MultipartHeaderGuard
    private let events = Events()
    private var finished = false
    /// The current part's content was read to its end.
    private var partEnded = false
    /// Header bytes allowed per part, so a body of endless headers cannot grow memory.
    private let maxHeaderBytes = 8 * 1024
    /// Bytes read since the last content: the parser collects a header line whole before it reports it, so a
    /// preamble or header without end is cut off here.
    private var bytesWithoutContent = 0

    private final class Events {
        var queue: [Event] = []
        var start = 0
        /// Content (a part's bytes or its end) came since this was last reset.
        var sawContent = false

        var isEmpty: Bool { self.start == self.queue.count }

        func peek() -> Event? { self.isEmpty ? nil : self.queue[self.start] }

        func pop() -> Event? {
            guard let event = self.peek() else { return nil }
            self.start += 1
            if self.isEmpty {
                self.queue.removeAll(keepingCapacity: true)
                self.start = 0
            }
            return event
        }
    }

    /// The boundary of a `multipart/form-data` content type; nil for any other type.
    static func boundary(contentType: String?) -> String? {
        guard let contentType, MediaRange.type(of: contentType) == "multipart/form-data" else { return nil }
        let boundary = FileName.parameters(contentType).first { $0.name == "boundary" }?.value
        guard let boundary, (1...70).contains(boundary.count) else { return nil }
        return boundary
    }

    init(body: RequestBody, boundary: String) {
        self.iterator = body.makeAsyncIterator()
        self.parser = MultipartParser(boundary: boundary)
        self.headerGuard = MultipartHeaderGuard(boundary: boundary)
        let events = self.events
        self.parser.onHeader = { name, value in events.queue.append(.header(name, value)) }
        self.parser.onBody = { buffer in
            events.queue.append(.body(buffer))
            events.sawContent = true
        }
        self.parser.onPartComplete = {
            events.queue.append(.end)
            events.sawContent = true
        }
    }

    /// Reads more of the body into events; false at its end.
    private func fill() async throws -> Bool {
        guard !self.finished else { return false }
        guard let buffer = try await self.iterator.next() else {
            self.finished = true
            return false
        }
        guard self.headerGuard.accepts(buffer) else {
            throw Problem.badRequest("invalid-multipart", "A part of the multipart/form-data body has an invalid header name.")
        }
        do {
            try self.parser.execute(buffer)
        } catch {
            throw Problem.badRequest("invalid-multipart", "The multipart/form-data body is malformed.")
        }
        if self.events.sawContent {
            self.events.sawContent = false
            self.bytesWithoutContent = 0
        } else {
            self.bytesWithoutContent += buffer.readableBytes
            if self.bytesWithoutContent > 4 * self.maxHeaderBytes {
                throw Problem.badRequest(
                    "invalid-multipart", "The multipart/form-data body has a part without content or with too many headers.")
            }
        }
        return true
    }

    /// The next part's headers; the rest of the current part is skipped. Nil after the last part.
    func nextPart() async throws -> Part? {
        // Skip what is left of the current part.
        while true {
            guard let event = self.events.peek() else {
                guard try await self.fill() else { return nil }
                continue
            }
            if case .header = event { break }
            _ = self.events.pop()
        }
        self.partEnded = false
        var headers: [(String, String)] = []
        var headerBytes = 0
        while true {
            guard let event = self.events.peek() else {
                guard try await self.fill() else { throw DocumentServices.problem(.incomplete) }
                continue
            }
            guard case .header(let name, let value) = event else { break }
            _ = self.events.pop()
            headerBytes += name.utf8.count + value.utf8.count
            if headerBytes > self.maxHeaderBytes {
                throw Problem.badRequest("invalid-multipart", "A part of the multipart/form-data body has too many headers.")
            }
            headers.append((name.lowercased(), value))
        }
        guard let disposition = headers.first(where: { $0.0 == "content-disposition" })?.1,
            let name = FileName.parameters(disposition).first(where: { $0.name == "name" })?.value
        else {
            throw Problem.badRequest(
                "invalid-multipart", "Every part of a multipart/form-data body needs a Content-Disposition with a name.")
        }
        return Part(name: name, fileName: FileName.fromContentDisposition(disposition))
    }

    /// The next piece of the current part's content; nil at the part's end (and after it, until the next part).
    func nextChunk() async throws -> ByteBuffer? {
        guard !self.partEnded else { return nil }
        while true {
            guard let event = self.events.peek() else {
                guard try await self.fill() else { throw UploadRefusal.incomplete }
                continue
            }
            switch event {
            case .body(let buffer):
                _ = self.events.pop()
                return buffer
            case .end:
                _ = self.events.pop()
                self.partEnded = true
                return nil
            case .header:
                self.partEnded = true
                return nil
            }
        }
    }

    /// The current part's content as text, at most `limit` bytes.
    func text(limit: Int) async throws -> String {
        var collected = ByteBuffer()
        while var chunk = try await self.nextChunk() {
            guard collected.readableBytes + chunk.readableBytes <= limit else {
                throw Problem(status: .contentTooLarge, code: "too-large", detail: "A form field is longer than \(limit) bytes.")
            }
            collected.writeBuffer(&chunk)
        }
        return String(buffer: collected)
    }
}

/// Where an upload's file comes from: a raw body with its name in `Content-Disposition`, or the `file` part of a
/// `multipart/form-data` body.
struct UploadSource {
    let fileName: String
    let next: () async throws -> ByteBuffer?

    /// A raw body (any type but multipart/form-data): the file name from `Content-Disposition: attachment;
    /// filename*=UTF-8''...` (or `filename=`).
    static func raw(_ request: Request) throws -> UploadSource {
        guard let header = request.headers[.contentDisposition], let name = FileName.fromContentDisposition(header), !name.isEmpty else {
            throw Problem.invalidInput([
                FieldError(
                    name: "Content-Disposition", code: "required",
                    reason: "Name the file: Content-Disposition: attachment; filename=\"brief.pdf\", or send a multipart/form-data form.")
            ])
        }
        var iterator = request.body.makeAsyncIterator()
        return UploadSource(fileName: name, next: { try await iterator.next() })
    }

    /// The `file` part of a form, once `reader` stands at it.
    static func part(_ part: MultipartReader.Part, of reader: MultipartReader) throws -> UploadSource {
        guard let name = part.fileName, !name.isEmpty else {
            throw Problem.invalidInput([FieldError(name: part.name, code: "required", reason: "The file part needs a filename.")])
        }
        return UploadSource(fileName: name, next: { try await reader.nextChunk() })
    }
}

/// Follows a multipart body's framing ahead of MultipartKit's parser and refuses a part header whose name holds a
/// byte from 0x80: MultipartKit 4.7 looks header-name bytes up in a 128-entry table and traps on such a byte (found
/// by FuzzTests), which would let any caller crash the process. Header names are tokens (RFC 9110), so such a body is
/// malformed anyway; header values and contents may hold any byte.
///
/// The states mirror MultipartKit's own, byte for byte, up to where it would throw: past that point the parser is not
/// fed again (``MultipartReader`` refuses the body), so what this guard decides there does not matter.
struct MultipartHeaderGuard {
    private enum State {
        case preamble(matched: Int)
        /// After a delimiter: CR then LF before the first header line.
        case preHeaders(expectingLF: Bool)
        case headerName(length: Int)
        case headerValue
        case postHeaderValue
        case postHeaders
        case body
        case delimiter(matched: Int)
        case epilogue
    }

    /// CRLF, two dashes and the boundary, as MultipartKit matches it.
    private let delimiter: [UInt8]
    private var state: State = .preamble(matched: 0)

    init(boundary: String) {
        self.delimiter = Array("\r\n--\(boundary)".utf8)
    }

    /// Scans the next bytes; false when a header name holds a byte MultipartKit cannot take.
    mutating func accepts(_ buffer: ByteBuffer) -> Bool {
        let cr = UInt8(ascii: "\r")
        for byte in buffer.readableBytesView {
            switch self.state {
            case .preamble(let matched):
                // Like MultipartKit, the first delimiter may come without its CRLF.
                let next =
                    matched == 0 && byte == self.delimiter[2]
                    ? 3 : byte == self.delimiter[matched] ? matched + 1 : matched > 0 && byte == cr ? 1 : 0
                self.state = next == self.delimiter.count ? .preHeaders(expectingLF: false) : .preamble(matched: next)
            case .preHeaders(let expectingLF):
                self.state = expectingLF ? .headerName(length: 0) : .preHeaders(expectingLF: true)
            case .headerName(let length):
                if byte == UInt8(ascii: ":") && length > 0 {
                    self.state = .headerValue
                } else if byte == cr && length == 0 {
                    self.state = .postHeaders
                } else if byte >= 0x80 {
                    return false
                } else {
                    self.state = .headerName(length: length + 1)
                }
            case .headerValue:
                if byte == cr { self.state = .postHeaderValue }
            case .postHeaderValue:
                self.state = .headerName(length: 0)
            case .postHeaders:
                self.state = .body
            case .body:
                if byte == cr { self.state = .delimiter(matched: 1) }
            case .delimiter(let matched):
                if matched == self.delimiter.count {
                    self.state = byte == cr ? .preHeaders(expectingLF: true) : .epilogue
                } else if byte == self.delimiter[matched] {
                    self.state = .delimiter(matched: matched + 1)
                } else {
                    self.state = byte == cr ? .delimiter(matched: 1) : .body
                }
            case .epilogue:
                return true
            }
        }
        return true
    }
}
