import Foundation
import Hummingbird
import NIOCore
import PropertyBased
import Testing

@testable import PortalAPI
@testable import Shared
@testable import SyncWorker

/// Generated hostile input for the parsers that read what others send: SMTP replies, multipart bodies, departmental
/// feed pages and ZGW resources. Each input is a valid sample, mutated (bytes flipped, protocol tokens inserted,
/// ranges deleted, doubled or cut, long runs added) and cut into pieces of random sizes; the properties are that the
/// parser never crashes, always finishes, answers only with its own errors, never returns more than it was given, and
/// reads an unmutated sample the same whatever the pieces. A failure prints the seed that reproduces it
/// (`.fixedSeed(...)`).
@Suite("Fuzzing the parsers")
struct FuzzTests {
    /// How a sample is damaged: each number picks a mutation, its place and its byte.
    static let mutations = Gen.int(in: 0...Int(Int32.max)).array(of: 0...10)
    /// The sizes of the pieces the input arrives in, used in turn.
    static let pieces = Gen.int(in: 1...97).array(of: 1...8)
    static let tokens: [[UInt8]] = [
        "\r\n", "\r", "\n", "\r\n\r\n", "-", "--", " ", "\"", "\\", "{", "}", "[", "]", ",", ":", "\0", "250-", "250 ", "999 ",
        "--b0undary", "--b0undary--", "Content-Disposition: form-data; name=\"", "filename=\"", "\u{FFFD}", "null", "1e999",
    ].map { Array($0.utf8) }

    static func mutate(_ sample: [UInt8], _ mutations: [Int]) -> [UInt8] {
        var bytes = sample
        for number in mutations {
            let position = bytes.isEmpty ? 0 : (number / 8) % (bytes.count + 1)
            let byte = UInt8(truncatingIfNeeded: number >> 12)
            switch number % 8 {
            case 0 where position < bytes.count: bytes[position] ^= byte | 1
            case 1: bytes.insert(contentsOf: self.tokens[(number >> 5) % self.tokens.count], at: position)
            case 2: bytes.removeSubrange(position..<min(bytes.count, position + 1 + (number >> 20) % 64))
            case 3: bytes.insert(contentsOf: bytes[position..<min(bytes.count, position + 1 + (number >> 20) % 256)], at: position)
            case 4: bytes.removeSubrange(position...)
            case 5: bytes.insert(contentsOf: [UInt8](repeating: byte, count: 1 + (number >> 16) % 5000), at: position)
            case 6: bytes.insert(byte, at: position)
            default: bytes.insert(contentsOf: sample, at: position)
            }
        }
        return bytes
    }

    static func split(_ bytes: [UInt8], _ sizes: [Int]) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var start = 0
        var turn = 0
        while start < bytes.count {
            let end = min(bytes.count, start + sizes[turn % sizes.count])
            pieces.append(Array(bytes[start..<end]))
            start = end
            turn += 1
        }
        return pieces
    }

    // MARK: SMTP replies

    static let smtpSamples: [[UInt8]] = [
        "220 mail.example.org ESMTP ready\r\n",
        "250-mail.example.org greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
        "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4F2A1\r\n221 2.0.0 Bye\r\n",
        "421 4.7.0 Try again later\r\n550 5.1.1 <a@example.org>: Recipient address rejected\r\n",
    ].map { Array($0.utf8) }

    static func readReplies(_ pieces: [[UInt8]]) -> (replies: [SMTPReply], failed: Bool) {
        var parser = SMTPReplyParser()
        var replies: [SMTPReply] = []
        for piece in pieces {
            do {
                try parser.append(piece)
            } catch {
                // Once failed, the parser stays failed: nothing after a broken line is read as a reply.
                #expect(throws: SMTPReplyError.self) { try parser.append(Array("250 ok\r\n".utf8)) }
                return (replies, true)
            }
            while let reply = parser.next() { replies.append(reply) }
        }
        return (replies, false)
    }

    @Test("SMTP replies: mutated, in pieces, they are read or refused, never more replies than lines, codes always 100 to 599")
    func smtpReplies() async {
        await propertyCheck(count: 400, input: Gen.int(in: 0...3), Self.mutations, Self.pieces) { sample, mutations, sizes in
            let bytes = Self.mutate(Self.smtpSamples[sample], mutations)
            let (replies, _) = Self.readReplies(Self.split(bytes, sizes))
            let lines = bytes.filter { $0 == UInt8(ascii: "\n") }.count
            #expect(replies.count <= lines)
            for reply in replies {
                #expect((100...599).contains(reply.code))
                #expect(reply.lines.count <= SMTPReplyParser.maximumLines)
                // In characters: a byte that is not UTF-8 becomes one replacement character (three bytes).
                #expect(reply.lines.allSatisfy { $0.unicodeScalars.count <= SMTPReplyParser.maximumLineLength })
            }
        }
    }

    @Test("SMTP replies: a valid stream reads the same whatever pieces it arrives in")
    func smtpRepliesInPieces() async {
        let whole = Self.smtpSamples.flatMap { $0 }
        let expected = Self.readReplies([whole])
        #expect(!expected.failed && expected.replies.count == 7)
        await propertyCheck(count: 200, input: Self.pieces) { sizes in
            let read = Self.readReplies(Self.split(whole, sizes))
            #expect(read.replies == expected.replies && !read.failed)
        }
    }

    // MARK: Multipart bodies

    static let boundary = "b0undary"
    static let multipartSample = Array(
        ("--b0undary\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nHallo, hier is het bewijs.\r\n"
            + "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bewijs.pdf\"\r\n"
            + "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n\(String(repeating: "0123456789", count: 30))\r\n--b0undary--\r\n").utf8)

    /// Reads every part and all its content, as the upload and message endpoints do; what each part held, or the
    /// error that stopped it.
    static func readMultipart(_ pieces: [[UInt8]]) async -> (parts: [(name: String, content: [UInt8])], error: (any Error)?) {
        let body = RequestBody(asyncSequence: Pieces(pieces: pieces.map { ByteBuffer(bytes: $0) }))
        let reader = MultipartReader(body: body, boundary: Self.boundary)
        var parts: [(name: String, content: [UInt8])] = []
        do {
            while let part = try await reader.nextPart() {
                var content: [UInt8] = []
                while let chunk = try await reader.nextChunk() { content += chunk.readableBytesView }
                parts.append((part.name, content))
            }
            return (parts, nil)
        } catch {
            return (parts, error)
        }
    }

    @Test("multipart: mutated, in pieces, parts are read or refused with a problem, and never hold more than was sent")
    func multipart() async {
        await propertyCheck(count: 300, input: Self.mutations, Self.pieces) { mutations, sizes in
            let bytes = Self.mutate(Self.multipartSample, mutations)
            let (parts, error) = await Self.readMultipart(Self.split(bytes, sizes))
            #expect(parts.reduce(0) { $0 + $1.content.count } <= bytes.count)
            if let error { #expect(error is Problem || error is UploadRefusal, "\(type(of: error)): \(error)") }
        }
    }

    @Test("multipart: a valid body reads the same whatever pieces it arrives in")
    func multipartInPieces() async {
        let expected = await Self.readMultipart([Self.multipartSample])
        #expect(expected.error == nil && expected.parts.map(\.name) == ["text", "file"])
        await propertyCheck(count: 200, input: Self.pieces) { sizes in
            let read = await Self.readMultipart(Self.split(Self.multipartSample, sizes))
            #expect(read.error == nil)
            #expect(read.parts.map(\.name) == expected.parts.map(\.name))
            #expect(read.parts.map(\.content) == expected.parts.map(\.content))
        }
    }

    // MARK: Feed pages and ZGW resources

    static let feedSample = Array(
        (#"{"changes": ["# + SyncHarness.change("HLM-1", bsn: "999993653", event: "e1", status: "ontvangen", at: "2026-11-02T09:00:00Z")
            + ", " + SyncHarness.change("HLM-2", event: "e2", status: "besluit", at: "2026-11-03T09:00:00Z") + #"], "next": "c2"}"#).utf8)

    @Test("feed pages: mutated, they become a page whose changes are read or refused, or a malformed-page error")
    func feedPages() async {
        await propertyCheck(count: 400, input: Self.mutations) { mutations in
            let bytes = Self.mutate(Self.feedSample, mutations)
            do {
                let page = try FeedPuller.readPage(ByteBuffer(bytes: bytes), limit: 100)
                #expect(page.changes.count <= 100)
                for var change in page.changes {
                    let (_, item) = change.caseChange()
                    if item == nil { #expect(!change.allErrors.isEmpty) }
                }
            } catch {
                #expect(error is SyncError, "\(type(of: error)): \(error)")
            }
        }
    }

    /// Computed: a stored array of metatypes (not Sendable) would be shared mutable state to Swift 6.
    static var zgwSamples: [(type: any Decodable.Type, sample: String)] {
        [
            (
                ZGWStatus.self,
                #"{"url": "https://zaken.test/api/v1/statussen/1", "zaak": "https://zaken.test/api/v1/zaken/1", "statustype": "https://catalogi.test/api/v1/statustypen/1", "datumStatusGezet": "2026-11-03T10:00:00Z", "statustoelichting": ""}"#
            ),
            (
                ZGWZaak.self,
                #"{"url": "https://zaken.test/api/v1/zaken/1", "identificatie": "ZAAK-1", "omschrijving": "Dakkapel", "zaaktype": "https://catalogi.test/api/v1/zaaktypen/1", "registratiedatum": "2026-11-02", "startdatum": "2026-11-02", "uiterlijkeEinddatumAfdoening": "2026-12-28", "einddatumGepland": null, "vertrouwelijkheidaanduiding": "openbaar", "status": null}"#
            ),
            (
                ZGWStatusType.self,
                #"{"url": "https://catalogi.test/api/v1/statustypen/1", "omschrijving": "Ontvangen", "statustekst": "Wij hebben uw aanvraag ontvangen.", "volgnummer": 1, "isEindstatus": false, "informeren": true}"#
            ),
            (
                ZGWPage<ZGWRol>.self,
                #"{"count": 1, "next": null, "results": [{"betrokkeneType": "natuurlijk_persoon", "betrokkeneIdentificatie": {"inpBsn": "999993653"}, "omschrijvingGeneriek": "initiator"}]}"#
            ),
        ]
    }

    @Test("ZGW resources: mutated, they decode or are refused as malformed, never anything else")
    func zgwResources() async {
        for (kind, sample) in Self.zgwSamples {
            #expect(throws: Never.self) { try Self.decode(kind, Array(sample.utf8)) }
        }
        await propertyCheck(count: 400, input: Gen.int(in: 0...3), Self.mutations) { index, mutations in
            let (kind, sample) = Self.zgwSamples[index]
            do {
                try Self.decode(kind, Self.mutate(Array(sample.utf8), mutations))
            } catch {
                #expect(error is SyncError, "\(type(of: error)): \(error)")
            }
        }
    }

    static func decode(_ type: any Decodable.Type, _ bytes: [UInt8]) throws {
        func open<T: Decodable>(_: T.Type) throws { _ = try ZGWClient.decode(T.self, ByteBuffer(bytes: bytes), what: "fuzz") }
        try open(type)
    }
}

/// Pieces of a body, as an async sequence, the way a connection delivers them.
struct Pieces: AsyncSequence, Sendable {
    let pieces: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: ArraySlice<ByteBuffer>
        mutating func next() async throws -> ByteBuffer? { self.remaining.popFirst() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: self.pieces[...]) }
}
