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
}
