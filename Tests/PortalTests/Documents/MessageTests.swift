import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// Berichten both ways and the department's side of documents: publishing, sending with an attachment, the inbox,
/// reading, writing back, and the department fetching what residents sent.
@Suite("Messages")
struct MessageTests {
    @Test("a department publishes a document to a case: the resident is notified once, sees it and downloads it")
    func publishedDocument() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let letter = DocumentFixture.pdf(size: 40_000)
            var headers = fixture.department
            headers[.contentType] = "application/pdf"
            headers[.contentDisposition] = #"attachment; filename="besluit.pdf""#
            headers[.idempotencyKey] = "besluit-1"
            let published = try await api.client.execute(
                uri: "/api/v1/department/cases/\(fixture.reference)/documents", method: .post, headers: headers,
                body: ByteBuffer(bytes: letter))
            #expect(published.status == .created, "\(String(buffer: published.body))")
            let again = try await api.client.execute(
                uri: "/api/v1/department/cases/\(fixture.reference)/documents", method: .post, headers: headers,
                body: ByteBuffer(bytes: letter))
            #expect(again.status == .ok)
            #expect(try APIHarness.object(again)["id"] == APIHarness.object(published)["id"])
            let unknown = try await api.client.execute(
                uri: "/api/v1/department/cases/Z-unknown/documents", method: .post, headers: headers, body: ByteBuffer(bytes: letter))
            #expect(unknown.status == .notFound)

            let kinds = try await Self.notificationKinds(api)
            #expect(kinds.filter { $0 == "document" }.count == 1)
            let list = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/documents", headers: fixture.session.headers))
            let item = try #require(list["items"]?.arrayValue?.first?.objectValue)
            #expect(item["addedBy"]?.stringValue == "department")
            #expect(item["delivered"] == nil)
            let download = try await api.request(.get, try #require(item["href"]?.stringValue), headers: fixture.session.headers)
            #expect(Array(download.body.readableBytesView) == letter)
            let detail = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(fixture.caseID)", headers: fixture.session.headers))
            #expect(detail["documents"]?.numberValue == 1)
            let cases = try APIHarness.object(try await api.request(.get, "/api/v1/cases", headers: fixture.session.headers))
            #expect(cases["items"]?.arrayValue?.first?.objectValue?["documents"]?.numberValue == 1)
        }
    }

    @Test("messages both ways: the inbox with its unread count and filter, reading marks read, the resident writes back with an upload")
    func conversation() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let about = try await api.request(
                .post, "/api/v1/department/messages", headers: fixture.department,
                json:
                    #"{"id": "m-1", "caseReference": "Z-2026-001", "title": "Aanvullende stukken", "body": "Wilt u een pasfoto uploaden?"}"#
            )
            #expect(about.status == .created, "\(String(buffer: about.body))")
            let repeated = try await api.request(
                .post, "/api/v1/department/messages", headers: fixture.department,
                json:
                    #"{"id": "m-1", "caseReference": "Z-2026-001", "title": "Aanvullende stukken", "body": "Wilt u een pasfoto uploaden?"}"#
            )
            #expect(repeated.status == .ok)
            // A general message with an attachment, as a form: the message first, then the file.
            var headers = fixture.department
            headers[.contentType] = "multipart/form-data; boundary=portal-test-boundary"
            let general = try await api.client.execute(
                uri: "/api/v1/department/messages", method: .post, headers: headers,
                body: DocumentFixture.form(
                    [
                        "message": Array(
                            #"{"id": "m-2", "recipient": {"bsn": "999993653"}, "title": "Nieuwsbrief", "body": "Zie bijlage."}"#.utf8)
                    ],
                    file: ("file", "nieuwsbrief.pdf", DocumentFixture.pdf(size: 5000))))
            #expect(general.status == .created, "\(String(buffer: general.body))")
            #expect(try APIHarness.object(general)["documents"]?.arrayValue?.count == 1)
            #expect(try await Self.notificationKinds(api).filter { $0 == "message" }.count == 2)

            let cases = try APIHarness.object(try await api.request(.get, "/api/v1/cases", headers: fixture.session.headers))
            #expect(cases["items"]?.arrayValue?.first?.objectValue?["unreadMessages"]?.numberValue == 1, "only the message about the case")
            let inbox = try APIHarness.object(try await api.request(.get, "/api/v1/messages", headers: fixture.session.headers))
            #expect(inbox["unreadCount"]?.numberValue == 2)
            let items = try #require(inbox["items"]?.arrayValue).compactMap { $0.objectValue }
            #expect(items.map { $0["title"]?.stringValue } == ["Nieuwsbrief", "Aanvullende stukken"])
            #expect(items[0]["caseId"] == nil)
            let attachment = try #require(items[0]["documents"]?.arrayValue?.first?.objectValue?["href"]?.stringValue)
            #expect(try await api.request(.get, attachment, headers: fixture.session.headers).status == .ok)
            // A page of one, then the next.
            let first = try APIHarness.object(try await api.request(.get, "/api/v1/messages?limit=1", headers: fixture.session.headers))
            let next = try #require(first["next"]?.stringValue)
            let second = try APIHarness.object(
                try await api.request(.get, "/api/v1/messages?limit=1&cursor=\(next)", headers: fixture.session.headers))
            #expect(second["items"]?.arrayValue?.first?.objectValue?["title"]?.stringValue == "Aanvullende stukken")
            #expect(second["next"] == .null)

            // Reading the case's thread marks its message read; the general one stays unread.
            let thread = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.headers))
            #expect(thread["items"]?.arrayValue?.first?.objectValue?["read"]?.boolValue == true)
            let unread = try APIHarness.object(
                try await api.request(.get, "/api/v1/messages?unread=true", headers: fixture.session.headers))
            #expect(unread["unreadCount"]?.numberValue == 1)
            #expect(unread["items"]?.arrayValue?.count == 1)
            let generalID = try #require(items[0]["id"]?.stringValue)
            let opened = try APIHarness.object(
                try await api.request(.get, "/api/v1/messages/\(generalID)", headers: fixture.session.headers))
            #expect(opened["read"]?.boolValue == true)

            // The resident answers, referring to an upload of theirs; a document of someone else's case is refused.
            let upload = try APIHarness.object(try await fixture.upload(DocumentFixture.pdf(), name: "pasfoto.pdf"))
            let uploadID = try #require(upload["id"]?.stringValue)
            let answer = try await api.request(
                .post, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.unsafeHeaders,
                json: #"{"body": "Hierbij de pasfoto.", "documentIds": ["\#(uploadID)"]}"#)
            #expect(answer.status == .created, "\(String(buffer: answer.body))")
            #expect(try APIHarness.object(answer)["delivered"]?.boolValue == false)
            let foreign = try await api.request(
                .post, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.unsafeHeaders,
                json: #"{"body": "x", "documentIds": ["\#(generalID)"]}"#)
            #expect(foreign.status == .badRequest)
            let empty = try await api.request(
                .post, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.unsafeHeaders,
                json: #"{"body": "  ", "extra": 1}"#)
            #expect(try APIHarness.invalidParams(empty) == ["body", "extra"])
            let tooLong = try await api.request(
                .post, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.unsafeHeaders,
                json: #"{"body": "\#(String(repeating: "a", count: 5001))"}"#)
            #expect(try APIHarness.invalidParams(tooLong) == ["body"])

            // The department fetches the answer and the upload; asking after them confirms them as delivered.
            let fetched = try APIHarness.object(try await api.request(.get, "/api/v1/department/messages", headers: fixture.department))
            let message = try #require(fetched["items"]?.arrayValue?.first?.objectValue)
            #expect(message["body"]?.stringValue == "Hierbij de pasfoto.")
            #expect(message["caseReference"]?.stringValue == "Z-2026-001")
            let documentHref = try #require(message["documents"]?.arrayValue?.first?.objectValue?["href"]?.stringValue)
            #expect(try await api.request(.get, documentHref, headers: fixture.department).status == .ok)
            let position = try #require(fetched["next"]?.numberValue)
            let documents = try APIHarness.object(try await api.request(.get, "/api/v1/department/documents", headers: fixture.department))
            let documentsNext = try #require(documents["next"]?.numberValue)
            #expect(documents["items"]?.arrayValue?.count == 1)
            _ = try await api.request(.get, "/api/v1/department/messages?after=\(Int(position))", headers: fixture.department)
            _ = try await api.request(.get, "/api/v1/department/documents?after=\(Int(documentsNext))", headers: fixture.department)
            let sent = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.headers))
            #expect(sent["items"]?.arrayValue?.last?.objectValue?["delivered"]?.boolValue == true)
            let uploads = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/documents", headers: fixture.session.headers))
            #expect(
                uploads["items"]?.arrayValue?.first { $0.objectValue?["addedBy"]?.stringValue == "resident" }?.objectValue?["delivered"]?
                    .boolValue == true)

            // Another department sees none of it; another resident neither.
            let other = try await CaseTrackingTests.department(api, name: "Belastingen")
            let nothing = try APIHarness.object(try await api.request(.get, "/api/v1/department/messages", headers: other))
            #expect(nothing["items"]?.arrayValue?.isEmpty == true)
            #expect(try await api.request(.get, documentHref, headers: other).status == .notFound)
            let stranger = try await api.devLogin(bsn: DocumentFixture.otherBSN)
            #expect(try await api.request(.get, "/api/v1/messages/\(generalID)", headers: stranger.headers).status == .notFound)
            let strangerInbox = try APIHarness.object(try await api.request(.get, "/api/v1/messages", headers: stranger.headers))
            #expect(strangerInbox["items"]?.arrayValue?.isEmpty == true)
        }
    }

    @Test("a department's message is checked field by field")
    func departmentMessageInput() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let bad = try await api.request(
                .post, "/api/v1/department/messages", headers: fixture.department,
                json: #"{"caseReference": "Z-none", "title": "", "documentIds": ["nope"]}"#)
            #expect(bad.status == .badRequest)
            #expect(try APIHarness.invalidParams(bad) == ["body", "caseReference", "documentIds", "title"])
            let noRecipient = try await api.request(
                .post, "/api/v1/department/messages", headers: fixture.department, json: #"{"title": "t", "body": "b"}"#)
            #expect(try APIHarness.invalidParams(noRecipient) == ["recipient"])
        }
    }

    static func notificationKinds(_ api: APIHarness) async throws -> [String] {
        let rows = try await api.database.client.query("SELECT kind FROM notifications ORDER BY id")
        var kinds: [String] = []
        for try await kind in rows.decode(String.self) { kinds.append(kind) }
        return kinds
    }
}

@Suite("Department fetch")
struct DepartmentFetchTests {
    @Test("an upload stored after faster ones with higher positions is still offered, and only confirmed once offered")
    func lateUpload() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let department = try await DocumentDeliveryTests.departmentID(api)
            let store = DocumentStore()
            let client = api.database.client
            let logger = api.database.logger
            let caseID = try #require(UUID(uuidString: fixture.caseID))
            let owner = try Subject(kind: .bsn, validating: DocumentFixture.bsn)
            func new() -> NewDocument {
                NewDocument(
                    departmentID: department, owner: owner, caseID: caseID, origin: .resident, fileName: "a.pdf", storage: .postgres)
            }
            let content = ReceivedContent(
                type: .pdf, size: 10, sha256: Data(repeating: 1, count: 32), chunkHashes: Data(repeating: 2, count: 32), scan: .notScanned)
            let (slow, fast) = (new(), new())
            #expect(try await store.begin(slow, client: client, logger: logger))
            #expect(try await store.begin(fast, client: client, logger: logger))
            _ = try await client.withConnection { try await store.accept(fast.id, content: content, on: $0, logger: logger) }
            func fetch(after: Int64) async throws -> [DocumentRecord] {
                try await client.withConnection {
                    try await store.departmentFeed(department: department, after: after, limit: 10, on: $0, logger: logger)
                }
            }
            let first = try await fetch(after: 0)
            #expect(first.map(\.id) == [fast.id])
            let next = try #require(first.last?.position)
            // The slow one is stored now, with a lower position than the department's `after`.
            _ = try await client.withConnection { try await store.accept(slow.id, content: content, on: $0, logger: logger) }
            let second = try await fetch(after: next)
            #expect(second.map(\.id) == [slow.id], "the slow upload was skipped")
            let states = try await client.query("SELECT id, delivery FROM documents ORDER BY position")
            var delivery: [UUID: String] = [:]
            for try await (id, state) in states.decode((UUID, String).self) { delivery[id] = state }
            #expect(delivery[fast.id] == "delivered" && delivery[slow.id] == "pending")
            _ = try await fetch(after: next)
            let after = try await client.query("SELECT count(*) FROM documents WHERE delivery = 'delivered'")
            for try await count in after.decode(Int.self) { #expect(count == 2) }
        }
    }
}
