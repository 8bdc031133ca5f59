import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// Hostile clients against the real HTTP server: slow, oversized, unfinished, deeply nested, flooding. Each is cut
/// off cheaply, and nothing it sent is kept.
@Suite("Abuse")
struct AbuseTests {
    /// A live server with short limits, so the tests take seconds.
    static var shortLimits: APIHarness.Options {
        var options = APIHarness.Options()
        options.live = true
        options.idleTimeout = .seconds(1)
        options.requestTimeout = .seconds(3)
        options.maxHeaderBytes = 8 * 1024
        return options
    }

    @Test("a client that dribbles its headers (slowloris) is disconnected after the idle timeout, without an answer")
    func slowloris() async throws {
        try await APIHarness.with(Self.shortLimits) { api in
            let port = try #require(api.client.port)
            let outcome = try await MisbehavingClient.run(port: port, limit: .seconds(15)) { writer in
                try await writer.write(ByteBuffer(string: "GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
                // One header line every 200 ms for 12 s, never the blank line that ends the head.
                for line in 0..<60 {
                    try await Task.sleep(for: .milliseconds(200))
                    try await writer.write(ByteBuffer(string: "X-Slow-\(line): still here\r\n"))
                }
            }
            let closed = try #require(outcome.closedAfter, "the server kept a dribbling client for 15 s")
            #expect(closed < .seconds(5), "closed after \(closed)")
            #expect(outcome.answer.isEmpty, "\(outcome.answer)")
            #expect(try await Self.serves(port: port))
        }
    }

    @Test("a request whose headers pass the limit is cut off before any handler runs")
    func hugeHeaders() async throws {
        try await APIHarness.with(Self.shortLimits) { api in
            let port = try #require(api.client.port)
            let session = try await api.devLogin()
            for head in [
                // One field over the limit; many fields that are over it together; more than 100 fields.
                "X-Big: \(String(repeating: "a", count: 64 * 1024))\r\n",
                (0..<40).map { "X-Part-\($0): \(String(repeating: "b", count: 400))\r\n" }.joined(),
                (0..<150).map { "X-Many-\($0): c\r\n" }.joined(),
            ] {
                let outcome = try await MisbehavingClient.run(port: port, limit: .seconds(10)) { writer in
                    try await writer.write(
                        ByteBuffer(string: "GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: \(session.cookie)\r\n\(head)\r\n"))
                }
                #expect(outcome.closedAfter != nil, "the connection stayed open")
                #expect(!outcome.answer.contains(" 200 "), "\(outcome.answer.prefix(200))")
            }
            #expect(try await Self.serves(port: port))
        }
    }

    /// Whether the server still answers a well-behaved client, on a new connection (the test client's own would have
    /// been closed by the short idle timeout).
    static func serves(port: Int) async throws -> Bool {
        let outcome = try await MisbehavingClient.run(port: port, limit: .seconds(10)) { writer in
            try await writer.write(ByteBuffer(string: "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
        }
        return outcome.answer.hasPrefix("HTTP/1.1 200 ")
    }

    @Test("an upload that stalls is dropped after the idle timeout; one that dribbles, after the request timeout; neither is kept")
    func unfinishedUploads() async throws {
        // The fixture's requests may be seconds apart on a loaded machine, longer than the idle timeout: a client that
        // reconnects. The limits are longer than the other tests' so that the two uploads' outcomes stay apart.
        var options = Self.shortLimits
        options.reconnects = true
        options.idleTimeout = .seconds(3)
        options.requestTimeout = .seconds(6)
        try await APIHarness.with(options) { api in
            let port = try #require(api.client.port)
            let fixture = try await DocumentFixture.make(api)
            let head = UploadLimitTests.head(fixture, length: 1_000_000)
            let stalled = try await MisbehavingClient.run(port: port, limit: .seconds(15)) { writer in
                try await writer.write(ByteBuffer(string: head))
                try await writer.write(ByteBuffer(bytes: DocumentFixture.pdf(size: 100_000)))
                // ... and nothing more, ever.
            }
            let stalledAfter = try #require(stalled.closedAfter, "a stalled upload was kept open for 15 s")
            #expect(stalledAfter < .seconds(10), "closed after \(stalledAfter)")
            // The handler sees the body end in an error and removes what it had registered (state `receiving`).
            #expect(try await eventually { try await fixture.storedCounts() == (0, 0) }, "after the stalled upload")

            let dribbled = try await MisbehavingClient.run(port: port, limit: .seconds(30)) { writer in
                try await writer.write(ByteBuffer(string: head))
                try await writer.write(ByteBuffer(bytes: DocumentFixture.pdf(size: 1000)))
                // 100 bytes every 200 ms: never idle for long, and 1 MB would take half an hour.
                while true {
                    try await Task.sleep(for: .milliseconds(200))
                    try await writer.write(ByteBuffer(repeating: 0x41, count: 100))
                }
            }
            let dribbledAfter = try #require(dribbled.closedAfter, "a dribbling upload was kept open for 30 s")
            #expect(dribbledAfter >= .seconds(5) && dribbledAfter < .seconds(15), "closed after \(dribbledAfter)")
            #expect(
                try await eventually { try await fixture.storedCounts() == (0, 0) }, "after the dribbling upload")
        }
    }

    @Test("JSON nested 10,000 levels deep, or with a million keys, is refused before it is parsed")
    func complexJSON() async throws {
        try await APIHarness.with { api in
            let department = try await CaseTrackingTests.department(api, name: "Burgerzaken")
            let deep = String(repeating: #"{"a":"#, count: 10_000) + "1" + String(repeating: "}", count: 10_000)
            let arrays = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            for body in [deep, #"{"reference": "x", "case": "# + arrays + "}"] {
                let response = try await api.request(.put, "/api/v1/department/cases/HLM-1", headers: department, json: body)
                #expect(response.status == .badRequest)
                #expect(try APIHarness.object(response)["code"] == .string("too-complex"))
            }
            // A million keys in 6 MB, under the batch endpoint's 16 MiB.
            let keys = #"{"items": [{"# + String(repeating: #""a":0,"#, count: 1_000_000) + #""b":0}]}"#
            let response = try await api.request(.post, "/api/v1/department/cases:batch", headers: department, json: keys)
            #expect(response.status == .badRequest)
            #expect(try APIHarness.object(response)["code"] == .string("too-complex"))
            #expect(String(buffer: response.body).contains("200000 values"))
        }
    }

    @Test("the limits scan counts structure only: brackets, commas and escaped quotes inside strings do not count")
    func jsonLimitsScan() {
        let limits = JSONLimits(depth: 2, values: 4)
        #expect(limits.check(Data(#"{"a": [1, 2]}"#.utf8)) == nil)
        #expect(limits.check(Data(#"{"a": "[[[[,,,,{{{{\"]]]"}"#.utf8)) == nil)
        #expect(limits.check(Data(#"{"a": [[1]]}"#.utf8)) == .tooDeep(limit: 2))
        #expect(limits.check(Data(#"[1, 2, 3, 4]"#.utf8)) == nil)
        #expect(limits.check(Data(#"[1, 2, 3, 4, 5]"#.utf8)) == .tooManyValues(limit: 4))
        #expect(limits.check(Data(#"{"a\"": ",", "b": 1, "c": 2}"#.utf8)) == nil)
    }

    @Test("logins are limited per client address; another client is not affected, and the first refusal is a security event")
    func loginRateLimit() async throws {
        var options = APIHarness.Options()
        options.live = true
        // A day-long window: no window boundary falls inside the test.
        options.rateLimits = RateLimitSettings(
            login: RateLimit(requests: 5, window: .seconds(86_400)), department: nil,
            trustedProxies: [try #require(IPNetwork("127.0.0.0/8"))])
        try await APIHarness.with(options) { api in
            func login(from client: String) async throws -> TestResponse {
                try await api.request(
                    .post, "/auth/dev-login", headers: [HTTPField.Name("X-Forwarded-For")!: "198.51.100.1, \(client)"],
                    json: #"{"bsn": "999993653"}"#)
            }
            for _ in 0..<5 { #expect(try await login(from: "203.0.113.7").status == .ok) }
            for _ in 0..<3 {
                let refused = try await login(from: "203.0.113.7")
                #expect(refused.status == .tooManyRequests)
                #expect(try APIHarness.object(refused)["code"] == .string("rate-limited"))
                let retryAfter = try #require(refused.headers[.retryAfter].flatMap { Int($0) })
                #expect(retryAfter >= 1 && retryAfter <= 86_400)
            }
            // Another client behind the same proxy logs in; so does the broker's login start for it.
            #expect(try await login(from: "203.0.113.8").status == .ok)
            #expect(api.log.lines(containing: "portal.security.event=rate-limited").count == 1)
        }
    }

    @Test("a department flooding status pushes is refused over its limit, storing nothing more, while another department pushes as usual")
    func departmentFlood() async throws {
        var options = APIHarness.Options()
        // A day-long window: no window boundary falls inside the test.
        options.rateLimits = RateLimitSettings(login: nil, department: RateLimit(requests: 20, window: .seconds(86_400)))
        try await APIHarness.with(options) { api in
            // Two requests each to set up (the case type, the case), counted like any other.
            let flooder = try await CaseTrackingTests.department(api, name: "Burgerzaken")
            let other = try await CaseTrackingTests.department(api, name: "Belastingen")
            for headers in [flooder, other] {
                let created = try await api.request(
                    .put, "/api/v1/department/cases/HLM-1", headers: headers, json: CaseTrackingTests.caseBody())
                try #require(created.status == .created)
            }
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for push in 0..<200 {
                    group.addTask {
                        let body = CaseTrackingTests.status("flood-\(push)", "in-behandeling", at: "2026-11-21T10:00:00Z", text: "Bezig")
                        return try await api.request(.post, "/api/v1/department/cases/HLM-1/statuses", headers: flooder, json: body).status
                    }
                }
                var statuses: [HTTPResponse.Status] = []
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(statuses.filter { $0 == .created }.count == 18)
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 182)
            for push in 0..<18 {
                let body = CaseTrackingTests.status("other-\(push)", "in-behandeling", at: "2026-11-21T10:00:00Z", text: "Bezig")
                #expect(
                    try await api.request(.post, "/api/v1/department/cases/HLM-1/statuses", headers: other, json: body).status == .created)
            }
            #expect(try await api.request(.get, "/api/v1/department", headers: other).status == .tooManyRequests)
            let stored = try await api.database.client.query(
                "SELECT count(*) FILTER (WHERE event_id LIKE 'flood-%'), count(*) FILTER (WHERE event_id LIKE 'other-%') FROM status_events"
            )
            for try await (flood, others) in stored.decode((Int64, Int64).self) {
                #expect(flood == 18 && others == 18)
            }
        }
    }

    @Test("the client address: the peer, or behind a trusted proxy the last address it did not add; IPv6 per /64")
    func clientAddress() throws {
        func request(forwardedFor: String?) -> Request {
            var fields = HTTPFields()
            if let forwardedFor { fields[HTTPField.Name("X-Forwarded-For")!] = forwardedFor }
            return Request(
                head: HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/", headerFields: fields),
                body: .init(buffer: ByteBuffer()))
        }
        let proxies = [try #require(IPNetwork("10.0.0.0/8")), try #require(IPNetwork("fd00::/8"))]
        let proxy = try SocketAddress(ipAddress: "10.1.2.3", port: 1)
        let stranger = try SocketAddress(ipAddress: "192.0.2.9", port: 1)
        // A stranger's header is ignored: anyone can write one.
        #expect(ClientAddress.key(request(forwardedFor: "203.0.113.7"), peer: stranger, trusted: proxies) == "192.0.2.9")
        #expect(ClientAddress.key(request(forwardedFor: "203.0.113.7"), peer: proxy, trusted: proxies) == "203.0.113.7")
        // The client wrote its own X-Forwarded-For; the proxies appended the real address after it.
        #expect(ClientAddress.key(request(forwardedFor: "1.1.1.1, 203.0.113.7, 10.9.9.9"), peer: proxy, trusted: proxies) == "203.0.113.7")
        #expect(ClientAddress.key(request(forwardedFor: nil), peer: proxy, trusted: proxies) == "10.1.2.3")
        let v6a = try SocketAddress(ipAddress: "2001:db8:1:2:aaaa::1", port: 1)
        let v6b = try SocketAddress(ipAddress: "2001:db8:1:2:bbbb::2", port: 1)
        let v6c = try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1)
        let key = { (peer: SocketAddress) in ClientAddress.key(request(forwardedFor: nil), peer: peer, trusted: []) }
        #expect(key(v6a) == key(v6b))
        #expect(key(v6a) != key(v6c))
        #expect(key(try SocketAddress(ipAddress: "::ffff:192.0.2.9", port: 1)) == "192.0.2.9")
        #expect(IPNetwork("10.0.0.0/33") == nil && IPNetwork("nonsense") == nil)
    }
}
