public import Logging
import Synchronization

/// Gathers the writes of concurrent callers into one statement, the way PostgreSQL gathers concurrent commits into
/// one WAL flush.
///
/// A caller who arrives while nothing is being written writes at once, alone: nothing waits for a timer and no
/// background task is needed. Callers who arrive while a write is under way wait; when it finishes, the first of
/// them writes everything that gathered meanwhile (at most `maximumBatch` items) for all of them. So under load one
/// statement and one commit serve many callers, and each caller still waits for the commit that holds its item.
///
/// Each caller gets back its own outcome (`write` returns one per item, in the order given) or the write's error.
public final class GroupCommit<Item: Sendable, Outcome: Sendable>: Sendable {
    /// Writes `items` in one statement and returns one outcome per item, in order. The logger is the one of the caller
    /// who happens to write the batch.
    public typealias Write = @Sendable (_ items: [Item], _ logger: Logger) async throws -> [Outcome]

    private typealias Waiter = CheckedContinuation<Turn, any Error>

    private struct Entry: Sendable {
        let item: Item
        let waiter: Waiter
    }

    /// What a waiting caller is woken with: its outcome, or the task of writing a batch that starts with its own item.
    private enum Turn: Sendable {
        case written(Outcome)
        case write(others: [Entry])
    }

    private struct State {
        var writing = false
        var waiting: [Entry] = []
    }

    public let maximumBatch: Int
    /// How long one write may take before its callers get ``DeadlineExceeded`` and the next batch goes out; nil for
    /// no limit. Without it, one write that never comes back (a connection lost in a way the driver does not notice)
    /// would hold every later caller forever.
    public let deadline: Duration?
    private let write: Write
    private let state = Mutex(State())

    public init(maximumBatch: Int = 500, deadline: Duration? = nil, write: @escaping Write) {
        precondition(maximumBatch > 0, "a batch holds at least one item")
        self.maximumBatch = maximumBatch
        self.deadline = deadline
        self.write = write
    }

    /// How many callers are waiting for the write under way to finish.
    var waiting: Int { self.state.withLock { $0.waiting.count } }

    /// Writes `item`, on its own or together with those of concurrent callers; returns when the write that holds it
    /// has finished.
    public func submit(_ item: Item, logger: Logger) async throws -> Outcome {
        let turn = try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let writesNow = self.state.withLock { state -> Bool in
                guard state.writing else {
                    state.writing = true
                    return true
                }
                state.waiting.append(Entry(item: item, waiter: waiter))
                return false
            }
            if writesNow { waiter.resume(returning: .write(others: [])) }
        }
        switch turn {
        case .written(let outcome):
            return outcome
        case .write(let others):
            return try await self.writeBatch(item, others: others, logger: logger)
        }
    }

    private func writeBatch(_ item: Item, others: [Entry], logger: Logger) async throws -> Outcome {
        let result: Result<[Outcome], any Error>
        do {
            // In a task of its own: the writer's cancellation (a client that went away) must not fail the others.
            // It is awaited at once, so it outlives this call only when it passed its deadline.
            let items = [item] + others.map(\.item)
            let write = self.write
            let outcomes =
                if let deadline = self.deadline {
                    try await withDeadline(deadline) { try await write(items, logger) }
                } else {
                    try await Task { try await write(items, logger) }.value
                }
            precondition(outcomes.count == others.count + 1, "a group write returns one outcome per item")
            result = .success(outcomes)
        } catch {
            result = .failure(error)
        }
        // Hand the next batch to its writer before waking this batch's callers, so it goes out without delay.
        let next = self.state.withLock { state -> [Entry] in
            let next = Array(state.waiting.prefix(self.maximumBatch))
            state.waiting.removeFirst(next.count)
            if next.isEmpty { state.writing = false }
            return next
        }
        if let writer = next.first { writer.waiter.resume(returning: .write(others: Array(next.dropFirst()))) }
        switch result {
        case .success(let outcomes):
            for (entry, outcome) in zip(others, outcomes.dropFirst()) { entry.waiter.resume(returning: .written(outcome)) }
            return outcomes[0]
        case .failure(let error):
            for entry in others { entry.waiter.resume(throwing: error) }
            throw error
        }
    }
}
