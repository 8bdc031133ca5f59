import Foundation
import Shared

/// The settings only the API reads, on top of ``PortalConfiguration``. Each key is in docs/CONFIGURATION.md.
struct APISettings: Sendable {
    /// `PORTAL_DEV_LOGIN` (default `false`): `POST /auth/dev-login` logs anyone in as any BSN. Never in production.
    var devLogin: Bool
    /// The `PORTAL_OIDC_*` settings; nil without `PORTAL_OIDC_ISSUER`.
    var oidc: OIDCSettings?
    /// `PORTAL_SESSION_IDLE_SECONDS` and `PORTAL_SESSION_ABSOLUTE_SECONDS`.
    var sessions: SessionSettings
    /// `PORTAL_AUDIT_KEY` (required): the key of the keyed hash that stands for a subject in the audit log.
    var subjectHasher: SubjectHasher
    /// The `PORTAL_UPLOAD_*`, `PORTAL_CLAMD_*` and `PORTAL_DOCUMENT_*` settings.
    var documents: DocumentSettings
    /// The `PORTAL_RATE_LIMIT_*` settings and `PORTAL_HTTP_TRUSTED_PROXIES`.
    var rateLimits: RateLimitSettings
    /// `PORTAL_HTTP_RESPONSE_SECONDS` (default 30): a request (but an upload or a batch) that has no answer after this
    /// long is answered 503 and its handler given up (``ResponseDeadlineResponder``). Below the usual proxy timeout (60 s),
    /// and below the shutdown's grace, so that a hung request holds neither the client nor a shutdown.
    var responseDeadline: Duration

    init(
        devLogin: Bool, oidc: OIDCSettings?, sessions: SessionSettings, subjectHasher: SubjectHasher,
        documents: DocumentSettings = DocumentSettings(),
        rateLimits: RateLimitSettings = RateLimitSettings(),
        responseDeadline: Duration = .seconds(30)
    ) {
        self.devLogin = devLogin
        self.oidc = oidc
        self.sessions = sessions
        self.subjectHasher = subjectHasher
        self.documents = documents
        self.rateLimits = rateLimits
        self.responseDeadline = responseDeadline
    }

    init(environment: EnvironmentReader = EnvironmentReader(), portal: PortalConfiguration) throws(ConfigurationError) {
        self.devLogin = try environment.boolean("PORTAL_DEV_LOGIN", default: false)
        self.oidc = try OIDCSettings.read(environment, publicURL: portal.publicURL)
        self.sessions = try SessionSettings(environment: environment)
        self.subjectHasher = try SubjectHasher(environment: environment)
        self.documents = try DocumentSettings(environment)
        self.rateLimits = try RateLimitSettings(environment: environment)
        self.responseDeadline = try environment.seconds("PORTAL_HTTP_RESPONSE_SECONDS", default: .seconds(30), in: 1...3600)
    }
}
