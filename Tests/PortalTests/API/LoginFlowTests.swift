import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// The broker login end to end, against the broker simulator: every refusal the issue lists, each with a clear
/// error and a security log line, and the session that a good login starts.
@Suite("Login through the OpenID Connect broker")
struct LoginFlowTests {
    @Test("a good login starts a server-side session, sends the resident back, and is audited")
    func goodLogin() async throws {
        try await APIHarness.with { api async throws in
            let (callback, _, _) = try await api.brokerLogin(returnTo: "/zaken?open=1")
            #expect(callback.status == .seeOther)
            #expect(callback.headers[.location] == "/zaken?open=1")

            // The authorization request used PKCE S256, a state and a nonce, and asked for our redirect URI.
            let query = try #require(api.broker).lastAuthorizeQuery
            #expect(query["code_challenge_method"] == "S256")
            #expect(query["code_challenge"]?.count == 43)
            #expect(query["state"]?.count == 43 && query["nonce"]?.count == 43)
            #expect(query["redirect_uri"] == APIHarness.publicURL + "/auth/callback")

            let cookies = APIHarness.cookies(callback)
            let session = try #require(cookies[IdentityServices.sessionCookie])
            #expect(Set(session.attributes.map { $0.lowercased() }).isSuperset(of: ["secure", "httponly", "samesite=lax", "path=/"]))
            #expect(!session.attributes.contains { $0.lowercased().hasPrefix("domain") })
            #expect(cookies[IdentityServices.loginCookie]?.attributes.contains("Max-Age=0") == true)

            let me = try await api.request(.get, "/api/v1/me", headers: [.cookie: "\(IdentityServices.sessionCookie)=\(session.value)"])
            #expect(me.status == .ok)
            let body = try APIHarness.object(me)
            #expect(body["subject"] == .object(["type": .string("bsn"), "number": .string("******653")]))
            #expect(!String(buffer: me.body).contains("999993653"))

            // Only the hash of the session token is stored, and the login and the read are audited under the keyed
            // hash of the BSN, never the number.
            let stored = try await api.database.client.query(
                "SELECT count(*)::bigint FROM sessions WHERE token_hash = \(SecretToken.hash(session.value))")
            #expect(try await stored.decode(Int.self).reduce(0, +) == 1)
            let expectedHash = SubjectHasher(key: APIHarness.auditKey).hash(try Subject(kind: .bsn, validating: "999993653"))
            let audit = try await api.database.client.query("SELECT activity, subject_hash, trace_id FROM audit_log ORDER BY id")
            var activities: [String] = []
            for try await (activity, hash, traceID) in audit.decode((String, String?, String).self) {
                activities.append(activity)
                #expect(hash == expectedHash)
                #expect(traceID.count == 32)
            }
            #expect(activities == ["resident.login", "resident.profile.read"])
        }
    }

    /// Each way an ID token can be wrong.
    static let refusals: [(String, BrokerSimulator.Scenario, String)] = [
        ("tampered signature", .init(signing: .tamperedSignature), "signature is not valid"),
        ("alg none", .init(signing: .algNone), "algorithm is not accepted (none)"),
        ("a key the broker does not publish", .init(signing: .unpublishedKey), "a key the broker does not publish"),
        ("wrong audience", .init(claims: ["aud": .string("another-client")]), "another audience"),
        ("wrong issuer", .init(claims: ["iss": .string("https://evil.example")]), "another issuer"),
        ("expired", .init(claims: ["exp": .number(Date().timeIntervalSince1970 - 3600)]), "has expired"),
        ("issued in the future", .init(claims: ["iat": .number(Date().timeIntervalSince1970 + 3600)]), "issued in the future"),
        ("wrong nonce", .init(claims: ["nonce": .string("not-the-nonce")]), "nonce does not match"),
        ("invalid BSN", .init(claims: ["bsn": .string("123456789")]), "does not pass the elfproef"),
        ("all-zero BSN", .init(claims: ["bsn": .string("000000000")]), "zeros only"),
        ("missing BSN claim", .init(claims: ["bsn": .null]), "carries no BSN or KvK number"),
    ]

    @Test("a wrong ID token is refused with a clear error and a security log line", arguments: 0..<Self.refusals.count)
    func refusedTokens(_ index: Int) async throws {
        let (name, scenario, reason) = Self.refusals[index]
        try await APIHarness.with { api async throws in
            try #require(api.broker).setScenario(scenario)
            let (callback, _, _) = try await api.brokerLogin()
            #expect(callback.status == .unauthorized, "\(name)")
            let problem = try APIHarness.object(callback)
            #expect(problem["code"] == .string("login-refused"), "\(name)")
            #expect(problem["detail"]?.stringValue?.contains(reason) == true, "\(name): \(problem)")
            #expect(APIHarness.cookies(callback)[IdentityServices.sessionCookie] == nil, "\(name)")
            #expect(api.log.lines(containing: "portal.security.event=login-refused").contains { $0.contains(reason) }, "\(name)")
            let sessions = try await api.database.client.query("SELECT count(*)::bigint FROM sessions")
            #expect(try await sessions.decode(Int.self).reduce(0, +) == 0, "\(name)")
        }
    }

    @Test("an assurance level below the configured minimum is refused")
    func minimumACR() async throws {
        var options = APIHarness.Options()
        options.minimumACR = OIDCSettings.digidLevels[2]
        try await APIHarness.with(options) { api async throws in
            // The broker says "midden"; we require "substantieel".
            let (callback, _, _) = try await api.brokerLogin()
            #expect(callback.status == .unauthorized)
            #expect(try APIHarness.object(callback)["detail"]?.stringValue?.contains("assurance level") == true)
            #expect(try #require(api.broker).lastAuthorizeQuery["acr_values"] == OIDCSettings.digidLevels[2])

            try #require(api.broker).setScenario(.init(claims: ["acr": .string(OIDCSettings.digidLevels[3])]))
            #expect(try await api.brokerLogin().callback.status == .seeOther)
        }
    }

    @Test("a replayed state is refused, and so is a state from another browser")
    func replayedState() async throws {
        try await APIHarness.with { api async throws in
            let (first, loginCookie, callbackURI) = try await api.brokerLogin()
            #expect(first.status == .seeOther)
            let replay = try await api.request(.get, callbackURI, headers: [.cookie: "\(IdentityServices.loginCookie)=\(loginCookie)"])
            #expect(replay.status == .badRequest)
            #expect(try APIHarness.object(replay)["detail"]?.stringValue?.contains("used before") == true)
            #expect(!api.log.lines(containing: "portal.security.event=login-refused").isEmpty)

            // A callback without the login cookie of the browser that started the login (login CSRF).
            let start = try await api.request(.get, "/auth/login")
            let location = try #require(start.headers[.location])
            let state = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "state" }?.value)
            let foreign = try await api.request(.get, "/auth/callback?code=x&state=\(state)")
            #expect(foreign.status == .badRequest)
            #expect(try APIHarness.object(foreign)["detail"]?.stringValue?.contains("does not belong to this browser") == true)
        }
    }

    @Test("after the broker rotates its keys, the new key is fetched on first sight")
    func keyRotation() async throws {
        try await APIHarness.with { api async throws in
            let broker = try #require(api.broker)
            #expect(try await api.brokerLogin().callback.status == .seeOther)
            #expect(try await api.brokerLogin().callback.status == .seeOther)
            #expect(broker.keySetFetches == 1)
            broker.rotateKeys()
            #expect(try await api.brokerLogin().callback.status == .seeOther)
            #expect(broker.keySetFetches == 2)
        }
    }

    @Test("a token cannot choose the algorithm of a key published without one, and a forged header pins nothing")
    func algorithmFromTheKey() async throws {
        try await APIHarness.with { api async throws in
            let broker = try #require(api.broker)
            broker.setOmitAlgorithms(true)
            for alg in ["PS512", "ES384", "RS256", "HS256", "none"] {
                let forged = try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(broker.forgedToken(alg: alg))"])
                #expect(forged.status == .unauthorized, "\(alg)")
            }
            // The real ES256 tokens still work afterwards: nothing was pinned by the forged headers.
            #expect(try await api.brokerLogin().callback.status == .seeOther)
            let token = try await broker.accessToken()
            #expect(try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(token)"]).status == .ok)
        }
    }

    @Test("a broker whose key set is down makes bearer tokens answer 503, not 401")
    func keySetDown() async throws {
        try await APIHarness.with { api async throws in
            let broker = try #require(api.broker)
            broker.rotateKeys()
            broker.setKeySetFails(true)
            let token = try await broker.accessToken()
            let response = try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(token)"])
            #expect(response.status == .serviceUnavailable)
            #expect(api.log.lines(containing: "portal.security.event=bearer-refused").isEmpty)
            broker.setKeySetFails(false)
            #expect(try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(token)"]).status == .ok)
        }
    }

    @Test("returnTo only accepts paths on our own site")
    func noOpenRedirect() async throws {
        try await APIHarness.with { api async throws in
            for target in ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"] {
                let escaped = target.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                let response = try await api.request(.get, "/auth/login?returnTo=\(escaped)")
                #expect(response.status == .badRequest, "\(target)")
                #expect(try APIHarness.invalidParams(response) == ["returnTo"], "\(target)")
            }
        }
    }

    @Test("the resident who cancels at the broker goes back without a session")
    func cancelled() async throws {
        try await APIHarness.with { api async throws in
            let start = try await api.request(.get, "/auth/login?returnTo=/aanvragen")
            let location = try #require(start.headers[.location])
            let state = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "state" }?.value)
            let cookie = try #require(APIHarness.cookies(start)[IdentityServices.loginCookie]).value
            let response = try await api.request(
                .get,
                "/auth/callback?error=access_denied&state=\(state)",
                headers: [.cookie: "\(IdentityServices.loginCookie)=\(cookie)"]
            )
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/aanvragen")
            #expect(APIHarness.cookies(response)[IdentityServices.sessionCookie] == nil)
        }
    }

    @Test("without a broker configured, login answers 503 and bearer tokens are refused")
    func noBroker() async throws {
        var options = APIHarness.Options()
        options.broker = false
        try await APIHarness.with(options) { api async throws in
            #expect(try await api.request(.get, "/auth/login").status == .serviceUnavailable)
            let me = try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer a.b.c"])
            #expect(me.status == .unauthorized)
        }
    }
}
