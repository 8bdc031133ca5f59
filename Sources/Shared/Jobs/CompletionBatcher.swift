import Synchronization

/// Gathers the completions of concurrently finishing jobs into one fenced `UPDATE`, the way PostgreSQL gathers
/// concurrent commits into one WAL flush: while one batch is being written, the completions that arrive wait and
/// go together in the next. A lone completion is written at once; nothing waits for a timer.
///
/// Each caller still learns whether its own completion was accepted (the fence is per job).
final class CompletionBatcher: Sendable {
    typealias Waiter = CheckedContinuation<Bool, any Error>

    private struct State {
        var waiting: [(job: ClaimedJob, waiter: Waiter)] = []
        var closed = false
    }

    private let jobs: JobQueue
    private let state = Mutex(State())
    private let wakeUp: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)

    /// At most this many completions per statement.
    let maximumBatch = 500

    init(jobs: JobQueue) {
        self.jobs = jobs
        self.wakeUp = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Marks `job` completed. Returns false when its attempt no longer held the lease.
    func complete(_ job: ClaimedJob) async throws -> Bool {
        try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let accepted = self.state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.waiting.append((job, waiter))
                return true
            }
            if accepted {
                self.wakeUp.continuation.yield()
            } else {
                waiter.resume(throwing: CancellationError())
            }
        }
    }

    /// Writes batches until cancelled; run it next to the job runners, and stop it only after they finished.
    func run() async {
        for await _ in self.wakeUp.stream {
            while true {
                let batch = self.state.withLock { state -> [(job: ClaimedJob, waiter: Waiter)] in
                    let batch = Array(state.waiting.prefix(self.maximumBatch))
                    state.waiting.removeFirst(batch.count)
                    return batch
                }
                if batch.isEmpty { break }
                do {
                    let refused = try await self.jobs.complete(batch.map(\.job))
                    for (job, waiter) in batch { waiter.resume(returning: !refused.contains(job.id)) }
                } catch {
                    for (_, waiter) in batch { waiter.resume(throwing: error) }
                }
            }
            if Task.isCancelled { break }
        }
        let abandoned = self.state.withLock { state -> [Waiter] in
            state.closed = true
            defer { state.waiting = [] }
            return state.waiting.map(\.waiter)
        }
        for waiter in abandoned { waiter.resume(throwing: CancellationError()) }
    }
}
