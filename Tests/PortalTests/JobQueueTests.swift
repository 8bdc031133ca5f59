import Foundation
import Logging
import PostgresNIO
import Testing

@testable import Shared

/// The queue's SQL, one operation at a time, against a real PostgreSQL.
@Suite("Job queue")
struct JobQueueTests {
    let owner = "test-owner"
    let lease = Duration.seconds(30)

    @Test("a job enqueued in a transaction exists only if the transaction commits")
    func transactional() async throws {
        try await TestDatabase.with { database async throws in
            struct BusinessFailure: Error {}
            await #expect(throws: (any Error).self) {
                try await database.client.withTransaction(logger: database.logger) { connection in
                    _ = try await database.jobs.enqueue(try TestJobs.job(1), on: connection)
                    throw BusinessFailure()
                }
            }
            #expect(try await database.scalar("SELECT count(*) FROM jobs", as: Int.self) == 0)

            let result = try await database.client.withTransaction(logger: database.logger) { connection in
                try await database.jobs.enqueue(try TestJobs.job(2), on: connection)
            }
            let claimed = try await database.jobs.claim(queue: "test", limit: 10, owner: self.owner, lease: self.lease)
            #expect(claimed.map(\.id) == [result.jobID].compactMap { $0 })
            #expect(try claimed[0].decodePayload(as: TestJobs.Payload.self) == TestJobs.Payload(value: 2))
        }
    }

    @Test("a batch is one insert; results come back in input order, duplicates marked")
    func batch() async throws {
        try await TestDatabase.with { database async throws in
            let existing = try await database.jobs.enqueue(try TestJobs.job(0, uniqueKey: "taken"))
            let jobs = try [
                TestJobs.job(1), TestJobs.job(2, uniqueKey: "a"), TestJobs.job(3, uniqueKey: "taken"),
                TestJobs.job(4, uniqueKey: "a"), TestJobs.job(5),
            ]
            let results = try await database.client.withTransaction(logger: database.logger) { connection in
                try await database.jobs.enqueue(jobs, on: connection)
            }
            #expect(results.count == 5)
            #expect(results[2] == .duplicate(uniqueKey: "taken"))
            #expect(results[3] == .duplicate(uniqueKey: "a"))
            let ids = [results[0], results[1], results[4]].compactMap(\.jobID)
            #expect(ids.count == 3 && ids == ids.sorted())
            #expect(existing.jobID != nil)
            // Each inserted id carries its own input's payload.
            for (index, result) in [(0, results[0]), (1, results[1]), (4, results[4])] {
                let value = try await database.scalar(
                    "SELECT (payload->>'value')::int FROM jobs WHERE id = \(result.jobID!.rawValue)", as: Int.self)
                #expect(value == index + 1)
            }
        }
    }

    @Test("a unique key is free again once its job has finished")
    func uniqueKeyLifecycle() async throws {
        try await TestDatabase.with { database async throws in
            let first = try await database.jobs.enqueue(try TestJobs.job(uniqueKey: "pull:dept-1"))
            #expect(first.jobID != nil)
            #expect(try await database.jobs.enqueue(try TestJobs.job(uniqueKey: "pull:dept-1")) == .duplicate(uniqueKey: "pull:dept-1"))
            let claimed = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)
            // Still a duplicate while it runs.
            #expect(try await database.jobs.enqueue(try TestJobs.job(uniqueKey: "pull:dept-1")) == .duplicate(uniqueKey: "pull:dept-1"))
            #expect(try await database.jobs.complete(claimed).isEmpty)
            #expect(try await database.jobs.enqueue(try TestJobs.job(uniqueKey: "pull:dept-1")).jobID != nil)
        }
    }

    @Test("scheduled jobs wait for run_at; higher priority and older jobs are claimed first; limit is honoured")
    func claimOrder() async throws {
        try await TestDatabase.with { database async throws in
            let future = try await database.jobs.enqueue(try TestJobs.job(1, runAt: Date().addingTimeInterval(3600))).jobID!
            let low = try await database.jobs.enqueue(try TestJobs.job(2)).jobID!
            let high = try await database.jobs.enqueue(try TestJobs.job(3, priority: 5)).jobID!
            let lowLater = try await database.jobs.enqueue(try TestJobs.job(4)).jobID!
            _ = try await database.jobs.enqueue(try NewJob(TestJobs.other, payload: .init(value: 5)))

            let two = try await database.jobs.claim(queue: "test", limit: 2, owner: self.owner, lease: self.lease)
            #expect(two.map(\.id) == [high, low])
            #expect(two.allSatisfy { $0.attempt == 1 && $0.queue == "test" })
            let rest = try await database.jobs.claim(queue: "test", limit: 10, owner: self.owner, lease: self.lease)
            #expect(rest.map(\.id) == [lowLater], "the scheduled job is not due and the other queue is not ours")

            try await database.client.query("UPDATE jobs SET run_at = now() - interval '1 second' WHERE id = \(future.rawValue)")
            let due = try await database.jobs.claim(queue: "test", limit: 10, owner: self.owner, lease: self.lease)
            #expect(due.map(\.id) == [future])
        }
    }

    @Test("concurrent claims never hand the same job to two workers")
    func skipLocked() async throws {
        try await TestDatabase.with { database async throws in
            let jobs = try (0..<300).map { try TestJobs.job($0) }
            _ = try await database.client.withConnection { try await database.jobs.enqueue(jobs, on: $0) }
            let claims = try await withThrowingTaskGroup(of: [JobID].self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        var mine: [JobID] = []
                        while true {
                            let batch = try await database.jobs.claim(queue: "test", limit: 7, owner: "w\(worker)", lease: .seconds(30))
                            if batch.isEmpty { return mine }
                            mine += batch.map(\.id)
                        }
                    }
                }
                return try await group.reduce(into: [JobID]()) { $0 += $1 }
            }
            #expect(claims.count == 300)
            #expect(Set(claims).count == 300)
        }
    }

    @Test("a presumed-dead worker cannot complete, fail or snooze a job the rescuer took back")
    func fencing() async throws {
        try await TestDatabase.with { database async throws in
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            let stale = try await database.jobs.claim(queue: "test", limit: 1, owner: "worker-a", lease: .milliseconds(50))[0]
            let expired = try await eventually { try await !database.jobs.rescueExpired().isEmpty }
            #expect(expired)
            let fresh = try await database.jobs.claim(queue: "test", limit: 1, owner: "worker-b", lease: self.lease)[0]
            #expect(fresh.id == id && fresh.attempt == 2)

            #expect(try await database.jobs.complete([stale]) == [id], "the stale completion must be refused")
            #expect(try await database.jobs.fail(stale, error: "late", retryAfter: .zero, giveUp: true) == nil)
            #expect(try await database.jobs.snooze(stale, for: .seconds(1)) == false)
            #expect(try await database.jobs.release([stale]).isEmpty)
            #expect(try await database.jobs.job(id)?.state == .running)

            #expect(try await database.jobs.complete([fresh]).isEmpty)
            #expect(try await database.jobs.job(id)?.state == .completed)
        }
    }

    @Test("the rescuer returns expired jobs with the attempt counted, and kills the last attempt")
    func rescue() async throws {
        try await TestDatabase.with { database async throws in
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            for attempt in 1...3 {
                let claimed = try await database.jobs.claim(queue: "test", limit: 1, owner: "dies", lease: .milliseconds(20))
                #expect(claimed.first?.attempt == attempt)
                var rescued: [JobQueue.RescuedJob] = []
                _ = try await eventually {
                    rescued = try await database.jobs.rescueExpired()
                    return !rescued.isEmpty
                }
                #expect(rescued == [.init(id: id, queue: "test", kind: TestJobs.work.name, state: attempt < 3 ? .pending : .dead)])
            }
            let job = try await database.jobs.job(id)
            #expect(job?.state == .dead)
            #expect(job?.lastError?.contains("lease expired") == true)
        }
    }

    @Test("a live lease is extended by the heartbeat and not rescued")
    func heartbeat() async throws {
        try await TestDatabase.with { database async throws in
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            let claim = try await database.jobs.claim(queue: "test", limit: 1, owner: "alive", lease: .milliseconds(1))[0]
            #expect(try await database.jobs.extendLeases(of: [claim.fence], owner: "alive", lease: .seconds(60)) == [claim.fence])
            #expect(try await database.jobs.extendLeases(of: [claim.fence], owner: "someone-else", lease: .seconds(60)).isEmpty)
            let earlier = JobAttempt(id: id, attempt: claim.attempt - 1)
            #expect(
                try await database.jobs.extendLeases(of: [earlier], owner: "alive", lease: .seconds(60)).isEmpty,
                "an earlier attempt of the same job by the same process holds nothing"
            )
            #expect(try await database.jobs.rescueExpired().isEmpty)
        }
    }

    @Test("failures retry with backoff until the last attempt; give-up errors go straight to dead")
    func failures() async throws {
        try await TestDatabase.with { database async throws in
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            let first = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)[0]
            #expect(
                try await database.jobs.fail(first, error: "department answered 503", retryAfter: .seconds(60), giveUp: false) == .pending)
            #expect(
                try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease).isEmpty,
                "backoff delays the retry")
            let waiting = try await database.scalar(
                "SELECT extract(epoch FROM run_at - now())::float8 FROM jobs WHERE id = \(id.rawValue)", as: Double.self)
            #expect(waiting > 50 && waiting <= 60)

            try await database.client.query("UPDATE jobs SET run_at = now() WHERE id = \(id.rawValue)")
            let second = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)[0]
            #expect(second.attempt == 2)
            #expect(try await database.jobs.fail(second, error: "malformed answer", retryAfter: .zero, giveUp: true) == .dead)
            let dead = try await database.jobs.job(id)
            #expect(dead?.state == .dead && dead?.lastError == "malformed answer" && dead?.attempt == 2)

            let other = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            for attempt in 1...3 {
                let claimed = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)[0]
                let state = try await database.jobs.fail(claimed, error: "boom \(attempt)", retryAfter: .zero, giveUp: false)
                #expect(state == (attempt < 3 ? .pending : .dead), "max_attempts is 3 for this kind")
            }
            #expect(try await database.jobs.job(other)?.lastError == "boom 3")
        }
    }

    @Test("snooze and release give the attempt back; cancel only touches pending jobs")
    func snoozeReleaseCancel() async throws {
        try await TestDatabase.with { database async throws in
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            let claimed = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)[0]
            #expect(try await database.jobs.snooze(claimed, for: .seconds(120)))
            var job = try await database.jobs.job(id)
            #expect(job?.state == .pending && job?.attempt == 0 && (job?.runAt ?? .distantPast) > Date().addingTimeInterval(100))

            try await database.client.query("UPDATE jobs SET run_at = now() WHERE id = \(id.rawValue)")
            let again = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)[0]
            #expect(again.attempt == 1)
            #expect(try await database.jobs.release([again]) == [id])
            job = try await database.jobs.job(id)
            #expect(job?.state == .pending && job?.attempt == 0)

            let running = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)[0]
            #expect(try await database.jobs.cancel(id) == false, "a running job is not cancelled")
            #expect(try await database.jobs.release([running]) == [id])
            #expect(try await database.jobs.cancel(id))
            #expect(try await database.jobs.job(id)?.state == .cancelled)
            #expect(try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease).isEmpty)
        }
    }

    @Test("retention prunes old finished jobs and nothing else")
    func retention() async throws {
        try await TestDatabase.with { database async throws in
            for _ in 0..<4 { _ = try await database.jobs.enqueue(try TestJobs.job()) }
            let claimed = try await database.jobs.claim(queue: "test", limit: 3, owner: self.owner, lease: self.lease)
            #expect(try await database.jobs.complete([claimed[0], claimed[1]]).isEmpty)
            #expect(try await database.jobs.fail(claimed[2], error: "x", retryAfter: .zero, giveUp: true) == .dead)
            // Age the first completed job and the dead one past their retention.
            try await database.client.query(
                "UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id IN (\(claimed[0].id.rawValue), \(claimed[2].id.rawValue))"
            )
            let pruned = try await database.jobs.prune(finishedRetention: .seconds(86400), deadRetention: .seconds(30 * 86400))
            #expect(pruned == 1)
            #expect(try await database.jobs.job(claimed[0].id) == nil)
            #expect(try await database.jobs.job(claimed[1].id)?.state == .completed)
            #expect(try await database.jobs.job(claimed[2].id)?.state == .dead, "dead jobs are kept longer for operators")
            #expect(try await database.scalar("SELECT count(*) FROM jobs WHERE state = 'pending'", as: Int.self) == 1)
        }
    }

    @Test("queue depth counts available, scheduled, running and dead jobs per queue")
    func depth() async throws {
        try await TestDatabase.with { database async throws in
            for _ in 0..<3 { _ = try await database.jobs.enqueue(try TestJobs.job()) }
            _ = try await database.jobs.enqueue(try TestJobs.job(runAt: Date().addingTimeInterval(600)))
            _ = try await database.jobs.enqueue(try NewJob(TestJobs.other, payload: .init(value: 1)))
            _ = try await database.jobs.claim(queue: "test", limit: 1, owner: self.owner, lease: self.lease)
            let depth = try await database.jobs.depth()
            #expect(depth.map(\.queue) == ["other", "test"])
            let test = try #require(depth.last)
            #expect((test.available, test.scheduled, test.running, test.dead) == (2, 1, 1, 0))
        }
    }

    @Test("one NOTIFY per queue per committed transaction, none on rollback or for scheduled jobs; release and rescue wake too")
    func notifications() async throws {
        try await TestDatabase.with { database async throws in
            let listener = try await PostgresConnection.connect(
                configuration: .init(
                    host: database.settings.host, port: database.settings.port, username: database.settings.username,
                    password: database.settings.password, database: database.settings.database, tls: .disable
                ),
                id: 99,
                logger: database.logger
            )
            defer { Task { try? await listener.close() } }
            let received = try await listener.listen(on: JobQueue.notificationChannel) { notifications in
                // Two queues in one transaction, spread over two enqueue calls.
                try await database.client.withTransaction(logger: database.logger) { connection in
                    _ = try await database.jobs.enqueue(try (0..<50).map { try TestJobs.job($0) }, on: connection)
                    _ = try await database.jobs.enqueue(try NewJob(TestJobs.other, payload: .init(value: 1)), on: connection)
                    _ = try await database.jobs.enqueue(try TestJobs.job(99), on: connection)
                }
                // A rolled-back transaction and a scheduled job notify nobody.
                try? await database.client.withTransaction(logger: database.logger) { connection in
                    _ = try await database.jobs.enqueue(try TestJobs.job(), on: connection)
                    throw CancellationError()
                }
                _ = try await database.jobs.enqueue(try TestJobs.job(runAt: Date().addingTimeInterval(600)))
                // A released job and a rescued one are runnable again: each wakes its queue.
                let released = try await database.jobs.claim(queue: "test", limit: 1, owner: "me", lease: .seconds(60))
                #expect(try await database.jobs.release(released).count == 1)
                _ = try await database.jobs.claim(queue: "test", limit: 1, owner: "dies", lease: .milliseconds(1))
                #expect(try await eventually { try await !database.jobs.rescueExpired().isEmpty })
                // Notifications arrive in commit order: the marker tells that everything before it has arrived.
                try await database.client.query("SELECT pg_notify(\(JobQueue.notificationChannel), 'end-of-test')")
                var payloads: [String] = []
                for try await notification in notifications {
                    if notification.payload == "end-of-test" { break }
                    payloads.append(notification.payload)
                }
                return payloads
            }
            // The batch's transaction sends one per queue (in either order), then the release and the rescue one each.
            #expect(Set(received.prefix(2)) == ["other", "test"] && received.dropFirst(2) == ["test", "test"], "\(received)")
        }
    }

    /// The stale write arrives while the rescue and the new claim are still uncommitted, so it waits for the row
    /// lock and then sees the new row version: its fence must be checked against that version.
    @Test("a stale worker's write that waits for the row lock is still refused", arguments: ["fail", "complete", "snooze"])
    func fencingUnderLockWait(operation: String) async throws {
        try await TestDatabase.with { database async throws in
            let id = try await database.jobs.enqueue(try TestJobs.job()).jobID!
            let stale = try await database.jobs.claim(queue: "test", limit: 1, owner: "worker-a", lease: self.lease)[0]
            let settings = database.settings
            let other = try await PostgresConnection.connect(
                configuration: .init(
                    host: settings.host, port: settings.port, username: settings.username, password: settings.password,
                    database: settings.database, tls: .disable
                ),
                id: 7,
                logger: database.logger
            )
            // The rescuer and worker B, in one transaction that is not committed yet.
            try await other.query("BEGIN", logger: database.logger)
            try await other.query(
                "UPDATE jobs SET attempt = 2, lease_owner = 'worker-b', lease_expires_at = now() + interval '1 minute' WHERE id = \(id.rawValue)",
                logger: database.logger
            )
            let accepted = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    switch operation {
                    case "fail": try await database.jobs.fail(stale, error: "late", retryAfter: .zero, giveUp: false) != nil
                    case "complete": try await database.jobs.complete([stale]).isEmpty
                    default: try await database.jobs.snooze(stale, for: .zero)
                    }
                }
                let waiting = try await eventually {
                    try await database.scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        as: Int.self
                    ) == 1
                }
                #expect(waiting, "the stale write should be waiting for the row lock")
                try await other.query("COMMIT", logger: database.logger)
                return try await group.next()!
            }
            try await other.close()
            #expect(accepted == false)
            let job = try await database.jobs.job(id)
            #expect(job?.state == .running && job?.leaseOwner == "worker-b" && job?.attempt == 2 && job?.lastError == nil)
        }
    }
}
