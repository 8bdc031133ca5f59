import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

@testable import Shared

/// The job processor as a running service: wake-ups, concurrency, retries, shutdown and lost leases.
@Suite("Job processor")
struct JobProcessorTests {
    @Test("a job starts on NOTIFY, long before the next poll")
    func wakesOnNotify() async throws {
        try await TestDatabase.with { database async throws in
            let done = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { _, _ in
                done.tick()
            }
            let harness = ProcessorHarness(database: database, registry: registry, settings: JobSettings(pollInterval: .seconds(600)))
            try await harness.run { _ async throws in
                // Wait until the processor's LISTEN connection is up, so only the notification can start the job.
                #expect(
                    try await eventually {
                        try await database.scalar(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                            as: Int.self) == 1
                    })
                _ = try await database.jobs.enqueue(try TestJobs.job())
                #expect(try await eventually { done.finished == 1 })
                #expect(
                    try await eventually {
                        try await database.scalar("SELECT count(*) FROM jobs WHERE state = 'completed'", as: Int.self) == 1
                    })
            }
            #expect(harness.metric("portal_job_runs_total", ["queue": "test", "outcome": "completed"]) == 1)
        }
    }

    @Test("a process runs at most its per-queue concurrency, and claims only as many jobs as it has free slots")
    func concurrencyLimit() async throws {
        try await TestDatabase.with { database async throws in
            let counter = ConcurrencyCounter()
            let gate = StopSignal()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { _, _ in
                counter.enter()
                await gate.wait()
                counter.leave()
            }
            let harness = ProcessorHarness(database: database, registry: registry, settings: JobSettings(concurrency: ["test": 3]))
            _ = try await database.client.withConnection {
                try await database.jobs.enqueue(try (0..<10).map { try TestJobs.job($0) }, on: $0)
            }
            try await harness.run { _ async throws in
                #expect(try await eventually { counter.current == 3 })
                #expect(try await database.scalar("SELECT count(*) FROM jobs WHERE state = 'running'", as: Int.self) == 3)
                gate.trigger(.shutdown)
                #expect(try await eventually { counter.finished == 10 })
            }
            #expect(counter.peak == 3)
            #expect(try await database.scalar("SELECT count(*) FROM jobs WHERE state = 'completed'", as: Int.self) == 10)
        }
    }

    @Test("claiming held back by jobs whose outcomes are being written goes on when they are written, not at the next poll")
    func claimsAgainWhenOutcomesAreWritten() async throws {
        try await TestDatabase.with { database async throws in
            let done = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { _, _ in done.tick() }
            // One slot: after two quick jobs, two outcomes are being written and claiming must wait for them. Nothing
            // else wakes the queue: the jobs are in before the processor starts, and the poll is ten minutes away.
            // Without the wake-up it stops after the first few; 20 jobs are enough to tell, and few enough to finish
            // in time on a busy machine, where every commit may take a while.
            let settings = JobSettings(concurrency: ["test": 1], pollInterval: .seconds(600))
            let harness = ProcessorHarness(database: database, registry: registry, settings: settings)
            _ = try await database.client.withConnection {
                try await database.jobs.enqueue(try (0..<20).map { try TestJobs.job($0) }, on: $0)
            }
            try await harness.run { _ async throws in
                #expect(
                    try await eventually {
                        try await database.scalar("SELECT count(*) FROM jobs WHERE state = 'completed'", as: Int.self) == 20
                    })
            }
            #expect(done.finished == 20)
        }
    }

    @Test("a failing job is retried with backoff and ends dead with its last error")
    func retriesThenDead() async throws {
        try await TestDatabase.with { database async throws in
            struct DepartmentDown: Error, CustomStringConvertible {
                var description: String { "department answered 503" }
            }
            let attempts = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { _, _ in
                attempts.tick()
                throw DepartmentDown()
            }
            let harness = ProcessorHarness(database: database, registry: registry, settings: JobSettings(pollInterval: .milliseconds(50)))
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            try await harness.run { _ async throws in
                #expect(try await eventually { try await database.jobs.job(id)?.state == .dead })
            }
            let job = try await database.jobs.job(id)
            #expect(job?.attempt == 3)
            #expect(job?.lastError == "department answered 503")
            #expect(attempts.finished == 3)
            #expect(harness.metric("portal_job_runs_total", ["outcome": "retried"]) == 2)
            #expect(harness.metric("portal_job_runs_total", ["outcome": "dead"]) == 1)
        }
    }

    @Test("a handler that never returns and ignores cancellation is given up after the job timeout; its slot runs the next job")
    func hungHandler() async throws {
        try await TestDatabase.with { database async throws in
            let gate = AsyncStream<Void>.makeStream()
            let started = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { _, _ in
                started.tick()
                if started.finished == 1 {
                    // A call that never answers: deaf to cancellation, it waits for a gate nobody opens until the end.
                    for await _ in gate.stream { break }
                }
            }
            let settings = JobSettings(concurrency: ["test": 1], timeout: .seconds(1), pollInterval: .milliseconds(50))
            let harness = ProcessorHarness(database: database, registry: registry, settings: settings)
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            try await harness.run { _ async throws in
                // The first attempt is given up and fails; the retry (attempt 2) runs in the same single slot.
                #expect(try await eventually { try await database.jobs.job(id)?.state == .completed })
            }
            gate.continuation.yield()
            let job = try await database.jobs.job(id)
            #expect(job?.attempt == 2)
            #expect(started.finished == 2)
            #expect(harness.metric("portal_job_runs_total", ["outcome": "retried"]) == 1)
        }
    }

    @Test("a payload that does not decode fails for good at once; a snooze does not spend an attempt")
    func permanentAndSnooze() async throws {
        try await TestDatabase.with { database async throws in
            let snoozes = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { payload, _ in
                if payload.value == 1 && snoozes.finished == 0 {
                    snoozes.tick()
                    throw JobSnooze(for: .milliseconds(10))
                }
            }
            let harness = ProcessorHarness(database: database, registry: registry, settings: JobSettings(pollInterval: .milliseconds(50)))
            var malformed = try TestJobs.job()
            malformed.payload = #"{"value": "not a number"}"#
            let bad = try await database.jobs.enqueue(malformed).jobID!
            let snoozed = try await database.jobs.enqueue(try TestJobs.job(1)).jobID!
            try await harness.run { _ async throws in
                #expect(try await eventually { try await database.jobs.job(bad)?.state == .dead })
                #expect(try await eventually { try await database.jobs.job(snoozed)?.state == .completed })
            }
            #expect(try await database.jobs.job(bad)?.attempt == 1)
            #expect(try await database.jobs.job(bad)?.lastError?.contains("does not decode") == true)
            #expect(try await database.jobs.job(snoozed)?.attempt == 1, "the snoozed run gave its attempt back")
        }
    }

    @Test("graceful shutdown stops claiming, lets quick jobs finish, and releases the rest without spending an attempt")
    func gracefulShutdown() async throws {
        try await TestDatabase.with { database async throws in
            let running = ConcurrencyCounter()
            let cancelled = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { payload, _ in
                running.enter()
                defer { running.leave() }
                if payload.value == 1 {  // slow: only cancellation ends it
                    do {
                        try await Task.sleep(for: .seconds(3600))
                    } catch {
                        cancelled.tick()
                        throw error
                    }
                }
                // Quick jobs finish as soon as the shutdown begins, through the same graceful-shutdown manager as the
                // processor's own handler. A direct handler, not ServiceLifecycle's `gracefulShutdown()`: that one
                // resumes its waiter through an unstructured task, and one run of the full suite hung in this test
                // (2026-11-23) with the quick job never finishing; a direct handler leaves no hop to lose.
                let shutdown = StopSignal()
                await withGracefulShutdownHandler {
                    await shutdown.wait()
                } onGracefulShutdown: {
                    shutdown.trigger(.shutdown)
                }
            }
            let settings = JobSettings(pollInterval: .milliseconds(50), shutdownTimeout: .milliseconds(500))
            let harness = ProcessorHarness(database: database, registry: registry, settings: settings)
            let slow = try await database.jobs.enqueue(try TestJobs.job(1)).jobID!
            let quick = try await database.jobs.enqueue(try TestJobs.job(2)).jobID!
            let started = ContinuousClock.now
            try await harness.run { group async throws in
                #expect(try await eventually { running.current == 2 })
                await group.triggerGracefulShutdown()
                // The trigger returns before the processor has seen it; the quick job completes only after it has.
                #expect(try await eventually { try await database.jobs.job(quick)?.state == .completed })
                _ = try await database.jobs.enqueue(try TestJobs.job(3))
            }
            #expect(ContinuousClock.now - started < .seconds(30))
            #expect(cancelled.finished == 1)
            #expect(try await database.jobs.job(quick)?.state == .completed)
            let released = try await database.jobs.job(slow)
            #expect(released?.state == .pending && released?.attempt == 0 && released?.leaseOwner == nil)
            #expect(
                try await database.scalar("SELECT count(*) FROM jobs WHERE state = 'pending'", as: Int.self) == 2,
                "nothing was claimed after shutdown began")
            #expect(harness.metric("portal_job_runs_total", ["outcome": "released"]) == 1)
        }
    }

    @Test(
        "a handler that ignores its stop does not hold the shutdown up: it is abandoned after the grace, its job released",
        .timeLimit(.minutes(1)))
    func hungHandlerAtShutdown() async throws {
        try await TestDatabase.with { database async throws in
            let gate = AsyncStream<Void>.makeStream()
            let started = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { _, _ in
                started.tick()
                // A call that never answers: deaf to its stop and its cancellation, until the test ends.
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    Task {
                        for await _ in gate.stream { break }
                        continuation.resume()
                    }
                }
            }
            let settings = JobSettings(
                pollInterval: .milliseconds(50), shutdownTimeout: .milliseconds(300), stopGrace: .milliseconds(500))
            let harness = ProcessorHarness(database: database, registry: registry, settings: settings)
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            let shutdownBegan = Mutex<ContinuousClock.Instant?>(nil)
            try await harness.run { group async throws in
                #expect(try await eventually { started.finished == 1 })
                shutdownBegan.withLock { $0 = .now }
                await group.triggerGracefulShutdown()
            }
            let took = ContinuousClock.now - shutdownBegan.withLock { $0! }
            // The shutdown timeout (0.3 s), then the grace (0.5 s): nowhere near the job timeout (600 s).
            #expect(took < .seconds(15))
            let released = try await database.jobs.job(id)
            #expect(released?.state == .pending && released?.attempt == 0 && released?.leaseOwner == nil)
            gate.continuation.yield()
        }
    }

    @Test("a job whose lease is lost is stopped, and its late outcome is not written")
    func leaseLost() async throws {
        try await TestDatabase.with { database async throws in
            let cancelled = ConcurrencyCounter()
            let running = ConcurrencyCounter()
            var registry = JobRegistry()
            registry.register(TestJobs.work) { _, _ in
                running.enter()
                do {
                    try await Task.sleep(for: .seconds(3600))
                } catch {
                    cancelled.tick()
                    throw error
                }
            }
            let settings = JobSettings(lease: .milliseconds(600), pollInterval: .seconds(600), rescueInterval: .seconds(600))
            let harness = ProcessorHarness(database: database, registry: registry, settings: settings)
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            try await harness.run { _ async throws in
                #expect(try await eventually { running.current == 1 })
                // Another process's rescuer took the job and another worker claimed it.
                try await database.client.query("UPDATE jobs SET lease_owner = 'other-worker', attempt = 2 WHERE id = \(id.rawValue)")
                #expect(try await eventually { cancelled.finished == 1 })
                #expect(try await eventually { harness.metric("portal_job_runs_total", ["outcome": "lease_lost"]) == 1 })
            }
            let job = try await database.jobs.job(id)
            #expect(job?.state == .running && job?.leaseOwner == "other-worker", "the stopped attempt wrote nothing")
        }
    }
}
