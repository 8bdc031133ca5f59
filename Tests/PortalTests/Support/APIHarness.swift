import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// The API, built by the same builder as the server, over a test database of its own, with its log captured and,
/// when asked, a broker simulator to log in with.
struct APIHarness: Sendable {
    static let auditKey = "test-audit-key-that-is-long-enough-0123456789"
    static let publicURL = "https://portal.test"

    let client: any TestClientProtocol
    let database: TestDatabase
    let catalog: RouteCatalog
    let identity: IdentityServices
    let broker: BrokerSimulator?
    let log: TestLog

    /// What a test may change about the API's settings.
    struct Options: Sendable {
        var devLogin = true
        var broker = true
        var minimumACR: String?
        var sessions = SessionSettings()
        var documents = DocumentSettings()
        /// Off unless a test sets them, so that no other test trips over a limit.
        var rateLimits = RateLimitSettings(login: nil, department: nil)
        /// Serve over a real HTTP connection on a free port (streamed bodies) instead of calling the router directly.
        var live = false
        /// With `live`: send the test's requests through AsyncHTTPClient, which opens a new connection when the server
        /// has closed an idle one, instead of over one keep-alive connection that the server's idle timeout would end
        /// for good. For tests with an idle timeout shorter than a loaded machine's pauses between two requests. It
        /// follows redirects.
        var reconnects = false
        /// The live server's limits (`PORTAL_HTTP_IDLE_SECONDS`, `PORTAL_HTTP_REQUEST_SECONDS`,
        /// `PORTAL_HTTP_MAX_HEADER_BYTES`).
        var idleTimeout = Duration.seconds(30)
        var requestTimeout = Duration.seconds(300)
        var maxHeaderBytes = 16 * 1024
    }

    static func with(_ options: Options = Options(), _ body: @Sendable (APIHarness) async throws -> Void) async throws {
        let log = TestLog()
        let logger = log.logger("PortalAPI")
        try await TestDatabase.with { database async throws in
            if options.broker {
                try await BrokerSimulator.with(logger: log.logger("broker", level: .warning)) { broker in
                    try await self.run(options, database: database, broker: broker, log: log, logger: logger, body)
                }
            } else {
                try await self.run(options, database: database, broker: nil, log: log, logger: logger, body)
            }
        }
    }

    private static func run(
        _ options: Options,
        database: TestDatabase,
        broker: BrokerSimulator?,
        log: TestLog,
        logger: Logger,
        _ body: @Sendable (APIHarness) async throws -> Void
    ) async throws {
        let configuration = PortalConfiguration(
            database: database.settings, publicURL: URL(string: self.publicURL)!, httpIdleTimeout: options.idleTimeout,
            httpRequestTimeout: options.requestTimeout, httpMaxHeaderBytes: options.maxHeaderBytes)
        let process = PortalProcess(name: "PortalAPI", configuration: configuration, logger: logger)
        var oidc: OIDCSettings?
        if let broker {
            oidc = OIDCSettings(
                issuer: broker.issuer,
                clientID: broker.clientID,
                clientSecret: broker.clientSecret,
                audience: broker.clientID,
                bsnClaim: "bsn",
                kvkClaim: "kvk",
                scopes: "openid",
                acrLevels: OIDCSettings.digidLevels,
                minimumACR: options.minimumACR,
                redirectURI: self.publicURL + "/auth/callback",
                keyRefreshInterval: .zero
            )
        }
        let settings = APISettings(
            devLogin: options.devLogin,
            oidc: oidc,
            sessions: options.sessions,
            subjectHasher: SubjectHasher(key: self.auditKey),
            documents: options.documents,
            rateLimits: options.rateLimits
        )
        let api = try buildRouter(process, settings: settings)
        let (catalog, identity) = (api.catalog, api.identity)
        let application = Application(responder: api.responder(settings: settings), server: process.httpServer, logger: logger)
        try await process.database.whileRunning {
            try await application.test(options.live ? (options.reconnects ? .ahc(.http) : .live) : .router) { client in
                try await body(
                    APIHarness(client: client, database: database, catalog: catalog, identity: identity, broker: broker, log: log))
            }
        }
    }

    // MARK: Requests

    func request(
        _ method: HTTPRequest.Method,
        _ uri: String,
        headers: HTTPFields = [:],
        json: String? = nil
    ) async throws -> TestResponse {
        var headers = headers
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(string: json)
            if headers[.contentType] == nil { headers[.contentType] = "application/json" }
        }
        let response = try await self.client.execute(uri: uri, method: method, headers: headers, body: body)
        if response.status == .internalServerError {
            // Never expected: show the error the API logged, which the client (rightly) did not get.
            Issue.record("\(method) \(uri) answered 500: \(self.log.lines(containing: "request failed"))")
        }
        return response
    }

    /// Logs in through the broker, end to end: /auth/login, the broker's authorize endpoint over HTTP, /auth/callback.
    /// Returns the callback's response and the login cookie the browser held.
    func brokerLogin(returnTo: String = "/zaken") async throws -> (callback: TestResponse, loginCookie: String, callbackURI: String) {
        let start = try await self.request(.get, "/auth/login?returnTo=\(returnTo)")
        #expect(start.status == .found)
        let location = try #require(start.headers[.location])
        let loginCookie = try #require(Self.cookies(start)[IdentityServices.loginCookie])
        var authorize = HTTPClientRequest(url: location)
        authorize.method = .GET
        let response = try await Self.http.execute(authorize, timeout: .seconds(10))
        #expect(response.status == .found)
        let redirect = try #require(response.headers.first(name: "location"))
        #expect(redirect.hasPrefix(Self.publicURL + "/auth/callback?"))
        let callbackURI = String(redirect.dropFirst(Self.publicURL.count))
        let callback = try await self.request(.get, callbackURI, headers: [.cookie: "\(IdentityServices.loginCookie)=\(loginCookie.value)"])
        return (callback, loginCookie.value, callbackURI)
    }

    /// A logged-in browser session: the cookie header and the CSRF token.
    struct Session: Sendable {
        let cookie: String
        let csrfToken: String

        var headers: HTTPFields { [.cookie: self.cookie] }
        var unsafeHeaders: HTTPFields { [.cookie: self.cookie, .xCSRFToken: self.csrfToken] }
    }

    /// Logs in with the development login and returns the session.
    func devLogin(bsn: String = "999993653") async throws -> Session {
        let response = try await self.request(.post, "/auth/dev-login", json: #"{"bsn": "\#(bsn)"}"#)
        try #require(response.status == .ok, "dev login: \(String(buffer: response.body))")
        let token = try #require(Self.cookies(response)[IdentityServices.sessionCookie]).value
        let session = try JSONDecoder().decode([String: String].self, from: Data(response.body.readableBytesView))
        return Session(cookie: "\(IdentityServices.sessionCookie)=\(token)", csrfToken: try #require(session["csrfToken"]))
    }

    // MARK: Reading responses

    struct SetCookie: Sendable {
        let value: String
        let attributes: [String]
    }

    static func cookies(_ response: TestResponse) -> [String: SetCookie] {
        var cookies: [String: SetCookie] = [:]
        for header in response.headers[values: .setCookie] {
            let parts = header.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let first = parts.first, let equals = first.firstIndex(of: "=") else { continue }
            cookies[String(first[..<equals])] = SetCookie(
                value: String(first[first.index(after: equals)...]), attributes: Array(parts.dropFirst()))
        }
        return cookies
    }

    /// The body as a JSON object.
    static func object(_ response: TestResponse) throws -> [String: JSONValue] {
        guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: Data(response.body.readableBytesView)) else {
            throw TestSetupError("the body is not a JSON object: \(String(buffer: response.body))")
        }
        return object
    }

    /// The `invalidParams` names of a problem, sorted.
    static func invalidParams(_ response: TestResponse) throws -> [String] {
        guard case .array(let params)? = try self.object(response)["invalidParams"] else { return [] }
        return params.compactMap { param in
            if case .object(let fields) = param { fields["name"]?.stringValue } else { nil }
        }.sorted()
    }

    /// A client that does not follow redirects, for the broker's authorize endpoint. It lives as long as the test
    /// process.
    static let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
}
