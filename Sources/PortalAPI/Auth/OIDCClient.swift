import AsyncHTTPClient
import Crypto
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import Shared

/// Why a login or a bearer token was refused. The descriptions are safe to show and to log: they never contain a
/// token, a code or a claim's value.
enum OIDCError: Error, Equatable, CustomStringConvertible {
    case brokerUnavailable(String)
    case tokenRequestRefused(status: Int)
    case malformedToken
    case unsupportedAlgorithm(String)
    case missingKeyID
    case unknownKey
    case badSignature
    case wrongIssuer
    case wrongAudience
    case expired
    case issuedInFuture
    case notYetValid
    case wrongNonce
    case idTokenAsBearer
    case insufficientAssurance
    case missingSubjectClaim
    case invalidSubject(SubjectError)

    var description: String {
        switch self {
        case .brokerUnavailable(let what): "the login broker did not answer properly (\(what))"
        case .tokenRequestRefused(let status): "the broker refused the code exchange (HTTP \(status))"
        case .malformedToken: "the token is not a well-formed signed JWT"
        case .unsupportedAlgorithm(let alg): "the token's signature algorithm is not accepted (\(alg))"
        case .missingKeyID: "the token names no key id"
        case .unknownKey: "the token is signed with a key the broker does not publish"
        case .badSignature: "the token's signature is not valid"
        case .wrongIssuer: "the token was issued by another issuer"
        case .wrongAudience: "the token is meant for another audience"
        case .expired: "the token has expired"
        case .issuedInFuture: "the token is issued in the future"
        case .notYetValid: "the token is not valid yet"
        case .wrongNonce: "the ID token's nonce does not match this login"
        case .idTokenAsBearer: "an ID token is not accepted as a bearer token"
        case .insufficientAssurance: "the login's assurance level (acr) is below the minimum"
        case .missingSubjectClaim: "the token carries no BSN or KvK number"
        case .invalidSubject(let error): "the token's subject number is invalid: \(error)"
        }
    }
}

/// Who a verified token says is logging in.
struct VerifiedIdentity: Sendable {
    let subject: Subject
    let acr: String?
}

/// The relying-party side of the OpenID Connect authorization code flow with PKCE, and the verification of the
/// broker's ID tokens and access tokens against its published keys.
///
/// Discovery and keys are fetched on first use and cached; the keys are fetched again when a token names a key id
/// we do not know (the broker rotated its keys), at most once per `keyRefreshInterval`.
actor OIDCClient {
    struct Discovery: Decodable, Sendable {
        let issuer: String
        let authorizationEndpoint: String
        let tokenEndpoint: String
        let jwksURI: String

        enum CodingKeys: String, CodingKey {
            case issuer
            case authorizationEndpoint = "authorization_endpoint"
            case tokenEndpoint = "token_endpoint"
            case jwksURI = "jwks_uri"
        }
    }

    struct TokenResponse: Decodable, Sendable {
        let idToken: String

        enum CodingKeys: String, CodingKey {
            case idToken = "id_token"
        }
    }

    /// The algorithms a broker may sign with. Never `none`, never a symmetric one (the "key" would be public).
    static let acceptedAlgorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    static let leeway: TimeInterval = 60

    let settings: OIDCSettings
    private let http: HTTPClient
    private let logger: Logger
    private var discovery: Discovery?
    private var keys = JWTKeyCollection()
    /// The usable key ids and the one algorithm each may be used with.
    private var keyIDs: [String: String] = [:]
    private var keysFetchedAt: ContinuousClock.Instant?

    init(settings: OIDCSettings, http: HTTPClient, logger: Logger) {
        self.settings = settings
        self.http = http
        self.logger = logger
    }

    // MARK: The authorization code flow

    /// The broker's authorization URL for a new login.
    func authorizationURL(state: String, nonce: String, codeVerifier: String) async throws -> String {
        let discovery = try await self.discovered()
        var items: [(String, String)] = [
            ("response_type", "code"),
            ("client_id", self.settings.clientID),
            ("redirect_uri", self.settings.redirectURI),
            ("scope", self.settings.scopes),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", Self.codeChallenge(for: codeVerifier)),
            ("code_challenge_method", "S256"),
        ]
        if let minimum = self.settings.minimumACR { items.append(("acr_values", minimum)) }
        let separator = discovery.authorizationEndpoint.contains("?") ? "&" : "?"
        return discovery.authorizationEndpoint + separator + FormEncoding.encode(items)
    }

    /// PKCE S256: base64url(SHA-256(verifier)).
    static func codeChallenge(for verifier: String) -> String {
        SecretToken.base64URL(SHA256.hash(data: Data(verifier.utf8)))
    }

    /// Exchanges the authorization code for tokens and verifies the ID token.
    func completeLogin(code: String, codeVerifier: String, nonce: String) async throws -> VerifiedIdentity {
        let discovery = try await self.discovered()
        var request = HTTPClientRequest(url: discovery.tokenEndpoint)
        request.method = .POST
        let credentials = "\(FormEncoding.escape(self.settings.clientID)):\(FormEncoding.escape(self.settings.clientSecret))"
        request.headers.add(name: "Authorization", value: "Basic \(Data(credentials.utf8).base64EncodedString())")
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let form = FormEncoding.encode([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.redirectURI),
            ("code_verifier", codeVerifier),
        ])
        request.body = .bytes(ByteBuffer(string: form))
        let (status, body) = try await self.send(request, what: "token endpoint")
        guard status == .ok else { throw OIDCError.tokenRequestRefused(status: Int(status.code)) }
        guard let tokens = try? JSONDecoder().decode(TokenResponse.self, from: body) else {
            throw OIDCError.brokerUnavailable("token response without an id_token")
        }
        return try await self.verify(tokens.idToken, audience: self.settings.clientID, nonce: nonce)
    }

    /// Verifies an access token presented as `Authorization: Bearer`: same keys and checks, the configured audience,
    /// no nonce.
    func verifyAccessToken(_ token: String) async throws -> VerifiedIdentity {
        try await self.verify(token, audience: self.settings.audience, nonce: nil)
    }

    // MARK: Token verification

    private struct Claims: JWTPayload {
        let values: [String: JSONValue]

        init(from decoder: any Decoder) throws {
            self.values = try decoder.singleValueContainer().decode([String: JSONValue].self)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(self.values)
        }

        // The claims are checked by OIDCClient.check, which knows the expected nonce and audience.
        func verify(using algorithm: some JWTAlgorithm) throws {}
    }

    private func verify(_ token: String, audience: String, nonce: String?) async throws -> VerifiedIdentity {
        let header = try Self.header(of: token)
        guard let alg = header["alg"]?.stringValue, Self.acceptedAlgorithms.contains(alg) else {
            throw OIDCError.unsupportedAlgorithm(header["alg"]?.stringValue ?? "none given")
        }
        guard let kid = header["kid"]?.stringValue, !kid.isEmpty else { throw OIDCError.missingKeyID }
        try await self.ensureKey(kid)
        guard self.keyIDs[kid] == alg else { throw OIDCError.unsupportedAlgorithm(alg) }
        let claims: Claims
        do {
            claims = try await self.keys.verify(token, as: Claims.self)
        } catch {
            throw OIDCError.badSignature
        }
        return try self.check(claims.values, audience: audience, nonce: nonce)
    }

    /// The registered claims, then the subject.
    private func check(_ claims: [String: JSONValue], audience: String, nonce: String?) throws -> VerifiedIdentity {
        guard claims["iss"]?.stringValue == self.settings.issuer else { throw OIDCError.wrongIssuer }
        let audiences: [String] =
            switch claims["aud"] {
            case .string(let value)?: [value]
            case .array(let values)?: values.compactMap(\.stringValue)
            default: []
            }
        guard audiences.contains(audience) else { throw OIDCError.wrongAudience }
        if nonce != nil, audiences.count > 1, claims["azp"]?.stringValue != self.settings.clientID {
            throw OIDCError.wrongAudience
        }
        let now = Date().timeIntervalSince1970
        guard let exp = claims["exp"]?.numberValue, let iat = claims["iat"]?.numberValue else { throw OIDCError.malformedToken }
        guard exp > now - Self.leeway else { throw OIDCError.expired }
        guard iat <= now + Self.leeway else { throw OIDCError.issuedInFuture }
        if let nbf = claims["nbf"]?.numberValue, nbf > now + Self.leeway { throw OIDCError.notYetValid }
        if let nonce {
            guard let claimed = claims["nonce"]?.stringValue, SecretToken.constantTimeEquals(claimed, nonce) else {
                throw OIDCError.wrongNonce
            }
        } else if claims["nonce"] != nil || claims["at_hash"] != nil {
            // Every ID token issued to us carries the nonce we sent; an ID token is not a bearer credential, even
            // when the audience for access tokens is our client id.
            throw OIDCError.idTokenAsBearer
        }
        let acr = claims["acr"]?.stringValue
        if let minimum = self.settings.minimumACR {
            guard let acr, let level = self.settings.acrLevels.firstIndex(of: acr),
                let required = self.settings.acrLevels.firstIndex(of: minimum), level >= required
            else { throw OIDCError.insufficientAssurance }
        }
        let subject: Subject
        do {
            if let bsn = claims[self.settings.bsnClaim]?.stringValue {
                subject = try Subject(kind: .bsn, validating: bsn)
            } else if let kvk = claims[self.settings.kvkClaim]?.stringValue {
                subject = try Subject(kind: .kvk, validating: kvk)
            } else {
                throw OIDCError.missingSubjectClaim
            }
        } catch let error as SubjectError {
            throw OIDCError.invalidSubject(error)
        }
        return VerifiedIdentity(subject: subject, acr: acr)
    }

    /// The JOSE header, decoded without trusting anything in it yet.
    static func header(of token: String) throws -> [String: JSONValue] {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = SecretToken.base64URLDecode(parts[0]),
            case .object(let header)? = try? JSONDecoder().decode(JSONValue.self, from: data)
        else { throw OIDCError.malformedToken }
        return header
    }

    // MARK: Discovery and keys

    private func discovered() async throws -> Discovery {
        if let discovery = self.discovery { return discovery }
        let url = self.settings.issuer.hasSuffix("/") ? self.settings.issuer : self.settings.issuer + "/"
        let (status, body) = try await self.send(HTTPClientRequest(url: url + ".well-known/openid-configuration"), what: "discovery")
        guard status == .ok, let discovery = try? JSONDecoder().decode(Discovery.self, from: body) else {
            throw OIDCError.brokerUnavailable("discovery document")
        }
        guard discovery.issuer == self.settings.issuer else {
            throw OIDCError.brokerUnavailable("the discovery document names another issuer")
        }
        self.discovery = discovery
        return discovery
    }

    /// Makes sure the key `kid` is loaded, fetching the key set again if it is not (and we did not just do so).
    ///
    /// Concurrent callers share one fetch, and the interval counts from when a fetch started, also a failed one: a
    /// burst of tokens with made-up key ids, or a broker that is down, costs one request per interval.
    private func ensureKey(_ kid: String) async throws {
        if self.keyIDs.keys.contains(kid) { return }
        if let refresh = self.refresh {
            try await refresh.value
        } else {
            if let fetchedAt = self.keysFetchedAt, fetchedAt.duration(to: .now) < self.settings.keyRefreshInterval {
                throw OIDCError.unknownKey
            }
            self.keysFetchedAt = .now
            // An unstructured task, so that callers arriving during the fetch can await the same one; it only does
            // this actor's work, is bounded by the request timeout, and is awaited by the caller that started it.
            let refresh = Task { try await self.fetchKeys() }
            self.refresh = refresh
            defer { self.refresh = nil }
            try await refresh.value
        }
        guard self.keyIDs.keys.contains(kid) else { throw OIDCError.unknownKey }
    }

    private var refresh: Task<Void, any Error>?

    /// Fetches the key set and replaces ours. Each key is read on its own: one we cannot use (an encryption key, an
    /// unsupported type) is skipped, not fatal. A key without `alg` gets the one its type implies (RS256 for RSA,
    /// the curve's for EC), so a token's header can never choose how a key is used.
    private func fetchKeys() async throws {
        let discovery = try await self.discovered()
        let (status, body) = try await self.send(HTTPClientRequest(url: discovery.jwksURI), what: "key set")
        guard status == .ok, case .object(let set)? = try? JSONDecoder().decode(JSONValue.self, from: body),
            case .array(let entries)? = set["keys"]
        else {
            throw OIDCError.brokerUnavailable("key set")
        }
        let collection = JWTKeyCollection()
        var keyIDs: [String: String] = [:]
        for case .object(var fields) in entries {
            guard let id = fields["kid"]?.stringValue, fields["use"]?.stringValue ?? "sig" == "sig" else { continue }
            let algorithm = fields["alg"]?.stringValue ?? Self.impliedAlgorithm(fields)
            guard let algorithm, Self.acceptedAlgorithms.contains(algorithm) else { continue }
            fields["alg"] = .string(algorithm)
            do {
                let jwk = try JSONDecoder().decode(JWK.self, from: try JSONEncoder().encode(JSONValue.object(fields)))
                try await collection.add(jwk: jwk, isDefault: false)
                keyIDs[id] = algorithm
            } catch {
                self.logger.warning("ignoring a key the broker publishes", metadata: ["portal.oidc.kid": "\(id)", "error": "\(error)"])
            }
        }
        self.keys = collection
        self.keyIDs = keyIDs
        self.logger.info("fetched the broker's keys", metadata: ["portal.oidc.keys": "\(keyIDs.count)"])
    }

    /// The algorithm a key without `alg` is used with.
    static func impliedAlgorithm(_ key: [String: JSONValue]) -> String? {
        switch key["kty"]?.stringValue {
        case "RSA": "RS256"
        case "EC": ["P-256": "ES256", "P-384": "ES384", "P-521": "ES512"][key["crv"]?.stringValue ?? ""]
        default: nil
        }
    }

    private func send(_ request: HTTPClientRequest, what: String) async throws -> (HTTPResponseStatus, Data) {
        do {
            let response = try await self.http.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1024 * 1024)
            return (response.status, Data(body.readableBytesView))
        } catch let error as OIDCError {
            throw error
        } catch {
            self.logger.warning("broker request failed", metadata: ["portal.oidc.request": "\(what)", "error": "\(error)"])
            throw OIDCError.brokerUnavailable(what)
        }
    }
}

/// `application/x-www-form-urlencoded`, as OAuth 2.0 uses it for query strings and token requests.
enum FormEncoding {
    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: self.unreserved) ?? ""
    }

    static func encode(_ items: [(String, String)]) -> String {
        items.map { "\(self.escape($0.0))=\(self.escape($0.1))" }.joined(separator: "&")
    }
}
