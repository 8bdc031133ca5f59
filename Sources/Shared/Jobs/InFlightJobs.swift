import Synchronization

/// Why a running handler is asked to stop.
enum StopReason: Sendable, Equatable {
    /// Graceful shutdown ran out of time: release the job without spending its attempt.
    case shutdown
    /// The heartbeat found the lease gone: another attempt may be running, so write nothing.
    case leaseLost
}

/// A one-shot signal that tells a running handler to stop. ``wait()`` returns once it is triggered, or when the
/// waiting task is cancelled; any number of tasks may wait.
final class StopSignal: Sendable {
    private struct State {
        var reason: StopReason?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    var reason: StopReason? { self.state.withLock { $0.reason } }

    func trigger(_ reason: StopReason) {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        let id = self.state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = self.state.withLock { state -> Bool in
                    if state.reason != nil || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

/// The jobs this process is running, for the heartbeat (which leases to extend) and for shutdown (what to wait
/// for, and what to stop).
///
/// Entries are kept per claim, not per job id: the same job can be claimed again by this process while an earlier
/// attempt's handler is still winding down (its lease was lost and the job was rescued, or it was snoozed for zero
/// seconds), and the two must be stopped, counted and removed separately.
final class InFlightJobs: Sendable {
    private struct Entry {
        let job: ClaimedJob
        let stop: StopSignal
        /// Whether the handler still runs. A job whose handler has returned no longer takes a slot, but stays here
        /// (for the heartbeat and the shutdown drain) until its outcome is written.
        var handlerRunning = true
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var idleWaiters: [String: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// Tracks a new claim; the returned signal identifies it from then on.
    func insert(_ job: ClaimedJob) -> StopSignal {
        let stop = StopSignal()
        self.state.withLock { $0.entries[ObjectIdentifier(stop)] = Entry(job: job, stop: stop) }
        return stop
    }

    /// Frees the claim's slot: its handler has returned, and only its outcome remains to be written.
    func handlerFinished(_ claim: StopSignal) {
        self.state.withLock { $0.entries[ObjectIdentifier(claim)]?.handlerRunning = false }
    }

    func remove(_ claim: StopSignal) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let queue = state.entries.removeValue(forKey: ObjectIdentifier(claim))?.job.queue else { return nil }
            guard !state.entries.values.contains(where: { $0.job.queue == queue }) else { return nil }
            return state.idleWaiters.removeValue(forKey: queue)
        }
        waiter?.resume()
    }

    /// The slots of `queue` in use: handlers still running.
    func count(queue: String) -> Int {
        self.counts(queue: queue).running
    }

    /// Of `queue`'s claims: those whose handlers still run, and all held (also those whose outcomes are being written).
    func counts(queue: String) -> (running: Int, held: Int) {
        self.state.withLock { state in
            var counts = (running: 0, held: 0)
            for entry in state.entries.values where entry.job.queue == queue {
                counts.held += 1
                if entry.handlerRunning { counts.running += 1 }
            }
            return counts
        }
    }

    /// The attempts whose leases the heartbeat keeps alive.
    var attempts: [JobAttempt] { self.state.withLock { $0.entries.values.map(\.job.fence) } }

    /// The attempts whose handlers still run (not those only writing their outcome).
    var runningAttempts: Set<JobAttempt> {
        self.state.withLock { Set($0.entries.values.filter(\.handlerRunning).map(\.job.fence)) }
    }

    /// Stops the handlers of the given attempts.
    func stop(_ attempts: Set<JobAttempt>, reason: StopReason) {
        let signals = self.state.withLock { $0.entries.values.filter { attempts.contains($0.job.fence) }.map(\.stop) }
        for signal in signals { signal.trigger(reason) }
    }

    func stopAll(queue: String, reason: StopReason) {
        let signals = self.state.withLock { $0.entries.values.filter { $0.job.queue == queue }.map(\.stop) }
        for signal in signals { signal.trigger(reason) }
    }

    /// Waits until no job of `queue` is running, or `timeout` passes. Returns whether the queue became idle.
    func waitUntilIdle(queue: String, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.waitUntilIdle(queue: queue)
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let idle = await group.next() ?? false
            group.cancelAll()
            return idle || !self.state.withLock { $0.entries.values.contains { $0.job.queue == queue } }
        }
    }

    private func waitUntilIdle(queue: String) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let idle = self.state.withLock { state -> Bool in
                    if Task.isCancelled || !state.entries.values.contains(where: { $0.job.queue == queue }) { return true }
                    state.idleWaiters[queue] = continuation
                    return false
                }
                if idle { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.idleWaiters.removeValue(forKey: queue) }
            waiter?.resume()
        }
    }
}

/// One coalescing wake-up stream per queue: a NOTIFY, a poll tick or a freed slot each ask the queue's runner to
/// look for work; wake-ups that arrive while it is busy collapse into one.
struct QueueWakeUps: Sendable {
    private let streams: [String: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)]
    private let finished = FinishedFlag()

    init(queues: [String]) {
        var streams: [String: (AsyncStream<Void>, AsyncStream<Void>.Continuation)] = [:]
        for queue in queues {
            let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            continuation.yield()  // look for work at start
            streams[queue] = (stream, continuation)
        }
        self.streams = streams
    }

    func stream(for queue: String) -> AsyncStream<Void> {
        self.streams[queue]?.stream ?? AsyncStream { $0.finish() }
    }

    func wake(_ queue: String) {
        self.streams[queue]?.continuation.yield()
    }

    func wakeAll() {
        for (_, entry) in self.streams { entry.continuation.yield() }
    }

    /// Ends every stream: the runners stop claiming and start draining.
    func finishAll() {
        self.finished.value.store(true, ordering: .releasing)
        for (_, entry) in self.streams { entry.continuation.finish() }
    }

    /// True once shutdown began: a runner checks it before each claim, since a wake-up that was already buffered is
    /// still delivered after the stream finished.
    var isFinished: Bool { self.finished.value.load(ordering: .acquiring) }
}

private final class FinishedFlag: Sendable {
    let value = Atomic<Bool>(false)
}
