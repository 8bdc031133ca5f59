import Foundation
import Testing

@testable import Shared

@Suite("Stop signal")
struct StopSignalTests {
    @Test("every waiter is released by one trigger, and later waiters return at once")
    func releasesAllWaiters() async {
        let signal = StopSignal()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<5 { group.addTask { await signal.wait() } }
            signal.trigger(.shutdown)
            await group.waitForAll()
        }
        await signal.wait()
        #expect(signal.reason == .shutdown)
    }

    @Test("the first reason wins")
    func firstReasonWins() {
        let signal = StopSignal()
        signal.trigger(.leaseLost)
        signal.trigger(.shutdown)
        #expect(signal.reason == .leaseLost)
    }

    @Test("a cancelled waiter returns without a trigger")
    func cancellation() async {
        let signal = StopSignal()
        let waiter = Task { await signal.wait() }
        waiter.cancel()
        await waiter.value
        #expect(signal.reason == nil)
    }

    @Test("two claims of the same job in one process are tracked, stopped and removed separately")
    func inFlightPerClaim() {
        let inFlight = InFlightJobs()
        func claim(_ attempt: Int) -> ClaimedJob {
            ClaimedJob(
                id: JobID(rawValue: 42), queue: "test", kind: "k", payload: "{}", attempt: attempt, maxAttempts: 5,
                leaseOwner: "me", createdAt: Date(), startDelay: .zero, traceID: TraceContext.newTraceID()
            )
        }
        let first = inFlight.insert(claim(1))
        let second = inFlight.insert(claim(2))
        #expect(inFlight.count(queue: "test") == 2)
        #expect(
            Set(inFlight.attempts) == [JobAttempt(id: JobID(rawValue: 42), attempt: 1), JobAttempt(id: JobID(rawValue: 42), attempt: 2)])

        inFlight.stop([JobAttempt(id: JobID(rawValue: 42), attempt: 1)], reason: .leaseLost)
        #expect(first.reason == .leaseLost)
        #expect(second.reason == nil, "the newer attempt keeps running")

        inFlight.handlerFinished(first)
        #expect(inFlight.count(queue: "test") == 1)
        inFlight.remove(first)
        #expect(inFlight.attempts == [JobAttempt(id: JobID(rawValue: 42), attempt: 2)], "removing the old claim leaves the new one tracked")
    }
}
