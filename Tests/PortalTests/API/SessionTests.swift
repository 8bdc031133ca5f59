import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// Sessions, CSRF, bearer tokens and the development login.
@Suite("Sessions and tokens")
struct SessionTests {
    @Test("logout ends the session on the server; it needs the CSRF token")
    func logout() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            let forged = try await api.request(.post, "/auth/logout", headers: session.headers)
            #expect(forged.status == .forbidden)
            #expect(try APIHarness.object(forged)["code"] == .string("csrf"))
            #expect(!api.log.lines(containing: "portal.security.event=csrf-refused").isEmpty)
            #expect(try await api.request(.get, "/api/v1/me", headers: session.headers).status == .ok)

            let logout = try await api.request(.post, "/auth/logout", headers: session.unsafeHeaders)
            #expect(logout.status == .noContent)
            #expect(APIHarness.cookies(logout)[IdentityServices.sessionCookie]?.attributes.contains("Max-Age=0") == true)
            #expect(try await api.request(.get, "/api/v1/me", headers: session.headers).status == .unauthorized)
            let activities = try await api.database.client.query("SELECT activity FROM audit_log ORDER BY id")
            #expect(
                try await activities.decode(String.self).reduce(into: []) { $0.append($1) } == [
                    "resident.login", "resident.profile.read", "resident.logout",
                ])
        }
    }

    @Test("a session idle for longer than the idle timeout, or past its absolute end, no longer works")
    func timeouts() async throws {
        try await APIHarness.with { api async throws in
            let idle = try await api.devLogin()
            let absolute = try await api.devLogin(bsn: "111222333")
            // Fifteen minutes and a second of silence, without waiting for them.
            try await api.database.client.query(
                "UPDATE sessions SET last_seen_at = now() - interval '15 minutes 1 second' WHERE token_hash = \(Self.hash(idle))"
            )
            try await api.database.client.query(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = \(Self.hash(absolute))"
            )
            #expect(try await api.request(.get, "/api/v1/me", headers: idle.headers).status == .unauthorized)
            #expect(try await api.request(.get, "/api/v1/me", headers: absolute.headers).status == .unauthorized)
            #expect(api.log.lines(containing: "portal.security.event=session-refused").count == 2)

            // Using a session moves its idle deadline; the pruner removes the expired ones.
            let active = try await api.devLogin(bsn: "999993653")
            try await api.database.client.query(
                "UPDATE sessions SET last_seen_at = now() - interval '14 minutes' WHERE token_hash = \(Self.hash(active))"
            )
            #expect(try await api.request(.get, "/api/v1/me", headers: active.headers).status == .ok)
            #expect(try await api.identity.sessions.prune(client: api.database.client, logger: api.database.logger) == 2)

            // A session used within the last minute is not written again.
            try await api.database.client.query(
                "UPDATE sessions SET last_seen_at = now() - interval '30 seconds' WHERE token_hash = \(Self.hash(active))"
            )
            #expect(try await api.request(.get, "/api/v1/me", headers: active.headers).status == .ok)
            let age = try await api.database.client.query(
                "SELECT extract(epoch FROM now() - last_seen_at)::float8 FROM sessions WHERE token_hash = \(Self.hash(active))"
            )
            #expect(try await age.decode(Double.self).reduce(0, +) >= 29)
            #expect(try await api.request(.get, "/api/v1/me", headers: active.headers).status == .ok)
        }
    }

    static func hash(_ session: APIHarness.Session) -> Data {
        SecretToken.hash(String(session.cookie.split(separator: "=", maxSplits: 1)[1]))
    }

    @Test("a broker access token works as a bearer token; a wrong one, or one in the query string, does not")
    func bearerTokens() async throws {
        try await APIHarness.with { api async throws in
            let broker = try #require(api.broker)
            let token = try await broker.accessToken(["kvk": .string("12345678"), "bsn": .null])
            let me = try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(token)"])
            #expect(me.status == .ok)
            let body = try APIHarness.object(me)
            #expect(body["subject"] == .object(["type": .string("kvk"), "number": .string("12345678")]))
            #expect(body["session"] == nil || body["session"] == .null)
            // Not a browser session: no CSRF token needed for a state-changing request.
            let patch = try await api.request(.patch, "/api/v1/me", headers: [.authorization: "Bearer \(token)"], json: #"{"locale":"en"}"#)
            #expect(patch.status == .ok)

            for wrong in [
                try await broker.accessToken(["aud": .string("someone-else")]),
                try await broker.accessToken(["exp": .number(Date().timeIntervalSince1970 - 120)]),
                try await broker.accessToken(signing: .tamperedSignature),
                try await broker.accessToken(signing: .algNone),
                // An ID token (it carries a nonce) is not a bearer credential.
                try await broker.accessToken(["nonce": .string("n")]),
            ] {
                #expect(try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(wrong)"]).status == .unauthorized)
            }
            #expect(api.log.lines(containing: "portal.security.event=bearer-refused").count == 5)
            #expect(!api.log.lines(containing: "an ID token is not accepted as a bearer token").isEmpty)

            // The first requests of a new subject, all at once: each finds the one resident row.
            let newcomer = try await broker.accessToken(["bsn": .string("111222333")])
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<8 {
                    group.addTask { try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(newcomer)"]).status }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: .ok, count: 8))

            let inQuery = try await api.request(.get, "/api/v1/me?access_token=\(token)")
            #expect(inQuery.status == .badRequest)
            #expect(try APIHarness.object(inQuery)["code"] == .string("credential-in-query"))
        }
    }

    @Test("the development login validates the number like a real login, and lists every field error")
    func devLogin() async throws {
        try await APIHarness.with { api async throws in
            let bad = try await api.request(.post, "/auth/dev-login", json: #"{"bsn": "123456789", "returnTo": "//evil", "extra": 1}"#)
            #expect(bad.status == .badRequest)
            #expect(try APIHarness.invalidParams(bad) == ["bsn", "extra", "returnTo"])

            let both = try await api.request(.post, "/auth/dev-login", json: #"{"bsn": "999993653", "kvk": "12345678"}"#)
            #expect(try APIHarness.invalidParams(both) == ["kvk"])
            let neither = try await api.request(.post, "/auth/dev-login", json: "{}")
            #expect(try APIHarness.invalidParams(neither) == ["bsn"])

            let form = try await api.request(
                .post,
                "/auth/dev-login",
                headers: [.contentType: "application/x-www-form-urlencoded"],
                json: "bsn=999993653&returnTo=%2Fzaken"
            )
            #expect(form.status == .seeOther)
            #expect(form.headers[.location] == "/zaken")
            #expect(APIHarness.cookies(form)[IdentityServices.sessionCookie] != nil)

            let page = try await api.request(.get, "/auth/dev-login")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
        }
    }

    @Test("with PORTAL_DEV_LOGIN off, the development login does not exist")
    func devLoginOff() async throws {
        var options = APIHarness.Options()
        options.devLogin = false
        try await APIHarness.with(options) { api async throws in
            let response = try await api.request(.post, "/auth/dev-login", json: #"{"bsn": "999993653"}"#)
            #expect(response.status == .notFound)
            #expect(try await api.request(.get, "/auth/dev-login").status == .notFound)
            let sessions = try await api.database.client.query("SELECT count(*)::bigint FROM sessions")
            #expect(try await sessions.decode(Int.self).reduce(0, +) == 0)
        }
    }

    @Test("settings: PATCH /api/v1/me lists every field error, and saves valid changes with an audit record")
    func settings() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            let bad = try await api.request(
                .patch,
                "/api/v1/me",
                headers: session.unsafeHeaders,
                json: #"{"locale": "de", "email": "not-an-address", "bsn": "999993653"}"#
            )
            #expect(bad.status == .badRequest)
            #expect(try APIHarness.invalidParams(bad) == ["bsn", "email", "locale"])
            #expect(bad.headers[.contentType] == "application/problem+json")

            // Lengths count code points, as PostgreSQL does; control characters are refused: a 400, never a 500.
            let combining = String(repeating: "e\u{301}", count: 200) + "@example.nl"
            let long = try await api.request(.patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"email": "\#(combining)"}"#)
            #expect(try APIHarness.invalidParams(long) == ["email"])
            let nul = try await api.request(
                .patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"email": "a\u0000b@example.nl"}"#)
            #expect(try APIHarness.invalidParams(nul) == ["email"])

            let good = try await api.request(
                .patch,
                "/api/v1/me",
                headers: session.unsafeHeaders,
                json: #"{"locale": "en", "email": "inwoner@example.nl"}"#
            )
            #expect(good.status == .ok)
            // A new address waits for its code: it receives no mail until then.
            #expect(try APIHarness.object(good)["email"] == nil)
            #expect(try APIHarness.object(good)["pendingEmail"] == .string("inwoner@example.nl"))
            let codes = try await api.database.client.query("SELECT payload->>'code' FROM jobs WHERE kind = 'mail.verification'")
            let code = try #require(try await codes.decode(String.self).first { _ in true })

            // A wrong code counts down; the right one makes the address the resident's.
            let wrong = String(format: "%06d", (Int(code)! + 1) % 1_000_000)
            let refused = try await api.request(
                .post, "/api/v1/me/email-verification", headers: session.unsafeHeaders, json: #"{"code": "\#(wrong)"}"#)
            #expect(try APIHarness.invalidParams(refused) == ["code"])
            #expect(String(buffer: refused.body).contains("4 tries left"))
            let verified = try await api.request(
                .post, "/api/v1/me/email-verification", headers: session.unsafeHeaders, json: #"{"code": "\#(code)"}"#)
            #expect(verified.status == .ok)
            #expect(try APIHarness.object(verified)["email"] == .string("inwoner@example.nl"))
            #expect(try APIHarness.object(verified)["pendingEmail"] == nil)
            let again = try await api.request(
                .post, "/api/v1/me/email-verification", headers: session.unsafeHeaders, json: #"{"code": "\#(code)"}"#)
            #expect(again.status == .conflict)

            let cleared = try await api.request(.patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"email": null}"#)
            #expect(try APIHarness.object(cleared)["email"] == nil)
            #expect(try APIHarness.object(cleared)["locale"] == .string("en"))
            let updates = try await api.database.client.query(
                "SELECT count(*)::bigint FROM audit_log WHERE activity = 'resident.profile.update'")
            #expect(try await updates.decode(Int.self).reduce(0, +) == 2)
        }
    }
}

@Suite("E-mail verification")
struct EmailVerificationTests {
    @Test("a code survives five wrong tries, then stops working; a new code at most once a minute")
    func guessing() async throws {
        try await APIHarness.with { api async throws in
            let session = try await api.devLogin()
            _ = try await api.request(.patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"email": "a@example.nl"}"#)
            let codes = try await api.database.client.query("SELECT payload->>'code' FROM jobs WHERE kind = 'mail.verification'")
            let code = try #require(try await codes.decode(String.self).first { _ in true })
            let wrong = String(format: "%06d", (Int(code)! + 1) % 1_000_000)
            var statuses: [Int] = []
            for _ in 0..<5 {
                let response = try await api.request(
                    .post, "/api/v1/me/email-verification", headers: session.unsafeHeaders, json: #"{"code": "\#(wrong)"}"#)
                statuses.append(response.status.code)
            }
            // Four wrong tries say how many are left; the fifth uses the code up, so even the right code is refused.
            #expect(statuses == [400, 400, 400, 400, 409])
            let late = try await api.request(
                .post, "/api/v1/me/email-verification", headers: session.unsafeHeaders, json: #"{"code": "\#(code)"}"#)
            #expect(late.status == .conflict)
            let missing = try await api.request(.post, "/api/v1/me/email-verification", headers: session.unsafeHeaders, json: #"{}"#)
            #expect(try APIHarness.invalidParams(missing) == ["code"])

            // A new code at most once a minute: each is a mail to an address someone typed.
            let soon = try await api.request(.patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"email": "b@example.nl"}"#)
            #expect(soon.status == .tooManyRequests && soon.headers[.retryAfter] != nil)
            #expect(try await api.database.scalar("SELECT pending_email FROM residents", as: String.self) == "a@example.nl")
            try await api.database.client.query("UPDATE residents SET email_code_sent_at = now() - interval '61 seconds'")
            let later = try await api.request(.patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"email": "b@example.nl"}"#)
            #expect(later.status == .ok)
            let count = try await api.database.scalar("SELECT count(*) FROM jobs WHERE kind = 'mail.verification'", as: Int.self)
            #expect(count == 2)
            let stored = try await api.database.scalar("SELECT pending_email FROM residents", as: String.self)
            #expect(stored == "b@example.nl")
        }
    }
}
