import Synchronization

/// An operation that did not finish within its deadline.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let deadline: Duration

    public var description: String { "no answer within \(self.deadline)" }
}

/// Runs `operation` and returns what it returns, or throws ``DeadlineExceeded`` once `deadline` has passed. The
/// operation is then cancelled and abandoned: whoever waits for it is released even when it ignores cancellation (a
/// database call that never comes back), while it may still finish on its own later.
///
/// A cancelled caller waits on for the operation (or the deadline), so that work it must finish while shutting
/// down, such as releasing its jobs, still gets done. With `abandonOnCancellation` it is released at once with
/// `CancellationError` instead, and the operation is cancelled and abandoned as at the deadline.
///
/// With `stopped`, the deadline comes sooner once `stopped` returns: `grace` after it, if that is earlier. It must
/// return when its task is cancelled (it is, once the race is decided). A job handler asked to stop gets a grace
/// to do so, and is abandoned after it like one that timed out.
///
/// For writes whose outcome is fenced, so that a late finish is harmless: a job's completion refused because its
/// attempt no longer holds the lease, say; and for reads, whose late finish nobody waits for.
public func withDeadline<T: Sendable>(
    _ deadline: Duration,
    abandonOnCancellation: Bool = false,
    stopped: (@Sendable () async -> Void)? = nil,
    grace: Duration = .zero,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            guard race.start(continuation) else { return }
            race.setWork(
                Task {
                    let result: Result<T, any Error>
                    do {
                        result = .success(try await operation())
                    } catch {
                        result = .failure(error)
                    }
                    race.finish(with: result)
                })
            race.setTimer(
                Task {
                    var limit = deadline
                    if let stopped {
                        limit = await withTaskGroup(of: Duration.self) { timers in
                            timers.addTask {
                                try? await Task.sleep(for: deadline)
                                return deadline
                            }
                            timers.addTask {
                                await stopped()
                                try? await Task.sleep(for: grace)
                                return grace
                            }
                            defer { timers.cancelAll() }
                            return await timers.next() ?? deadline
                        }
                    } else {
                        try? await Task.sleep(for: deadline)
                    }
                    guard !Task.isCancelled else { return }
                    race.finish(with: .failure(DeadlineExceeded(deadline: limit)))
                })
        }
    } onCancel: {
        if abandonOnCancellation { race.finish(with: .failure(CancellationError())) }
    }
}

/// The caller of ``withDeadline(_:abandonOnCancellation:_:)`` is resumed once, by the operation, the timer or its
/// cancellation, whichever comes first; whatever is still running then is cancelled.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        /// Set by the first ``finish(with:)``; kept when it came before ``start(_:)`` (a cancellation).
        var result: Result<T, any Error>?
    }

    private let state = Mutex(State())

    /// Takes the caller's continuation; false when the race was decided before it began (the caller was cancelled
    /// first), and the continuation is then resumed with that outcome.
    func start(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let early = self.state.withLock { state -> Result<T, any Error>? in
            if state.result == nil { state.continuation = continuation }
            return state.result
        }
        if let early { continuation.resume(with: early) }
        return early == nil
    }

    func setWork(_ work: Task<Void, Never>) {
        self.keep(work) { $0.work = work }
    }

    func setTimer(_ timer: Task<Void, Never>) {
        self.keep(timer) { $0.timer = timer }
    }

    /// Stores `task`, or cancels it when the race is already decided.
    private func keep(_ task: Task<Void, Never>, _ store: (inout State) -> Void) {
        let decided = self.state.withLock { state -> Bool in
            store(&state)
            return state.result != nil
        }
        if decided { task.cancel() }
    }

    /// Resumes the caller with `result` unless the race was decided already, and cancels the operation and the timer.
    func finish(with result: Result<T, any Error>) {
        let decided = self.state.withLock { state -> (CheckedContinuation<T, any Error>?, Task<Void, Never>?, Task<Void, Never>?)? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.continuation = nil }
            return (state.continuation, state.work, state.timer)
        }
        guard let (continuation, work, timer) = decided else { return }
        timer?.cancel()
        work?.cancel()
        continuation?.resume(with: result)
    }
}
