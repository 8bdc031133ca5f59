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
    /// `PORTAL_HTTP_IDLE_SECONDS` (default 30): a connection that sends nothing for this long while a request is
    /// being read, or between requests, is closed. A client that dribbles its headers (slowloris) sends no complete
    /// part, so it is cut off after this long as well.
    public var httpIdleTimeout: Duration
    /// `PORTAL_HTTP_REQUEST_SECONDS` (default 300): the most a client may take to send one request, from its head
    /// to the last byte of its body (``RequestTimeoutHandler``); at the default a 25 MB upload needs 84 kB/s.
    public var httpRequestTimeout: Duration
    /// `PORTAL_HTTP_MAX_HEADER_BYTES` (default 16384): the most a request's header fields may take together, and
    /// each one alone; a request with more is cut off by the HTTP decoder before a handler sees it.
    public var httpMaxHeaderBytes: Int
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
        jobs: JobSettings = JobSettings(),
        httpIdleTimeout: Duration = .seconds(30),
        httpRequestTimeout: Duration = .seconds(300),
        httpMaxHeaderBytes: Int = 16 * 1024
    ) {
        self.database = database
        self.httpHost = httpHost
        self.httpPort = httpPort
        self.publicURL = publicURL
        self.httpIdleTimeout = httpIdleTimeout
        self.httpRequestTimeout = httpRequestTimeout
        self.httpMaxHeaderBytes = httpMaxHeaderBytes
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
        self.httpIdleTimeout = try environment.seconds("PORTAL_HTTP_IDLE_SECONDS", default: .seconds(30), in: 1...3600)
        self.httpRequestTimeout = try environment.seconds("PORTAL_HTTP_REQUEST_SECONDS", default: .seconds(300), in: 1...86_400)
        self.httpMaxHeaderBytes = try environment.integer("PORTAL_HTTP_MAX_HEADER_BYTES", default: 16 * 1024, in: 4096...1_048_576)
        self.logLevel = try environment.choice("PORTAL_LOG_LEVEL", default: Logger.Level.info)
        self.logFormat = try environment.choice("PORTAL_LOG_FORMAT", default: LogFormat.auto)
        self.jobs = try JobSettings(environment: environment)
    }
}
