import Foundation
public import Logging
import PostgresNIO
public import ServiceLifecycle

/// Runs the jobs of some queues in this process: the service at the centre of the sync worker and the notifier.
///
/// Per queue it keeps at most `concurrency` handlers running, and claims exactly as many jobs as it has free slots,
/// in one statement. It wakes on a NOTIFY from the one LISTEN connection of the process, on a freed slot, and on a
/// slow poll that is only a safety net. Next to the runners it keeps the leases of its running jobs alive
/// (heartbeat), returns other processes' expired jobs to their queues (rescuer), prunes finished jobs (retention),
/// samples queue depth for the metrics. Completions of jobs that finish together share one fenced `UPDATE`
/// (``GroupCommit``).
///
/// On graceful shutdown it stops claiming, lets running jobs finish for up to `shutdownTimeout`, then cancels the
/// rest and releases them to the queue without spending an attempt. Final states are written by the task that ran
/// the job, which is not the one being cancelled, so a cancelled handler's release is still recorded.
///
/// A processor is one service lifetime: once it has shut down it does not run again; build a new one instead.
public struct JobProcessor: Service {
    /// Identifies this process in `jobs.lease_owner`: host, process id and a random suffix.
    public let owner: String
    private let jobs: JobQueue
    private let registry: JobRegistry
    private let queues: [String]
    private let settings: JobSettings
    private let metrics: JobMetrics
    private let logger: Logger
    private let preflight: @Sendable () async throws -> Void
    private let inFlight = InFlightJobs()
    private let wakeUps: QueueWakeUps
    /// Whether each completion was accepted (false: the attempt lost its lease).
    private let completions: GroupCommit<ClaimedJob, Bool>

    /// - Parameters:
    ///   - queues: the queues this process serves.
    ///   - preflight: runs before anything is claimed; throwing stops the service (the schema check).
    public init(
        jobs: JobQueue,
        registry: JobRegistry,
        queues: [String],
        settings: JobSettings,
        metrics: JobMetrics = JobMetrics(),
        logger: Logger,
        preflight: @escaping @Sendable () async throws -> Void = {}
    ) {
        self.owner = "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UUID().uuidString.prefix(8).lowercased())"
        self.jobs = jobs
        self.registry = registry
        self.queues = Array(Set(queues)).sorted()
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.preflight = preflight
        self.wakeUps = QueueWakeUps(queues: self.queues)
        // A completion that takes longer than a lease is given up: the job runs again after its lease, as if this
        // process had died, instead of every later completion waiting behind it.
        self.completions = GroupCommit(deadline: settings.lease) { batch, _ in
            let refused = try await jobs.complete(batch)
            return batch.map { !refused.contains($0.id) }
        }
    }

    public func run() async throws {
        try await self.preflight()
        self.logger.info(
            "job processor started",
            metadata: ["portal.job.queues": "\(self.queues.joined(separator: ","))", "portal.job.owner": "\(self.owner)"]
        )
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { maintenance in
                maintenance.addTask { await self.listen() }
                maintenance.addTask { await self.every(self.settings.lease / 3) { try await self.heartbeat() } }
                maintenance.addTask { await self.every(self.settings.rescueInterval, jitter: true) { try await self.rescue() } }
                maintenance.addTask { await self.every(.seconds(300), jitter: true) { try await self.prune() } }
                maintenance.addTask {
                    await self.every(.seconds(15), immediately: true) {
                        self.metrics.recordDepth(try await self.jobs.depth(), served: self.queues)
                    }
                }
                for queue in self.queues {
                    maintenance.addTask { await self.every(self.settings.pollInterval) { self.wakeUps.wake(queue) } }
                }
                await withDiscardingTaskGroup { runners in
                    for queue in self.queues {
                        runners.addTask { await self.runQueue(queue) }
                    }
                }
                maintenance.cancelAll()
            }
        } onGracefulShutdown: {
            self.wakeUps.finishAll()
        }
        self.logger.info("job processor stopped", metadata: ["portal.job.owner": "\(self.owner)"])
    }

    // MARK: Running a queue

    private func runQueue(_ queue: String) async {
        let capacity = self.settings.concurrency(for: queue)
        await withDiscardingTaskGroup { group in
            for await _ in self.wakeUps.stream(for: queue) {
                var free = self.freeSlots(queue, capacity: capacity)
                while free > 0, !self.wakeUps.isFinished {
                    let claimed: [ClaimedJob]
                    do {
                        claimed = try await self.jobs.claim(queue: queue, limit: free, owner: self.owner, lease: self.settings.lease)
                    } catch {
                        self.logger.warning("could not claim jobs", metadata: ["portal.job.queue": "\(queue)", "error": "\(error)"])
                        break  // the next wake-up (at the latest the poll) tries again
                    }
                    for job in claimed {
                        let stop = self.inFlight.insert(job)
                        group.addTask {
                            await self.execute(job, stop: stop)
                            self.inFlight.remove(stop)
                            // Its outcome is written: when claiming had stopped for held jobs, it may go on now.
                            self.wakeUps.wake(queue)
                        }
                    }
                    guard claimed.count == free else { break }
                    free = self.freeSlots(queue, capacity: capacity)
                }
            }
            // The wake-ups ended: graceful shutdown. Running jobs get their time, then are asked to stop.
            if await !self.inFlight.waitUntilIdle(queue: queue, timeout: self.settings.shutdownTimeout) {
                self.logger.notice("shutdown timeout: releasing running jobs", metadata: ["portal.job.queue": "\(queue)"])
                self.inFlight.stopAll(queue: queue, reason: .shutdown)
            }
        }
    }

    /// How many jobs of `queue` to claim now: the slots whose handlers have returned are free, so the next claim
    /// overlaps the writing of their outcomes; but no more than `capacity` jobs may wait for their outcomes to be
    /// written. When writing outcomes stalls, claiming stops, rather than taking more jobs that cannot finish.
    private func freeSlots(_ queue: String, capacity: Int) -> Int {
        let (running, held) = self.inFlight.counts(queue: queue)
        return min(capacity - running, 2 * capacity - held)
    }

    private enum Outcome: Sendable {
        case completed
        case failed(String, giveUp: Bool)
        case snoozed(Duration)
        case stopped
    }

    private func execute(_ job: ClaimedJob, stop: StopSignal) async {
        let logger = self.logger(for: job)
        self.metrics.recordStart(job)
        let entry = self.registry.entry(for: job.kind)
        let started = ContinuousClock.now

        // The handler runs in a child task that can be cancelled on its own (lease lost, shutdown timeout); the
        // outcome is recorded afterwards by this task, which is not cancelled by either.
        // A handler that ignores its stop and its cancellation (a call that never answers) is abandoned after the job
        // timeout, or `stopGrace` after it was asked to stop: the attempt fails and is retried (or, stopped, is
        // released or left to its lease), and this process stops waiting for it, so it cannot hold a shutdown up.
        let outcome: Outcome
        do {
            outcome = try await withDeadline(self.settings.timeout, stopped: { await stop.wait() }, grace: self.settings.stopGrace) {
                await withTaskGroup(of: Outcome?.self) { group in
                    group.addTask { await self.runHandler(entry, job: job, logger: logger, stop: stop) }
                    group.addTask {
                        await stop.wait()
                        return nil
                    }
                    var outcome: Outcome = .stopped
                    while let next = await group.next() {
                        if let next { outcome = next }
                        group.cancelAll()
                    }
                    return outcome
                }
            }
        } catch {
            if stop.reason == nil {
                logger.error("the job's handler did not return in time; giving up on this attempt", metadata: ["error": "\(error)"])
                outcome = .failed("no outcome within \(self.settings.timeout)", giveUp: false)
            } else {
                logger.error("the job's handler did not stop when asked; giving up on it", metadata: ["error": "\(error)"])
                outcome = .stopped
            }
        }
        let duration = ContinuousClock.now - started
        // The slot is free as soon as the handler has returned: the next claim overlaps this outcome's write.
        self.inFlight.handlerFinished(stop)
        self.wakeUps.wake(job.queue)
        do {
            // Bounded like the completions: an outcome that cannot be written within a lease is left to the rescuer.
            try await withDeadline(self.settings.lease) {
                try await self.record(
                    outcome, of: job, stop: stop, retryPolicy: entry?.retryPolicy ?? RetryPolicy(), duration: duration, logger: logger)
            }
        } catch {
            // The lease will expire and the rescuer will return the job: it runs again, nothing is lost.
            logger.error("could not record the job's outcome; it will run again after its lease", metadata: ["error": "\(error)"])
        }
    }

    private func logger(for job: ClaimedJob) -> Logger {
        var logger = self.logger
        logger[metadataKey: "portal.job.id"] = "\(job.id)"
        logger[metadataKey: "portal.job.kind"] = "\(job.kind)"
        logger[metadataKey: "portal.job.queue"] = "\(job.queue)"
        logger[metadataKey: "portal.job.attempt"] = "\(job.attempt)"
        logger[metadataKey: TraceContext.metadataKey] = "\(job.traceID)"
        return logger
    }

    private func runHandler(_ entry: JobRegistry.Entry?, job: ClaimedJob, logger: Logger, stop: StopSignal) async -> Outcome {
        guard let entry else {
            // Retryable: during a rolling upgrade a newer process may know this kind.
            return .failed("no handler for job kind \(job.kind) in this process", giveUp: false)
        }
        do {
            try await entry.handler(job, JobContext(job: job, logger: logger))
            return .completed
        } catch let snooze as JobSnooze {
            return .snoozed(snooze.delay)
        } catch let error as PermanentJobError {
            return .failed(error.description, giveUp: true)
        } catch {
            if stop.reason != nil { return .stopped }
            return .failed(LoggableError.describe(error), giveUp: false)
        }
    }

    private func record(
        _ outcome: Outcome,
        of job: ClaimedJob,
        stop: StopSignal,
        retryPolicy: RetryPolicy,
        duration: Duration,
        logger: Logger
    ) async throws {
        let result: String
        switch outcome {
        case .completed:
            if try await self.completions.submit(job, logger: logger) {
                result = "completed"
                logger.debug("job completed")
            } else {
                result = "lease_lost"
                logger.warning("completion refused: this attempt lost its lease and the job was given to another")
            }
        case .failed(let error, let giveUp):
            let delay = retryPolicy.delay(afterAttempt: job.attempt)
            switch try await self.jobs.fail(job, error: error, retryAfter: delay, giveUp: giveUp) {
            case .dead:
                result = "dead"
                logger.error("job failed for good", metadata: ["error": "\(error)"])
            case .some:
                result = "retried"
                logger.warning("job failed, will retry", metadata: ["error": "\(error)", "portal.job.retry_in": "\(delay)"])
            case nil:
                result = "lease_lost"
                logger.warning("failure not recorded: this attempt lost its lease")
            }
        case .snoozed(let delay):
            result = try await self.jobs.snooze(job, for: delay) ? "snoozed" : "lease_lost"
        case .stopped:
            switch stop.reason {
            case .shutdown?:
                result = try await self.jobs.release([job]).isEmpty ? "lease_lost" : "released"
                logger.notice("job released to the queue at shutdown")
            case .leaseLost?, nil:
                result = "lease_lost"
                logger.warning("job stopped: its lease was lost")
            }
        }
        self.metrics.recordRun(queue: job.queue, kind: job.kind, outcome: result, duration: duration)
    }

    // MARK: Maintenance

    /// One LISTEN connection for the whole process; notifications name the queue to wake. After every
    /// (re)connection all queues are woken, since notifications sent while disconnected are lost.
    private func listen() async {
        var backoff = Duration.milliseconds(250)
        while !Task.isCancelled {
            do {
                try await self.jobs.client.withConnection { connection in
                    try await connection.listen(on: JobQueue.notificationChannel) { notifications in
                        backoff = .milliseconds(250)
                        self.wakeUps.wakeAll()
                        for try await notification in notifications {
                            self.wakeUps.wake(notification.payload)
                        }
                    }
                }
            } catch {
                guard !Task.isCancelled else { return }
                self.logger.warning("LISTEN connection lost; polling until it is back", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(10))
        }
    }

    private func heartbeat() async throws {
        let attempts = self.inFlight.attempts
        guard !attempts.isEmpty else { return }
        let held = try await self.jobs.extendLeases(of: attempts, owner: self.owner, lease: self.settings.lease)
        // A lease is also "lost" when its job's outcome was written between the read of the attempts and the
        // extension (completed or snoozed: no longer running): only handlers that still run have lost anything.
        let lost = Set(attempts).subtracting(held).intersection(self.inFlight.runningAttempts)
        if !lost.isEmpty {
            self.logger.warning("leases lost; stopping those jobs", metadata: ["portal.job.ids": "\(lost.map(\.id.description).sorted())"])
            self.inFlight.stop(lost, reason: .leaseLost)
        }
    }

    private func rescue() async throws {
        for job in try await self.jobs.rescueExpired() {
            self.metrics.recordRescue(queue: job.queue)
            self.logger.warning(
                "rescued a job whose worker stopped sending heartbeats",
                metadata: ["portal.job.id": "\(job.id)", "portal.job.kind": "\(job.kind)", "portal.job.state": "\(job.state)"]
            )
        }
    }

    private func prune() async throws {
        let finished = Duration.seconds(self.settings.retentionHours * 3600)
        let dead = Duration.seconds(self.settings.deadRetentionDays * 86400)
        var total = 0
        while true {
            let deleted = try await self.jobs.prune(finishedRetention: finished, deadRetention: dead)
            total += deleted
            if deleted < 10_000 || Task.isCancelled { break }
        }
        if total > 0 { self.logger.info("pruned finished jobs", metadata: ["portal.job.pruned": "\(total)"]) }
    }

    /// Runs `body` every `interval` until cancelled; an error is logged and the loop goes on. With `jitter`, each
    /// wait is 75-125% of the interval, so that many processes do not all run their chores at the same moment. With
    /// `immediately`, the first run does not wait.
    private func every(
        _ interval: Duration,
        jitter: Bool = false,
        immediately: Bool = false,
        _ body: @Sendable () async throws -> Void
    ) async {
        var first = true
        while !Task.isCancelled {
            let wait = jitter ? interval * Double.random(in: 0.75...1.25) : interval
            if !(first && immediately) {
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    return
                }
            }
            first = false
            do {
                try await body()
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("job maintenance failed; will try again", metadata: ["error": "\(error)"])
            }
        }
    }
}
