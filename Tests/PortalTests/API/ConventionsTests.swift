import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// The NL API Design Rules conventions, on every kind of response.
@Suite("API conventions")
struct ConventionsTests {
    static let securityHeaders: [HTTPField.Name: String] = [
        .apiVersion: APIConventionsMiddleware.apiVersion,
        .cacheControl: "no-store",
        .xContentTypeOptions: "nosniff",
        .xFrameOptions: "DENY",
        .strictTransportSecurity: "max-age=31536000; includeSubDomains",
    ]

    @Test("every response carries API-Version and the security headers: success, problem, unknown route, operational")
    func headersEverywhere() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            let responses = [
                try await api.request(.get, "/api/v1/me", headers: session.headers),
                try await api.request(.get, "/api/v1/me"),
                try await api.request(.get, "/api/v1/no-such-thing"),
                try await api.request(.get, "/health/live"),
                try await api.request(.get, "/api/v1/openapi.json"),
                try await api.request(.get, "/auth/login?returnTo=https://evil.example"),
            ]
            for response in responses {
                for (name, value) in Self.securityHeaders {
                    #expect(response.headers[name] == value, "\(name) on a \(response.status)")
                }
            }
            let unknown = responses[2]
            #expect(unknown.status == .notFound)
            #expect(unknown.headers[.contentType] == "application/problem+json")
            let problem = try APIHarness.object(unknown)
            #expect(problem["status"] == .number(404) && problem["title"] != nil && problem["detail"] != nil)
            #expect(problem["traceId"]?.stringValue?.count == 32)
        }
    }

    @Test("406 for an Accept without JSON, 415 for a body that is not JSON, 413 for a body too large")
    func mediaTypes() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            let html = try await api.request(.get, "/api/v1/me", headers: [.cookie: session.cookie, .accept: "text/html"])
            #expect(html.status == .notAcceptable)
            #expect(html.headers[.contentType] == "application/problem+json")
            let anything = try await api.request(.get, "/api/v1/me", headers: [.cookie: session.cookie, .accept: "text/html, */*;q=0.1"])
            #expect(anything.status == .ok)

            var headers = session.unsafeHeaders
            headers[.contentType] = "text/plain"
            let text = try await api.request(.patch, "/api/v1/me", headers: headers, json: #"{"locale":"en"}"#)
            #expect(text.status == .unsupportedMediaType)
            #expect(text.headers[.contentType] == "application/problem+json")

            let large = try await api.request(
                .patch,
                "/api/v1/me",
                headers: session.unsafeHeaders,
                json: #"{"email": "\#(String(repeating: "a", count: 20_000))"}"#
            )
            #expect(large.status == .contentTooLarge)
            let invalid = try await api.request(.patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"locale": "#)
            #expect(invalid.status == .badRequest)
            #expect(try APIHarness.object(invalid)["code"] == .string("invalid-json"))
        }
    }

    @Test("a trailing slash is never a redirect")
    func trailingSlash() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            let response = try await api.request(.get, "/api/v1/me/", headers: session.headers)
            #expect(response.status.code < 300 || response.status.code >= 400)
            #expect(response.headers[.location] == nil)
        }
    }

    @Test("concurrent reads each have their own audit record, committed before they are answered")
    func concurrentReadsAreEachRecorded() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            let traces = (0..<40).map { String(format: "%032x", 0xabc000 + $0) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for trace in traces {
                    group.addTask {
                        let response = try await api.request(
                            .get,
                            "/api/v1/me",
                            headers: [.cookie: session.cookie, .traceparent: "00-\(trace)-00f067aa0ba902b7-01"]
                        )
                        #expect(response.status == .ok)
                        // Answered, so its record is committed: visible to another connection right now.
                        let rows = try await api.database.client.query(
                            "SELECT count(*) FROM audit_log WHERE activity = 'resident.profile.read' AND trace_id = \(trace)")
                        #expect(try await rows.decode(Int.self).reduce(0) { $0 + $1 } == 1)
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("a traceparent's trace id is used for the request's records")
    func traceparent() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
            let response = try await api.request(
                .get,
                "/api/v1/me",
                headers: [.cookie: session.cookie, .traceparent: "00-\(trace)-00f067aa0ba902b7-01"]
            )
            #expect(response.status == .ok)
            let rows = try await api.database.client.query("SELECT trace_id FROM audit_log WHERE activity = 'resident.profile.read'")
            #expect(try await rows.decode(String.self).reduce(into: []) { $0.append($1) } == [trace])
        }
    }
}
