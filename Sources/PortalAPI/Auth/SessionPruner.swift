import Logging
import PostgresNIO
import ServiceLifecycle
import Shared

/// Deletes expired sessions, login attempts and rate-limit windows every few minutes. Every API replica runs one; the deletes are
/// idempotent, so running several at once only repeats work.
struct SessionPruner: Service {
    let sessions: SessionStore
    let limiter: RateLimiter
    let database: PostgresClient
    let logger: Logger
    var interval: Duration = .seconds(300)

    func run() async throws {
        try await PeriodicWork(every: self.interval) { await self.pruneOnce() }.run()
    }

    private func pruneOnce() async {
        do {
            let removed = try await self.sessions.prune(client: self.database, logger: self.logger)
            if removed > 0 { self.logger.debug("pruned sessions", metadata: ["portal.sessions.removed": "\(removed)"]) }
            try await self.limiter.prune(logger: self.logger)
        } catch {
            self.logger.warning("pruning sessions failed", metadata: ["error": "\(error)"])
        }
    }
}
