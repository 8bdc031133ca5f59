public import Foundation
public import PostgresNIO

/// How to reach PostgreSQL, parsed from `PORTAL_DATABASE_URL`.
///
/// The URL has the libpq form `postgres://user:password@host:port/database?sslmode=...`. Supported `sslmode`
/// values: `disable`, `prefer` (the default: TLS when the server offers it), and `require` (TLS with the
/// certificate verified against the system trust store). The password never appears in an error or a log line.
public struct DatabaseSettings: Sendable {
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tlsMode: TLSMode
    /// Connections this process may open at most (`PORTAL_DATABASE_MAX_CONNECTIONS`).
    public var maximumConnections: Int

    public init(
        host: String,
        port: Int = 5432,
        username: String,
        password: String?,
        database: String,
        tlsMode: TLSMode = .prefer,
        maximumConnections: Int = 10
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tlsMode = tlsMode
        self.maximumConnections = maximumConnections
    }

    /// Parses a `postgres://` URL; `variable` names the setting in the error.
    public init(url raw: String, variable: String = "PORTAL_DATABASE_URL", maximumConnections: Int = 10) throws(ConfigurationError) {
        // Never echo the raw value: it may carry a password.
        func malformed(_ problem: String) -> ConfigurationError {
            ConfigurationError(variable: variable, problem: problem)
        }
        guard let components = URLComponents(string: raw) else {
            throw malformed("is not a valid URL (expected postgres://user:password@host:port/database)")
        }
        guard let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw malformed("must start with postgres:// or postgresql://")
        }
        guard let host = components.host, !host.isEmpty else { throw malformed("has no host") }
        guard let user = components.user, !user.isEmpty else { throw malformed("has no user name") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw malformed("has no database name after the host") }

        var tlsMode = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw malformed("has an sslmode other than disable, prefer or require")
                }
                tlsMode = mode
            default:
                throw malformed("has an unknown parameter \"\(item.name)\" (only sslmode is understood)")
            }
        }
        self.init(
            host: host,
            port: components.port ?? 5432,
            username: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.removingPercentEncoding ?? database,
            tlsMode: tlsMode,
            maximumConnections: maximumConnections
        )
    }

    /// The same server with another database: tests clone a migrated template into one database per test.
    public func with(database: String) -> DatabaseSettings {
        var copy = self
        copy.database = database
        return copy
    }

    /// The configuration for a `PostgresClient`.
    public var clientConfiguration: PostgresClient.Configuration { self.clientConfiguration(applicationName: nil) }

    /// The configuration for a `PostgresClient` whose connections show `applicationName` in `pg_stat_activity`, so an
    /// operator (and the process itself, for its pool metrics) can tell whose connections they are.
    public func clientConfiguration(applicationName: String?) -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch self.tlsMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(.makeClientConfiguration())
        case .require: tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: self.host,
            port: self.port,
            username: self.username,
            password: self.password,
            database: self.database,
            tls: tls
        )
        configuration.options.maximumConnections = self.maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        if let applicationName { configuration.options.additionalStartupParameters = [("application_name", applicationName)] }
        return configuration
    }

    /// Where the database is, without credentials: for log lines and error messages.
    public var redactedDescription: String { "postgres://\(self.username)@\(self.host):\(self.port)/\(self.database)" }
}
