import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import JWTKit
import Logging
import NIOCore
import Synchronization

@testable import PortalAPI
@testable import Shared

/// A small OpenID Connect broker, as DigiD and eHerkenning reach municipal portals: discovery, a key set with key
/// rotation, an authorization endpoint that logs the "resident" in at once, and a token endpoint that checks the
/// client's secret, the redirect URI and the PKCE verifier before it issues an ID token.
///
/// A test sets ``scenario`` to make the next ID token wrong in one way (a claim changed or removed, a tampered
/// signature, `alg: none`, a key the broker does not publish) and checks that the portal refuses it.
final class BrokerSimulator: Sendable {
    enum Signing: Sendable {
        case valid
        case tamperedSignature
        case algNone
        case unpublishedKey
    }

    /// How the next ID token is made.
    struct Scenario: Sendable {
        /// Claims to add or replace; `.null` removes a claim.
        var claims: [String: JSONValue] = [:]
        var signing: Signing = .valid
    }

    let clientID = "portal-test-client"
    let clientSecret = "test-client-secret"
    let port: Int
    var issuer: String { "http://127.0.0.1:\(self.port)" }

    private struct Issued {
        let redirectURI: String
        let codeChallenge: String
        let nonce: String
        let scenario: Scenario
    }

    private struct State {
        var signingKey: (kid: String, key: ES256PrivateKey)
        var published: [(kid: String, key: ES256PrivateKey)]
        var codes: [String: Issued] = [:]
        var scenario = Scenario()
        var keySetFetches = 0
        var keySetFails = false
        var omitAlgorithms = false
        var tokenRequests = 0
        var lastAuthorizeQuery: [String: String] = [:]
    }

    private let state: Mutex<State>
    private let unpublished = ES256PrivateKey()

    private init(port: Int) {
        self.port = port
        let first = (kid: "key-1", key: ES256PrivateKey())
        self.state = Mutex(State(signingKey: first, published: [first]))
    }

    /// Runs a broker on a free loopback port for the duration of `body`.
    static func with<T: Sendable>(logger: Logger, _ body: (BrokerSimulator) async throws -> T) async throws -> T {
        let holder = Mutex<BrokerSimulator?>(nil)
        let router = Router()
        router.get("/.well-known/openid-configuration") { _, _ in try holder.withLock { $0! }.discovery() }
        router.get("/jwks") { _, _ in try holder.withLock { $0! }.keySet() }
        router.get("/authorize") { request, _ in try holder.withLock { $0! }.authorize(request) }
        router.post("/token") { request, _ in try await holder.withLock { $0! }.token(request) }
        return try await withTestServer(router, logger: logger) { port in
            let broker = BrokerSimulator(port: port)
            holder.withLock { $0 = broker }
            return try await body(broker)
        }
    }

    // MARK: Controls

    /// How the next ID token is made; reset after each token request.
    func setScenario(_ scenario: Scenario) { self.state.withLock { $0.scenario = scenario } }

    /// Starts signing with a new key and stops publishing the old one, as a broker does at key rotation.
    func rotateKeys() {
        self.state.withLock { state in
            let next = (kid: "key-\(state.published.count + 1)-\(UUID().uuidString.prefix(4))", key: ES256PrivateKey())
            state.signingKey = next
            state.published = [next]
        }
    }

    /// The key set answers 500 (the broker is down).
    func setKeySetFails(_ fails: Bool) { self.state.withLock { $0.keySetFails = fails } }

    /// Publishes keys without `alg`, as some brokers do.
    func setOmitAlgorithms(_ omit: Bool) { self.state.withLock { $0.omitAlgorithms = omit } }

    /// A token with the current key's id but a header and signature of the caller's choosing.
    func forgedToken(alg: String) -> String {
        let kid = self.state.withLock { $0.signingKey.kid }
        let header = SecretToken.base64URL(Data(#"{"alg":"\#(alg)","kid":"\#(kid)","typ":"JWT"}"#.utf8))
        let payload = SecretToken.base64URL(Data(#"{"iss":"\#(self.issuer)","aud":"\#(self.clientID)","bsn":"999993653"}"#.utf8))
        return header + "." + payload + "." + SecretToken.base64URL((0..<256).map { _ in UInt8.random(in: 0...255) })
    }

    var keySetFetches: Int { self.state.withLock { $0.keySetFetches } }
    var tokenRequests: Int { self.state.withLock { $0.tokenRequests } }
    var lastAuthorizeQuery: [String: String] { self.state.withLock { $0.lastAuthorizeQuery } }

    /// An access token for `Authorization: Bearer`, as the broker would issue to the trusted frontend server.
    func accessToken(_ claims: [String: JSONValue] = [:], signing: Signing = .valid) async throws -> String {
        let now = Date().timeIntervalSince1970
        var all: [String: JSONValue] = [
            "iss": .string(self.issuer), "aud": .string(self.clientID), "sub": .string("pseudonym-\(UUID().uuidString)"),
            "iat": .number(now.rounded()), "exp": .number((now + 300).rounded()), "bsn": .string("999993653"),
        ]
        Self.apply(claims, to: &all)
        return try await self.sign(all, signing: signing)
    }

    // MARK: Endpoints

    private func discovery() throws -> Response {
        try Self.json([
            "issuer": .string(self.issuer),
            "authorization_endpoint": .string(self.issuer + "/authorize"),
            "token_endpoint": .string(self.issuer + "/token"),
            "jwks_uri": .string(self.issuer + "/jwks"),
            "response_types_supported": .array([.string("code")]),
            "code_challenge_methods_supported": .array([.string("S256")]),
            "id_token_signing_alg_values_supported": .array([.string("ES256")]),
        ])
    }

    private func keySet() throws -> Response {
        let (keys, fails, omit) = self.state.withLock { state -> ([(String, ES256PrivateKey)], Bool, Bool) in
            state.keySetFetches += 1
            return (state.published.map { ($0.kid, $0.key) }, state.keySetFails, state.omitAlgorithms)
        }
        if fails { return Response(status: .internalServerError) }
        var jwks: [JSONValue] = keys.map { kid, key in
            let parameters = key.publicKey.parameters!
            var fields: [String: JSONValue] = [
                "kty": .string("EC"), "crv": .string("P-256"), "use": .string("sig"), "alg": .string("ES256"),
                "kid": .string(kid), "x": .string(parameters.x), "y": .string(parameters.y),
            ]
            if omit { fields["alg"] = nil }
            return .object(fields)
        }
        // Keys a relying party cannot use for signatures, as real key sets have: a symmetric key and an encryption
        // key. The portal must skip them, not fail on them.
        jwks.append(.object(["kty": .string("oct"), "kid": .string("symmetric"), "k": .string("c2VjcmV0")]))
        jwks.append(
            .object([
                "kty": .string("EC"), "crv": .string("P-256"), "use": .string("enc"), "kid": .string("encryption"), "x": .string("AA"),
                "y": .string("AA"),
            ]))
        return try Self.json(["keys": .array(jwks)])
    }

    private func authorize(_ request: Request) throws -> Response {
        var query: [String: String] = [:]
        for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
        self.state.withLock { $0.lastAuthorizeQuery = query }
        guard query["response_type"] == "code", query["client_id"] == self.clientID, query["code_challenge_method"] == "S256",
            let redirectURI = query["redirect_uri"], let state = query["state"], let nonce = query["nonce"],
            let challenge = query["code_challenge"]
        else {
            return Response(status: .badRequest)
        }
        let code = UUID().uuidString
        self.state.withLock {
            $0.codes[code] = Issued(redirectURI: redirectURI, codeChallenge: challenge, nonce: nonce, scenario: $0.scenario)
        }
        let location = redirectURI + "?code=\(code)&state=\(FormEncoding.escape(state))"
        return Response(status: .found, headers: [.location: location])
    }

    private func token(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 * 1024)
        var form: [String: String] = [:]
        for (name, value) in URI("/?" + String(buffer: body)).queryParameters { form[String(name)] = String(value) }
        let expected = "Basic " + Data("\(self.clientID):\(self.clientSecret)".utf8).base64EncodedString()
        guard request.headers[.authorization] == expected else { return try Self.oauthError(.unauthorized, "invalid_client") }
        let issued = self.state.withLock { state -> Issued? in
            state.tokenRequests += 1
            defer { state.scenario = Scenario() }
            // A code works once.
            return form["code"].flatMap { state.codes.removeValue(forKey: $0) }
        }
        guard let issued, form["grant_type"] == "authorization_code", form["redirect_uri"] == issued.redirectURI else {
            return try Self.oauthError(.badRequest, "invalid_grant")
        }
        guard let verifier = form["code_verifier"], OIDCClient.codeChallenge(for: verifier) == issued.codeChallenge else {
            return try Self.oauthError(.badRequest, "invalid_grant")
        }
        let now = Date().timeIntervalSince1970
        var claims: [String: JSONValue] = [
            "iss": .string(self.issuer), "aud": .string(self.clientID), "sub": .string("pseudonym-\(UUID().uuidString)"),
            "iat": .number(now.rounded()), "exp": .number((now + 300).rounded()), "nonce": .string(issued.nonce),
            "acr": .string(OIDCSettings.digidLevels[1]), "bsn": .string("999993653"),
        ]
        Self.apply(issued.scenario.claims, to: &claims)
        let idToken = try await self.sign(claims, signing: issued.scenario.signing)
        return try Self.json([
            "id_token": .string(idToken), "access_token": .string(try await self.accessToken()),
            "token_type": .string("Bearer"), "expires_in": .number(300),
        ])
    }

    // MARK: Signing

    private struct Claims: JWTPayload {
        let values: [String: JSONValue]
        init(_ values: [String: JSONValue]) { self.values = values }
        init(from decoder: any Decoder) throws { self.values = try decoder.singleValueContainer().decode([String: JSONValue].self) }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(self.values)
        }
        func verify(using algorithm: some JWTAlgorithm) throws {}
    }

    private func sign(_ claims: [String: JSONValue], signing: Signing) async throws -> String {
        let (kid, key) = self.state.withLock { ($0.signingKey.kid, $0.signingKey.key) }
        switch signing {
        case .valid, .tamperedSignature:
            let keys = JWTKeyCollection()
            await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
            let token = try await keys.sign(Claims(claims), kid: JWKIdentifier(string: kid))
            guard signing == .tamperedSignature else { return token }
            // Change the payload after signing: the signature no longer matches (a resident edits their BSN).
            var parts = token.split(separator: ".").map(String.init)
            var tampered = claims
            tampered["bsn"] = .string("111222333")
            parts[1] = SecretToken.base64URL(try JSONEncoder().encode(JSONValue.object(tampered)))
            return parts.joined(separator: ".")
        case .algNone:
            let header = SecretToken.base64URL(Data(#"{"alg":"none","kid":"\#(kid)","typ":"JWT"}"#.utf8))
            return header + "." + SecretToken.base64URL(try JSONEncoder().encode(JSONValue.object(claims))) + "."
        case .unpublishedKey:
            let keys = JWTKeyCollection()
            await keys.add(ecdsa: self.unpublished, kid: "rogue-key")
            return try await keys.sign(Claims(claims), kid: "rogue-key")
        }
    }

    private static func apply(_ overrides: [String: JSONValue], to claims: inout [String: JSONValue]) {
        for (name, value) in overrides {
            if value == .null { claims.removeValue(forKey: name) } else { claims[name] = value }
        }
    }

    private static func json(_ object: [String: JSONValue]) throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(JSONValue.object(object))))
        )
    }

    private static func oauthError(_ status: HTTPResponse.Status, _ error: String) throws -> Response {
        var response = try self.json(["error": .string(error)])
        response.status = status
        return response
    }
}
