public import Foundation
public import Logging
public import PostgresNIO
import Synchronization

/// A number of requests per window of time, such as 30 logins a minute.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var requests: Int
    public var window: Duration

    public init(requests: Int, window: Duration) {
        self.requests = requests
        self.window = window
    }

    /// As the settings write it: `30/60` is 30 requests per 60 seconds.
    public var description: String { "\(self.requests)/\(Int(self.window.seconds))" }

    /// Reads `N/S` (N requests per S seconds, both whole numbers from 1) or `off` (nil).
    public static func read(
        _ environment: EnvironmentReader, _ name: String, default defaultValue: RateLimit
    ) throws(ConfigurationError) -> RateLimit? {
        guard let raw = environment.string(name) else { return defaultValue }
        if raw.lowercased() == "off" { return nil }
        let parts = raw.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let requests = Int(parts[0]), let seconds = Int(parts[1]), requests >= 1, (1...86_400).contains(seconds)
        else {
            throw ConfigurationError(
                variable: name, problem: "must be requests/seconds such as \(defaultValue) (or off), got \"\(raw)\"")
        }
        return RateLimit(requests: requests, window: .seconds(seconds))
    }
}

/// Counts requests per key in fixed windows, in PostgreSQL (`rate_limits`), so that a limit holds for the whole
/// deployment however many API replicas there are.
///
/// Each request that is counted is one `INSERT ... ON CONFLICT DO UPDATE` on the key's row. A key over its limit is
/// also remembered in this process until its window ends, so a flood costs the database one statement per replica
/// and window, not one per request: refusing is cheaper than serving. Fixed windows let a client make up to twice its
/// limit across a window's boundary; for throttling brute force and floods that is close enough, and it is one row
/// per key.
public final class RateLimiter: Sendable {
    private let client: PostgresClient
    /// Keys known to be over their limit, with the instant their window ends.
    private let refusing = Mutex<[Data: ContinuousClock.Instant]>([:])
    private static let rememberedKeys = 10_000

    public init(client: PostgresClient) {
        self.client = client
    }

    /// What counting a request decided.
    public enum Decision: Sendable, Equatable {
        case allowed
        /// Over the limit until the window ends, `retryAfter` from now.
        case refused(retryAfter: Duration, firstRefusal: Bool)
    }

    /// Counts one request for `key` (a hash: it is stored) against `limit`.
    public func count(_ key: Data, limit: RateLimit, logger: Logger) async throws -> Decision {
        let now = ContinuousClock.now
        if let until = self.refusing.withLock({ $0[key] }), until > now {
            return .refused(retryAfter: until - now, firstRefusal: false)
        }
        let windowSeconds = limit.window.seconds
        let rows = try await self.client.query(
            """
            INSERT INTO rate_limits AS r (key, resets_at, hits)
            VALUES (\(key), date_bin(make_interval(secs => \(windowSeconds)), now(), timestamptz '2000-01-01')
                            + make_interval(secs => \(windowSeconds)), 1)
            ON CONFLICT (key) DO UPDATE
            SET hits = CASE WHEN r.resets_at = EXCLUDED.resets_at THEN r.hits + 1 ELSE 1 END,
                resets_at = EXCLUDED.resets_at
            RETURNING hits, (extract(epoch FROM resets_at - now()) * 1000)::bigint
            """,
            logger: logger
        )
        var hits = 0
        var remaining = Int64(0)
        for try await (count, milliseconds) in rows.decode((Int, Int64).self) { (hits, remaining) = (count, milliseconds) }
        guard hits > limit.requests else { return .allowed }
        let retryAfter = Duration.milliseconds(max(remaining, 1))
        self.refusing.withLock { refusing in
            if refusing.count >= Self.rememberedKeys { refusing = refusing.filter { $0.value > now } }
            if refusing.count < Self.rememberedKeys { refusing[key] = now + retryAfter }
        }
        return .refused(retryAfter: retryAfter, firstRefusal: hits == limit.requests + 1)
    }

    /// Deletes the rows of windows that have ended; every API replica's pruner runs it.
    public func prune(logger: Logger) async throws {
        try await self.client.query("DELETE FROM rate_limits WHERE resets_at < now()", logger: logger)
    }
}
