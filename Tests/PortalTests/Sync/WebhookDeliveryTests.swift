import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Synchronization
import Testing

@testable import PortalAPI
@testable import Shared
@testable import SyncWorker

/// Residents' messages and uploads posted to a department's own webhook, signed, retried while it fails, and then
/// shown to the resident as delivered.
@Suite("Webhook delivery")
struct WebhookDeliveryTests {
    static let secret = "webhook-secret-of-at-least-32-bytes-0123"

    /// A department's webhook endpoint that answers 503 to the first `failures` posts and records the rest.
    final class Receiver: Sendable {
        struct Post: Sendable {
            let timestamp: String?
            let signature: String?
            let body: Data
        }

        let state: Mutex<(failures: Int, posts: [Post])>

        init(failures: Int) { self.state = Mutex((failures, [])) }

        var posts: [Post] { self.state.withLock { $0.posts } }

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.post("/hook") { request, _ -> Response in
                let body = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
                return self.state.withLock { state in
                    if state.failures > 0 {
                        state.failures -= 1
                        return Response(status: .serviceUnavailable)
                    }
                    state.posts.append(
                        Post(
                            timestamp: request.headers[HTTPField.Name("Portal-Timestamp")!],
                            signature: request.headers[HTTPField.Name("Portal-Signature")!], body: body))
                    return Response(status: .noContent)
                }
            }
            return router
        }
    }

    @Test("a resident's message and upload reach the department's webhook signed, after it failed once, and show as delivered")
    func messageAndUpload() async throws {
        try await APIHarness.with { api in
            let receiver = Receiver(failures: 1)
            try await withTestServer(receiver.router(), logger: api.log.logger("webhook", level: .warning)) { port in
                let fixture = try await DocumentFixture.make(api)
                let department = try await DocumentDeliveryTests.departmentID(api)
                try await WebhookStore().set(
                    Webhook(departmentID: department, url: URL(string: "http://127.0.0.1:\(port)/hook")!, secret: Self.secret),
                    client: api.database.client, logger: api.database.logger)
                let upload = try APIHarness.object(try await fixture.upload(DocumentFixture.pdf(size: 5000), name: "pasfoto.pdf"))
                let uploadID = try #require(upload["id"]?.stringValue)
                let sent = try await api.request(
                    .post, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.unsafeHeaders,
                    json: #"{"body": "Hierbij de pasfoto.", "documentIds": ["\#(uploadID)"]}"#)
                #expect(sent.status == .created)
                let arrived = try await SyncHarness.with(api.database) { try await eventually { receiver.posts.count == 2 } }
                #expect(arrived, "\(receiver.posts.count) posts arrived")
                var types: [String] = []
                for post in receiver.posts {
                    let timestamp = try #require(post.timestamp.flatMap { Int($0) })
                    #expect(abs(timestamp - Int(Date().timeIntervalSince1970)) < 300)
                    #expect(post.signature == Webhook.signature(secret: Self.secret, timestamp: timestamp, body: post.body))
                    #expect(post.signature != Webhook.signature(secret: Self.secret + "x", timestamp: timestamp, body: post.body))
                    let text = String(decoding: post.body, as: UTF8.self)
                    #expect(!text.contains(DocumentFixture.bsn))
                    guard case .object(let fields) = try JSONDecoder().decode(JSONValue.self, from: post.body) else {
                        Issue.record("not a JSON object: \(text)")
                        continue
                    }
                    #expect(fields["caseReference"]?.stringValue == fixture.reference)
                    types.append(fields["type"]?.stringValue ?? "")
                    if fields["type"]?.stringValue == "message" { #expect(fields["body"]?.stringValue == "Hierbij de pasfoto.") }
                    let href = try #require(fields["documents"]?.arrayValue?.first?.objectValue?["href"]?.stringValue)
                    #expect(href == "\(APIHarness.publicURL)/api/v1/department/documents/\(uploadID)/content")
                }
                #expect(types.sorted() == ["document", "message"])
                let thread = try APIHarness.object(
                    try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/messages", headers: fixture.session.headers))
                #expect(thread["items"]?.arrayValue?.first?.objectValue?["delivered"]?.boolValue == true)
                let documents = try APIHarness.object(
                    try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/documents", headers: fixture.session.headers))
                #expect(documents["items"]?.arrayValue?.first?.objectValue?["delivered"]?.boolValue == true)
            }
        }
    }
}
