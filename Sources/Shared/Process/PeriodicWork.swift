public import ServiceLifecycle

/// Work every process repeats on its own (pruning sessions, the notifier's housekeeping, the sync worker's schedule
/// repair): `work` runs after each `interval`, jittered by ±25 % so that replicas started together do not run at the
/// same moment, until graceful shutdown. Every replica runs it, so `work` must be safe to run from several at once.
///
/// It works after each interval, not at start: a process that stops at once (a schema that is behind) must not be
/// left waiting on a query its stopped database client will never answer.
public struct PeriodicWork: Service {
    public let interval: Duration
    public let work: @Sendable () async -> Void

    public init(every interval: Duration, _ work: @escaping @Sendable () async -> Void) {
        self.interval = interval
        self.work = work
    }

    /// Returns only at graceful shutdown (or cancellation).
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: self.interval * Double.random(in: 0.75...1.25))
                await self.work()
            }
        }
    }
}
