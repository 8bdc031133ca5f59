import Hummingbird
import Logging
import Metrics
import PostgresNIO
import Shared

/// Everything the authenticators and the auth endpoints need, built once per process.
struct IdentityServices: Sendable {
    /// The browser session cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
    static let sessionCookie = "__Host-portal-session"
    /// Binds an authorization request to the browser that started it (login CSRF protection), for ten minutes.
    static let loginCookie = "__Host-portal-login"

    let database: PostgresClient
    let residents = ResidentStore()
    let sessions: SessionStore
    let departments = DepartmentStore()
    /// nil when no broker is configured.
    let oidc: OIDCClient?
    let audit: AuditLog
    let devLogin: Bool
    let logger: Logger
    let security: SecurityEvents
    let limits: RateLimits

    init(database: PostgresClient, settings: APISettings, oidc: OIDCClient?, logger: Logger) {
        self.database = database
        self.sessions = SessionStore(settings: settings.sessions)
        self.oidc = oidc
        self.audit = AuditLog(hasher: settings.subjectHasher, database: database)
        self.devLogin = settings.devLogin
        self.logger = logger
        self.security = SecurityEvents(logger: logger)
        self.limits = RateLimits(
            settings: settings.rateLimits, limiter: RateLimiter(client: database), hasher: settings.subjectHasher,
            security: self.security)
    }
}

/// Failed logins and refused access, as log lines under `portal.security` and a counter per event. What was wrong is
/// said (the reason), never what was presented (no token, cookie, code or number).
struct SecurityEvents: Sendable {
    private let logger: Logger

    init(logger: Logger) {
        var logger = logger
        logger[metadataKey: "portal.component"] = "security"
        self.logger = logger
    }

    func record(_ event: String, reason: String, traceID: String, request: Request? = nil) {
        var metadata: Logger.Metadata = [
            "portal.security.event": "\(event)",
            "portal.security.reason": "\(reason)",
            "portal.trace.id": "\(traceID)",
        ]
        if let request {
            metadata["http.method"] = "\(request.method)"
            metadata["http.path"] = "\(request.uri.path)"
        }
        self.logger.warning("security event", metadata: metadata)
        Counter(label: "portal_security_events_total", dimensions: [("event", event)]).increment()
    }

    /// Counts a login that ended (`portal_logins_total{method, outcome}`): `method` is `oidc` or `dev`, `outcome`
    /// `success` or `failure` (refused at the callback, or the broker could not be used).
    func countLogin(method: String, succeeded: Bool) {
        Counter(label: "portal_logins_total", dimensions: [("method", method), ("outcome", succeeded ? "success" : "failure")])
            .increment()
    }
}
