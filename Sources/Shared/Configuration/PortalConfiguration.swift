public import Foundation
public import Logging

/// Every setting a portal process reads at start, from environment variables.
///
/// Each key, its default and its meaning are listed in `docs/CONFIGURATION.md`; keep that table in step with this
/// file. Reading stops at the first bad value with a ``ConfigurationError`` that names it.
public struct PortalConfiguration: Sendable {
    public enum LogFormat: String, Sendable, CaseIterable {
        /// JSON lines when standard error is not a terminal, readable text when it is.
        case auto
        case json
        case text
    }

    /// `PORTAL_DATABASE_URL` (required) and `PORTAL_DATABASE_MAX_CONNECTIONS` (default 10).
    public var database: DatabaseSettings
    /// `PORTAL_HTTP_HOST` (default `127.0.0.1`).
    public var httpHost: String
    /// `PORTAL_HTTP_PORT` (default: 8080 for the API, 8081 for the sync worker, 8082 for the notifier).
    public var httpPort: Int
    /// `PORTAL_PUBLIC_URL` (default `http://localhost:8080`): where residents reach the portal, for links in mails.
    public var publicURL: URL
    /// `PORTAL_LOG_LEVEL` (default `info`).
    public var logLevel: Logger.Level
    /// `PORTAL_LOG_FORMAT` (default `auto`).
    public var logFormat: LogFormat
    /// The `PORTAL_JOB_*` settings.
    public var jobs: JobSettings

    public init(
        database: DatabaseSettings,
        httpHost: String = "127.0.0.1",
        httpPort: Int = 8080,
        publicURL: URL = URL(string: "http://localhost:8080")!,
        logLevel: Logger.Level = .info,
        logFormat: LogFormat = .auto,
        jobs: JobSettings = JobSettings()
    ) {
        self.database = database
        self.httpHost = httpHost
        self.httpPort = httpPort
        self.publicURL = publicURL
        self.logLevel = logLevel
        self.logFormat = logFormat
        self.jobs = jobs
    }

    /// Reads the configuration from the environment.
    /// - Parameter defaultHTTPPort: the executable's own default, so that the three processes can share a machine
    ///   without any setting.
    public init(environment: EnvironmentReader = EnvironmentReader(), defaultHTTPPort: Int) throws(ConfigurationError) {
        let maximumConnections = try environment.integer("PORTAL_DATABASE_MAX_CONNECTIONS", default: 10, in: 2...500)
        self.database = try DatabaseSettings(
            url: try environment.requiredString("PORTAL_DATABASE_URL"),
            maximumConnections: maximumConnections
        )
        self.httpHost = environment.string("PORTAL_HTTP_HOST", default: "127.0.0.1")
        self.httpPort = try environment.integer("PORTAL_HTTP_PORT", default: defaultHTTPPort, in: 0...65535)
        self.publicURL = try environment.url("PORTAL_PUBLIC_URL", default: "http://localhost:8080")
        self.logLevel = try environment.choice("PORTAL_LOG_LEVEL", default: Logger.Level.info)
        self.logFormat = try environment.choice("PORTAL_LOG_FORMAT", default: LogFormat.auto)
        self.jobs = try JobSettings(environment: environment)
    }
}
