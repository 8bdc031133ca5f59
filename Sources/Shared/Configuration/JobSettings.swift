import Foundation

/// How a process runs the job queue: the `PORTAL_JOB_*` settings.
public struct JobSettings: Sendable, Equatable {
    /// `PORTAL_JOB_CONCURRENCY` (default 10): jobs one process runs at once per queue. Either one number for every
    /// queue, or a list such as `sync=8,notifications=20` (queues not named get 10).
    public var concurrency: [String: Int]
    public var defaultConcurrency: Int
    /// `PORTAL_JOB_LEASE_SECONDS` (default 30): how long a claimed job stays reserved without a heartbeat. A job
    /// held by a process that died is returned to the queue at most this long (plus one rescue interval) later.
    public var lease: Duration
    /// `PORTAL_JOB_TIMEOUT_SECONDS` (default 600): a handler that has not returned after this long is given up on: the
    /// attempt fails (and is retried with backoff), and the process stops waiting for it. A handler waiting on a call
    /// that never answers would otherwise hold its slot, and its job, for as long as the process lives.
    public var timeout: Duration
    /// `PORTAL_JOB_POLL_SECONDS` (default 5): the safety-net poll; jobs normally start on a NOTIFY.
    public var pollInterval: Duration
    /// `PORTAL_JOB_RESCUE_SECONDS` (default 5): how often each process looks for expired leases.
    public var rescueInterval: Duration
    /// `PORTAL_JOB_SHUTDOWN_TIMEOUT_SECONDS` (default 20): on SIGTERM, how long running jobs may take to finish
    /// before they are cancelled and released to the queue without spending an attempt.
    public var shutdownTimeout: Duration
    /// How long a handler asked to stop (its lease lost, or the shutdown timeout passed) may take to return before it
    /// is abandoned (10 s; not a setting). Within the 30 s the shutdown allows after the shutdown timeout.
    public var stopGrace: Duration
    /// `PORTAL_JOB_RETENTION_HOURS` (default 24): completed and cancelled jobs are pruned after this.
    public var retentionHours: Int
    /// `PORTAL_JOB_DEAD_RETENTION_DAYS` (default 30): dead jobs stay this long for operators to inspect.
    public var deadRetentionDays: Int

    public init(
        concurrency: [String: Int] = [:],
        defaultConcurrency: Int = 10,
        lease: Duration = .seconds(30),
        timeout: Duration = .seconds(600),
        pollInterval: Duration = .seconds(5),
        rescueInterval: Duration = .seconds(5),
        shutdownTimeout: Duration = .seconds(20),
        retentionHours: Int = 24,
        deadRetentionDays: Int = 30,
        stopGrace: Duration = .seconds(10)
    ) {
        self.concurrency = concurrency
        self.defaultConcurrency = defaultConcurrency
        self.lease = lease
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.rescueInterval = rescueInterval
        self.shutdownTimeout = shutdownTimeout
        self.retentionHours = retentionHours
        self.deadRetentionDays = deadRetentionDays
        self.stopGrace = stopGrace
    }

    public init(environment: EnvironmentReader) throws(ConfigurationError) {
        self.init()
        if let raw = environment.string("PORTAL_JOB_CONCURRENCY") {
            (self.defaultConcurrency, self.concurrency) = try Self.parseConcurrency(raw)
        }
        self.lease = try environment.seconds("PORTAL_JOB_LEASE_SECONDS", default: self.lease, in: 1...3600)
        self.timeout = try environment.seconds("PORTAL_JOB_TIMEOUT_SECONDS", default: self.timeout, in: 1...86_400)
        self.pollInterval = try environment.seconds("PORTAL_JOB_POLL_SECONDS", default: self.pollInterval, in: 0.05...600)
        self.rescueInterval = try environment.seconds("PORTAL_JOB_RESCUE_SECONDS", default: self.rescueInterval, in: 0.05...600)
        self.shutdownTimeout = try environment.seconds(
            "PORTAL_JOB_SHUTDOWN_TIMEOUT_SECONDS",
            default: self.shutdownTimeout,
            in: 0...3600
        )
        self.retentionHours = try environment.integer("PORTAL_JOB_RETENTION_HOURS", default: self.retentionHours, in: 1...24 * 365)
        self.deadRetentionDays = try environment.integer("PORTAL_JOB_DEAD_RETENTION_DAYS", default: self.deadRetentionDays, in: 1...3650)
    }

    /// The number of jobs of `queue` this process runs at once.
    public func concurrency(for queue: String) -> Int {
        self.concurrency[queue] ?? self.defaultConcurrency
    }

    static func parseConcurrency(_ raw: String) throws(ConfigurationError) -> (Int, [String: Int]) {
        let problem = "must be a number from 1 to 1000, or a list like sync=8,notifications=20, got \"\(raw)\""
        let error = ConfigurationError(variable: "PORTAL_JOB_CONCURRENCY", problem: problem)
        if let all = Int(raw) {
            guard (1...1000).contains(all) else { throw error }
            return (all, [:])
        }
        var perQueue: [String: Int] = [:]
        for entry in raw.split(separator: ",") {
            let parts = entry.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2,
                let count = Int(parts[1].trimmingCharacters(in: .whitespaces)), (1...1000).contains(count)
            else { throw error }
            let queue = parts[0].trimmingCharacters(in: .whitespaces)
            guard !queue.isEmpty else { throw error }
            perQueue[queue] = count
        }
        return (10, perQueue)
    }
}
