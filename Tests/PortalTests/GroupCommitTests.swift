import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import Shared

/// A write that records its batches and can be held open, so a test knows exactly which callers arrived during it.
private final class RecordingWrite: Sendable {
    struct Refused: Error, Equatable {}

    private let batches = Mutex<[[Int]]>([])
    private let gate = AsyncStream<Void>.makeStream()
    let holdFirst: Bool
    let failing: Set<Int>

    init(holdFirst: Bool = false, failing: Set<Int> = []) {
        self.holdFirst = holdFirst
        self.failing = failing
    }

    var written: [[Int]] { self.batches.withLock { $0 } }

    func release() { self.gate.continuation.yield() }

    func callAsFunction(_ items: [Int]) async throws -> [Int] {
        let first = self.batches.withLock { batches in
            batches.append(items)
            return batches.count == 1
        }
        if first, self.holdFirst {
            for await _ in self.gate.stream { break }
        }
        // Like a database client, the write gives up when the task it runs in is cancelled.
        try Task.checkCancellation()
        if !self.failing.isDisjoint(with: items) { throw Refused() }
        return items.map { $0 * 10 }
    }
}

@Suite struct GroupCommitTests {
    let logger = Logger(label: "test")

    /// Starts `count` callers while the first write is held open, waits until all of them queue behind it, then
    /// lets it finish; returns every caller's result by item.
    private func submitDuringHeldWrite(
        _ items: ClosedRange<Int>, write: RecordingWrite, commit: GroupCommit<Int, Int>
    ) async throws -> [Int: Result<Int, RecordingWrite.Refused>] {
        try await withThrowingTaskGroup(of: (Int, Result<Int, RecordingWrite.Refused>).self) { group in
            group.addTask { (0, .success(try await commit.submit(0, logger: self.logger))) }
            while write.written.isEmpty { await Task.yield() }
            for item in items {
                group.addTask {
                    do {
                        return (item, .success(try await commit.submit(item, logger: self.logger)))
                    } catch let error as RecordingWrite.Refused {
                        return (item, .failure(error))
                    }
                }
            }
            while commit.waiting < items.count { await Task.yield() }
            write.release()
            var results: [Int: Result<Int, RecordingWrite.Refused>] = [:]
            for try await (item, result) in group { results[item] = result }
            return results
        }
    }

    @Test func aLoneCallerWritesAtOnceAndAlone() async throws {
        let write = RecordingWrite()
        let commit = GroupCommit<Int, Int> { items, _ in try await write(items) }
        #expect(try await commit.submit(7, logger: self.logger) == 70)
        #expect(try await commit.submit(8, logger: self.logger) == 80)
        #expect(write.written == [[7], [8]])
    }

    @Test func callersArrivingDuringAWriteShareTheNextOne() async throws {
        let write = RecordingWrite(holdFirst: true)
        let commit = GroupCommit<Int, Int> { items, _ in try await write(items) }
        let results = try await self.submitDuringHeldWrite(1...20, write: write, commit: commit)
        #expect(write.written.count == 2)
        #expect(write.written.first == [0])
        #expect(Set(write.written.last ?? []) == Set(1...20))
        for item in 0...20 { #expect(try results[item]?.get() == item * 10) }
        #expect(commit.waiting == 0)
    }

    @Test func batchesStayWithinTheMaximum() async throws {
        let write = RecordingWrite(holdFirst: true)
        let commit = GroupCommit<Int, Int>(maximumBatch: 4) { items, _ in try await write(items) }
        let results = try await self.submitDuringHeldWrite(1...10, write: write, commit: commit)
        #expect(write.written.map(\.count) == [1, 4, 4, 2])
        #expect(Set(write.written.joined()) == Set(0...10))
        #expect(results.count == 11)
    }

    @Test func aFailedWriteFailsEveryCallerInItAndNoOneElse() async throws {
        let write = RecordingWrite(holdFirst: true, failing: [5])
        let commit = GroupCommit<Int, Int>(maximumBatch: 5) { items, _ in try await write(items) }
        let results = try await self.submitDuringHeldWrite(1...10, write: write, commit: commit)
        let failedBatch = try #require(write.written.first { $0.contains(5) })
        for item in 0...10 {
            if failedBatch.contains(item) {
                #expect(results[item].map { if case .failure = $0 { true } else { false } } == true)
            } else {
                #expect(try results[item]?.get() == item * 10)
            }
        }
        // The group is not stuck after a failure.
        #expect(try await commit.submit(11, logger: self.logger) == 110)
    }

    @Test func theWritersCancellationDoesNotFailTheOthersInItsBatch() async throws {
        let write = RecordingWrite(holdFirst: true)
        let commit = GroupCommit<Int, Int> { items, _ in try await write(items) }
        let first = Task { try await commit.submit(0, logger: self.logger) }
        while write.written.isEmpty { await Task.yield() }
        // 1 arrives first, so it writes the next batch, for 2 as well; then its client goes away.
        let writer = Task { try await commit.submit(1, logger: self.logger) }
        while commit.waiting < 1 { await Task.yield() }
        let other = Task { try await commit.submit(2, logger: self.logger) }
        while commit.waiting < 2 { await Task.yield() }
        writer.cancel()
        write.release()
        #expect(try await first.value == 0)
        #expect(try await other.value == 20)
        #expect(try await writer.value == 10)
        #expect(write.written.count == 2)
    }
}

@Suite("Group commit deadline")
struct GroupCommitDeadlineTests {
    @Test("a write that never comes back fails its callers at the deadline, and the callers behind it are written")
    func hungWrite() async throws {
        let gate = AsyncStream<Void>.makeStream()
        let calls = Mutex(0)
        let commit = GroupCommit<Int, Int>(deadline: .milliseconds(300)) { items, _ in
            let first = calls.withLock { calls in
                calls += 1
                return calls == 1
            }
            if first {
                // Like a database call that never answers: it ignores cancellation and waits for the gate.
                for await _ in gate.stream { break }
            }
            return items.map { $0 * 10 }
        }
        let logger = Logger(label: "test")
        let hung = Task { try await commit.submit(1, logger: logger) }
        // The second caller arrives while the first write hangs, so it waits for that write to end.
        while calls.withLock({ $0 }) == 0 { await Task.yield() }
        let behind = Task { try await commit.submit(2, logger: logger) }
        await #expect(throws: DeadlineExceeded.self) { try await hung.value }
        #expect(try await behind.value == 20)
        #expect(try await commit.submit(3, logger: logger) == 30)
        gate.continuation.yield()
    }
}
