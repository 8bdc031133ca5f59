public import Foundation
public import Logging
public import PostgresNIO

/// How long sessions live: `PORTAL_SESSION_IDLE_SECONDS` (default 900, the 15 minutes the DigiD rules ask for) and
/// `PORTAL_SESSION_ABSOLUTE_SECONDS` (default 43200, twelve hours).
public struct SessionSettings: Sendable {
    public var idleTimeout: Duration
    public var absoluteTimeout: Duration

    public init(idleTimeout: Duration = .seconds(900), absoluteTimeout: Duration = .seconds(43_200)) {
        self.idleTimeout = idleTimeout
        self.absoluteTimeout = absoluteTimeout
    }

    public init(environment: EnvironmentReader) throws(ConfigurationError) {
        self.idleTimeout = .seconds(try environment.integer("PORTAL_SESSION_IDLE_SECONDS", default: 900, in: 300...86_400))
        self.absoluteTimeout = .seconds(
            try environment.integer("PORTAL_SESSION_ABSOLUTE_SECONDS", default: 43_200, in: 300...604_800)
        )
        guard self.absoluteTimeout >= self.idleTimeout else {
            throw ConfigurationError(
                variable: "PORTAL_SESSION_ABSOLUTE_SECONDS",
                problem: "must not be shorter than PORTAL_SESSION_IDLE_SECONDS"
            )
        }
    }
}

/// A session that was just started: the secrets to hand to the browser, once.
public struct NewSession: Sendable {
    /// The cookie value. Only its hash is stored.
    public let token: String
    public let csrfToken: String
    public let expiresAt: Date
}

/// A session found by its token, still within both timeouts.
public struct ActiveSession: Sendable {
    public let resident: Resident
    public let csrfToken: String
    public let method: String
    public let acr: String?
    /// The absolute end of the session.
    public let expiresAt: Date
}

/// An authorization request that the callback consumed.
public struct LoginAttempt: Sendable {
    public let nonce: String
    public let codeVerifier: String
    public let returnTo: String
}

/// The `sessions` and `login_attempts` tables: server-side sessions, so that any API replica can serve any request.
public struct SessionStore: Sendable {
    public let settings: SessionSettings

    public init(settings: SessionSettings) {
        self.settings = settings
    }

    /// Starts a session for a resident who just logged in. Always a new token: a session id is never carried over
    /// from before the login (session fixation).
    public func start(
        for residentID: UUID,
        method: String,
        acr: String?,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> NewSession {
        let token = SecretToken.generate()
        let csrfToken = SecretToken.generate()
        let rows = try await connection.query(
            """
            INSERT INTO sessions (token_hash, resident_id, csrf_token, method, acr, expires_at)
            VALUES (\(SecretToken.hash(token)), \(residentID), \(csrfToken), \(method), \(acr),
                    now() + make_interval(secs => \(self.settings.absoluteTimeout.seconds)))
            RETURNING expires_at
            """,
            logger: logger
        )
        guard let expiresAt = try await rows.decode(Date.self).first(where: { _ in true }) else {
            throw StoreError.noRowReturned
        }
        return NewSession(token: token, csrfToken: csrfToken, expiresAt: expiresAt)
    }

    /// Finds the session for a cookie value, in one statement; nil when it does not exist or has expired (idle or
    /// absolute). It marks the session as used only when it was last marked more than a minute ago, so that a
    /// resident's burst of requests costs one write, not one each (the idle timeout is therefore exact to a minute).
    public func resume(token: String, client: PostgresClient, logger: Logger) async throws -> ActiveSession? {
        let statement = ResumeSessionStatement(tokenHash: SecretToken.hash(token), idleSeconds: self.settings.idleTimeout.seconds)
        for try await (id, kind, number, locale, email, csrfToken, method, acr, expiresAt) in try await client.execute(
            statement, logger: logger)
        {
            let resident = try ResidentStore.resident(id: id, kind: kind, number: number, locale: locale, email: email)
            return ActiveSession(resident: resident, csrfToken: csrfToken, method: method, acr: acr, expiresAt: expiresAt)
        }
        return nil
    }

    /// Ends a session; returns its resident's id, or nil when there was no such session.
    public func end(token: String, on connection: PostgresConnection, logger: Logger) async throws -> UUID? {
        let rows = try await connection.query(
            "DELETE FROM sessions WHERE token_hash = \(SecretToken.hash(token)) RETURNING resident_id",
            logger: logger
        )
        return try await rows.decode(UUID.self).first(where: { _ in true })
    }

    /// Remembers an authorization request sent to the broker, for ten minutes at most.
    public func beginLogin(
        state: String,
        nonce: String,
        codeVerifier: String,
        returnTo: String,
        client: PostgresClient,
        logger: Logger
    ) async throws {
        try await client.query(
            """
            INSERT INTO login_attempts (state_hash, nonce, code_verifier, return_to, expires_at)
            VALUES (\(SecretToken.hash(state)), \(nonce), \(codeVerifier), \(returnTo), now() + interval '10 minutes')
            """,
            logger: logger
        )
    }

    /// Consumes the authorization request for `state`: nil when it is unknown, expired or was used before.
    public func finishLogin(state: String, client: PostgresClient, logger: Logger) async throws -> LoginAttempt? {
        let rows = try await client.query(
            """
            DELETE FROM login_attempts WHERE state_hash = \(SecretToken.hash(state))
            RETURNING nonce, code_verifier, return_to, expires_at > now()
            """,
            logger: logger
        )
        for try await (nonce, verifier, returnTo, current) in rows.decode((String, String, String, Bool).self) {
            return current ? LoginAttempt(nonce: nonce, codeVerifier: verifier, returnTo: returnTo) : nil
        }
        return nil
    }

    /// Deletes sessions past either timeout and login attempts past theirs. Safe to run from every replica.
    @discardableResult
    public func prune(client: PostgresClient, logger: Logger) async throws -> Int {
        var removed = 0
        let sessions = try await client.query(
            """
            WITH gone AS (
                DELETE FROM sessions
                WHERE expires_at <= now()
                   OR last_seen_at <= now() - make_interval(secs => \(self.settings.idleTimeout.seconds))
                RETURNING 1
            )
            SELECT count(*)::bigint FROM gone
            """,
            logger: logger
        )
        for try await count in sessions.decode(Int.self) { removed += count }
        try await client.query("DELETE FROM login_attempts WHERE expires_at <= now()", logger: logger)
        return removed
    }
}

/// The session lookup behind every resident request, as a prepared statement (parsed and planned once per connection).
struct ResumeSessionStatement: PostgresPreparedStatement {
    typealias Row = (UUID, String, String, String, String?, String, String, String?, Date)

    static let sql = """
        WITH found AS (
            SELECT r.id, r.subject_kind, r.subject, r.locale, r.email, s.csrf_token, s.method, s.acr, s.expires_at,
                   s.last_seen_at
            FROM sessions AS s JOIN residents AS r ON r.id = s.resident_id
            WHERE s.token_hash = $1 AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
        ), touched AS (
            UPDATE sessions SET last_seen_at = now()
            WHERE token_hash = $1 AND EXISTS (SELECT 1 FROM found WHERE last_seen_at < now() - interval '1 minute')
        )
        SELECT id, subject_kind, subject, locale, email, csrf_token, method, acr, expires_at FROM found
        """
    static let bindingDataTypes: [PostgresDataType] = [.bytea, .float8]

    let tokenHash: Data
    let idleSeconds: Double

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        try bindings.append(self.tokenHash)
        bindings.append(self.idleSeconds)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}
