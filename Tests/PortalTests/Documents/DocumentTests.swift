import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Synchronization
import Testing

@testable import PortalAPI
@testable import Shared

/// Residents' uploads and downloads: what is accepted, how it is stored and served, and that nothing of a refused
/// file stays.
@Suite("Documents")
struct DocumentTests {
    @Test("a resident uploads a PDF as a raw body and from a form, lists them, and downloads them whole and in ranges")
    func uploadListDownload() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let raw = DocumentFixture.pdf(size: 700_000)
            let created = try await fixture.upload(raw, name: "paspoortfoto-aanvraag.pdf")
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let document = try APIHarness.object(created)
            #expect(document["fileName"]?.stringValue == "paspoortfoto-aanvraag.pdf")
            #expect(document["contentType"]?.stringValue == "application/pdf")
            #expect(document["size"]?.numberValue == 700_000)
            #expect(document["addedBy"]?.stringValue == "resident")
            #expect(document["scan"]?.stringValue == "not-scanned")
            #expect(document["delivered"]?.boolValue == false)
            #expect(document["sha256"]?.stringValue == Data(SHA256.hash(data: raw)).hexadecimal)
            let href = try #require(document["href"]?.stringValue)

            let formBytes = DocumentFixture.pdf(size: 3000)
            let fromForm = try await fixture.uploadForm(formBytes, name: "bijlage.pdf")
            #expect(fromForm.status == .created, "\(String(buffer: fromForm.body))")

            let list = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/documents", headers: fixture.session.headers))
            let names = list["items"]?.arrayValue?.compactMap { $0.objectValue?["fileName"]?.stringValue }
            #expect(names == ["paspoortfoto-aanvraag.pdf", "bijlage.pdf"])

            let whole = try await api.request(.get, href, headers: fixture.session.headers)
            #expect(whole.status == .ok)
            #expect(Array(whole.body.readableBytesView) == raw)
            #expect(whole.headers[.contentType] == "application/pdf")
            #expect(whole.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"paspoortfoto-aanvraag.pdf\"") == true)
            #expect(whole.headers[.xContentTypeOptions] == "nosniff")
            #expect(whole.headers[.acceptRanges] == "bytes")

            // A range across a chunk boundary (chunks are 256 KiB), an open-ended one, a suffix, and one outside the file.
            let across = try await api.request(.get, href, headers: fixture.session.headers.merging([.range: "bytes=262000-262999"]))
            #expect(across.status == .partialContent)
            #expect(Array(across.body.readableBytesView) == Array(raw[262_000...262_999]))
            #expect(across.headers[.contentRange] == "bytes 262000-262999/700000")
            let tail = try await api.request(.get, href, headers: fixture.session.headers.merging([.range: "bytes=699990-"]))
            #expect(Array(tail.body.readableBytesView) == Array(raw[699_990...]))
            let suffix = try await api.request(.get, href, headers: fixture.session.headers.merging([.range: "bytes=-5"]))
            #expect(Array(suffix.body.readableBytesView) == Array(raw[699_995...]))
            let outside = try await api.request(.get, href, headers: fixture.session.headers.merging([.range: "bytes=800000-"]))
            #expect(outside.status == .rangeNotSatisfiable)
            #expect(outside.headers[.contentRange] == "bytes */700000")

            // Someone else: the download, the list and an upload to the case are all "not found".
            let other = try await api.devLogin(bsn: DocumentFixture.otherBSN)
            #expect(try await api.request(.get, href, headers: other.headers).status == .notFound)
            #expect(try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/documents", headers: other.headers).status == .notFound)
            #expect(try await fixture.upload(DocumentFixture.pdf(), name: "x.pdf", session: other).status == .notFound)
        }
    }

    @Test("a file is accepted only when its first bytes and its extension agree on an allowed type; nothing refused is kept")
    func typeChecks() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 7, count: 100)
            let executable: [UInt8] = Array("MZ".utf8) + Array(repeating: 0x90, count: 500)
            let zip: [UInt8] =
                [0x50, 0x4B, 0x03, 0x04, 20, 0, 0, 0, 8, 0] + Array(repeating: 0, count: 16) + [5, 0, 0, 0]
                + Array("a.txt".utf8) + Array(repeating: 1, count: 50)
            let cases: [(bytes: [UInt8], name: String, status: HTTPResponse.Status, code: String)] = [
                (DocumentFixture.pdf(), "scan.png", .unsupportedMediaType, "unsupported-file-type"),
                (executable, "brief.pdf", .unsupportedMediaType, "unsupported-file-type"),
                (zip, "documenten.zip", .unsupportedMediaType, "unsupported-file-type"),
                (zip, "brief.docx", .unsupportedMediaType, "unsupported-file-type"),
                (DocumentFixture.pdf(), "brief", .unsupportedMediaType, "unsupported-file-type"),
                (Array("just text".utf8), "notes.txt", .unsupportedMediaType, "unsupported-file-type"),
                ([], "leeg.pdf", .badRequest, "empty-file"),
            ]
            for item in cases {
                let response = try await fixture.upload(item.bytes, name: item.name)
                #expect(response.status == item.status, "\(item.name): \(String(buffer: response.body))")
                #expect(try APIHarness.object(response)["code"]?.stringValue == item.code, "\(item.name)")
            }
            // A ZIP that starts like an Office file but has no main part is an archive; with one it is that document.
            #expect(
                try await fixture.upload(Self.zip(["_rels/.rels", "docProps/app.xml"]), name: "brief.docx").status == .unsupportedMediaType)
            #expect(
                try await fixture.upload(Self.zip(["[Content_Types].xml", "xl/workbook.xml"]), name: "brief.docx").status
                    == .unsupportedMediaType)
            let mismatch = try APIHarness.object(try await fixture.upload(DocumentFixture.pdf(), name: "scan.png"))
            #expect(mismatch["detail"]?.stringValue?.contains("not what its name says (.png)") == true)
            #expect(try await fixture.storedCounts() == (0, 0))
            // The real thing passes.
            #expect(try await fixture.upload(png, name: "foto.PNG").status == .created)
            #expect(
                try await fixture.upload(Self.zip(["[Content_Types].xml", "_rels/.rels", "word/document.xml"]), name: "brief.docx").status
                    == .created)
            #expect(try await fixture.upload(Self.zip(["[Content_Types].xml", "xl/workbook.xml"]), name: "lijst.xlsx").status == .created)
        }
    }

    /// A ZIP of stored (uncompressed) entries with these names, a few bytes each.
    static func zip(_ names: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        for name in names {
            let nameBytes = Array(name.utf8)
            let content = Array("<x/>".utf8)
            bytes += [0x50, 0x4B, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            bytes += [UInt8(content.count), 0, 0, 0, UInt8(content.count), 0, 0, 0]
            bytes += [UInt8(nameBytes.count), 0, 0, 0] + nameBytes + content
        }
        return bytes + [0x50, 0x4B, 0x05, 0x06] + Array(repeating: 0, count: 18)
    }

    @Test("uploads only while the case's status takes them, never on a closed case, and within the quota")
    func uploadRules() async throws {
        var options = APIHarness.Options()
        options.documents.maxFilesPerCase = 2
        try await APIHarness.with(options) { api in
            let fixture = try await DocumentFixture.make(api, status: "ontvangen")
            let early = try await fixture.upload(DocumentFixture.pdf(), name: "a.pdf")
            #expect(early.status == .conflict)
            #expect(try APIHarness.object(early)["code"]?.stringValue == "uploads-closed")
            try await DocumentFixture.setStatus(api, department: fixture.department, "in-behandeling", event: "e2")
            #expect(try await fixture.upload(DocumentFixture.pdf(), name: "a.pdf").status == .created)
            #expect(try await fixture.upload(DocumentFixture.pdf(), name: "b.pdf").status == .created)
            let third = try await fixture.upload(DocumentFixture.pdf(), name: "c.pdf")
            #expect(third.status == .conflict)
            #expect(try APIHarness.object(third)["code"]?.stringValue == "upload-quota")
            try await DocumentFixture.setStatus(api, department: fixture.department, "gereed", event: "e3", at: "2026-11-22T10:00:00Z")
            let closed = try await fixture.upload(DocumentFixture.pdf(), name: "d.pdf")
            #expect(closed.status == .conflict)
            #expect(try APIHarness.object(closed)["detail"]?.stringValue?.contains("closed") == true)
            #expect(try await fixture.storedCounts().documents == 2)
        }
    }

    @Test("a file name with path separators, control characters or 300 characters is stored and served safely")
    func fileNames() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let long = String(repeating: "lang", count: 75) + ".pdf"
            let names: [(given: String, stored: String)] = [
                ("../../etc/passwd.pdf", "passwd.pdf"),
                (#"C:\Users\jan\Documenten\brief.pdf"#, "brief.pdf"),
                ("brief\u{0007}\u{202E}fdp.exe.pdf", "brieffdp.exe.pdf"),
                ("\"quoted\";name.pdf", "_quoted_;name.pdf"),
                ("Überweisung café.pdf", "Überweisung café.pdf"),
                (long, String(repeating: "lang", count: 29) + ".pdf"),
            ]
            for (given, stored) in names {
                let response = try await fixture.upload(DocumentFixture.pdf(), name: given)
                #expect(response.status == .created, "\(given): \(String(buffer: response.body))")
                let document = try APIHarness.object(response)
                #expect(document["fileName"]?.stringValue == stored, "\(given)")
                let download = try await api.request(.get, try #require(document["href"]?.stringValue), headers: fixture.session.headers)
                let disposition = try #require(download.headers[.contentDisposition])
                #expect(disposition.hasPrefix("attachment; "))
                #expect(
                    !disposition.contains("/") && !disposition.contains("\\")
                        && disposition.unicodeScalars.allSatisfy { $0.isASCII && $0.value >= 0x20 })
                #expect(FileName.fromContentDisposition(disposition) == stored)
            }
            // A name of combining marks: short in characters, long in code points (as the database counts).
            let marks = try APIHarness.object(
                try await fixture.upload(DocumentFixture.pdf(), name: "e" + String(repeating: "\u{301}", count: 300) + ".pdf"))
            let marked = try #require(marks["fileName"]?.stringValue)
            #expect(marked.unicodeScalars.count <= FileName.maxLength && marked.hasSuffix(".pdf"))
            // The content is stored under the generated id only.
            let rows = try await api.database.client.query("SELECT DISTINCT document_id FROM document_chunks")
            var ids = 0
            for try await _ in rows.decode(UUID.self) { ids += 1 }
            #expect(ids == names.count + 1)
        }
    }

    @Test("every chunk is checked against its SHA-256 before it is served: a damaged file is never handed out")
    func damagedContent() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let bytes = DocumentFixture.pdf(size: 600_000)
            let href = try #require(try APIHarness.object(try await fixture.upload(bytes, name: "a.pdf"))["href"]?.stringValue)
            // Flip one byte in the third chunk.
            try await api.database.client.query(
                "UPDATE document_chunks SET data = set_byte(data, 10, (get_byte(data, 10) + 1) % 256) WHERE index = 2")
            // The first two chunks are intact: a range inside them is served.
            let start = try await api.request(.get, href, headers: fixture.session.headers.merging([.range: "bytes=0-99"]))
            #expect(Array(start.body.readableBytesView) == Array(bytes[0...99]))
            // The whole file stops before the damaged chunk (fewer bytes than announced), and the API says why.
            let whole = try? await api.client.execute(uri: href, method: .get, headers: fixture.session.headers, body: nil)
            #expect(whole.map { $0.body.readableBytes < bytes.count } ?? true)
            #expect(!api.log.lines(containing: "document content does not match its hash").isEmpty)
        }
    }

    @Test("documents kept in a folder instead of PostgreSQL are stored, served and checked the same way")
    func directoryStorage() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("portal-documents-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var options = APIHarness.Options()
        options.documents.storage = .directory(folder.path)
        try await APIHarness.with(options) { api in
            let fixture = try await DocumentFixture.make(api)
            let bytes = DocumentFixture.pdf(size: 300_000)
            let document = try APIHarness.object(try await fixture.upload(bytes, name: "a.pdf"))
            let id = try #require(document["id"]?.stringValue)
            let file = folder.appendingPathComponent(String(id.prefix(2))).appendingPathComponent(id)
            #expect(Array(try Data(contentsOf: file)) == bytes)
            #expect(try await fixture.storedCounts() == (1, 0))
            let download = try await api.request(.get, try #require(document["href"]?.stringValue), headers: fixture.session.headers)
            #expect(Array(download.body.readableBytesView) == bytes)
            // A refused upload leaves no file behind.
            #expect(try await fixture.upload(Array("MZ".utf8) + bytes, name: "b.pdf").status == .unsupportedMediaType)
            let folders = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }
            let files = try folders.flatMap { try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent($0).path) }
            #expect(files == [id])
        }
    }

    @Test("an upload that died is cleaned up: its row and content go after an hour, stored documents stay")
    func abandonedUploads() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            #expect(try await fixture.upload(DocumentFixture.pdf(), name: "kept.pdf").status == .created)
            let orphan = UUID()
            try await api.database.client.query(
                """
                INSERT INTO documents (id, department_id, subject_kind, subject, case_id, origin, file_name, content_type, storage, delivery,
                                       created_at)
                SELECT \(orphan), department_id, subject_kind, subject, id, 'resident', 'half.pdf', 'application/pdf', 'postgres',
                       'pending', now() - interval '2 hours'
                FROM cases
                """)
            try await api.database.client.query("INSERT INTO document_chunks VALUES (\(orphan), 0, '\\x01'::bytea)")
            let services = DocumentServices(settings: DocumentSettings(), database: api.database.client, logger: api.database.logger)
            await UploadJanitor(services: services, logger: api.database.logger).cleanOnce()
            #expect(try await fixture.storedCounts() == (1, 1))
        }
    }
}

extension HTTPFields {
    func merging(_ other: HTTPFields) -> HTTPFields {
        var merged = self
        for field in other { merged[field.name] = field.value }
        return merged
    }
}

@Suite("Document receiver")
struct DocumentReceiverTests {
    @Test("more bytes than the limit are refused as soon as the limit is passed, and nothing is stored")
    func limit() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("portal-receiver-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        do {
            let receiver = DocumentReceiver(storage: DirectoryDocumentStorage(root: folder.path), clamd: nil, maxBytes: 10_000)
            let pieces = Mutex(0)
            let piece = ByteBuffer(bytes: Array("%PDF-1.4\n".utf8) + Array(repeating: 0x41, count: 991))
            do {
                _ = try await receiver.receive(id: UUID(), fileName: "a.pdf") {
                    pieces.withLock { $0 += 1 }
                    return piece
                }
                Issue.record("an endless body was accepted")
            } catch UploadRefusal.tooLarge(let limit) {
                #expect(limit == 10_000)
            }
            #expect(pieces.withLock { $0 } == 11)
            #expect(try FileManager.default.subpathsOfDirectory(atPath: folder.path).allSatisfy { !$0.contains("-") })
        }
    }
}
