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
/// For writes whose outcome is fenced, so that a late finish is harmless: a job's completion refused because its
/// attempt no longer holds the lease, say.
public func withDeadline<T: Sendable>(
    _ deadline: Duration, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation)
        let work = Task {
            let result: Result<T, any Error>
            do {
                result = .success(try await operation())
            } catch {
                result = .failure(error)
            }
            race.finish(with: result)
        }
        race.setTimer(
            Task {
                try? await Task.sleep(for: deadline)
                guard !Task.isCancelled else { return }
                if race.finish(with: .failure(DeadlineExceeded(deadline: deadline))) { work.cancel() }
            })
    }
}

/// The caller of ``withDeadline(_:_:)`` is resumed once, by the operation or by the timer, whichever comes first.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var timer: Task<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        self.state.withLock { $0.continuation = continuation }
    }

    func setTimer(_ timer: Task<Void, Never>) {
        let finished = self.state.withLock { state -> Bool in
            state.timer = timer
            return state.finished
        }
        if finished { timer.cancel() }
    }

    /// Resumes the caller with `result` unless that was done already; true when this call did it.
    @discardableResult
    func finish(with result: Result<T, any Error>) -> Bool {
        let (continuation, timer) = self.state.withLock { state in
            defer {
                state.continuation = nil
                state.finished = true
            }
            return (state.continuation, state.timer)
        }
        guard let continuation else { return false }
        timer?.cancel()
        continuation.resume(with: result)
        return true
    }
}
