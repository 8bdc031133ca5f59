import Foundation
import PostgresNIO
import Testing

@testable import Shared
@testable import SyncWorker

/// A department's change feed pulled by the sync worker (docs/FEED.md): every change applied once, in order, with
/// the cursor stored in the same transaction; bad changes and broken departments held to themselves.
@Suite("Change feed")
struct FeedSyncTests {
    @Test("a feed's changes arrive in order, page by page; each page is asked for once and the cursor ends at the last change")
    func changesArriveInOrder() async throws {
        try await TestDatabase.with { database async throws in
            try await DepartmentSimulator.with(logger: database.logger) { feed async throws in
                // 30 cases; each gets three statuses in three separate changes, spread so that one page holds
                // several changes of the same case (they must be applied in the order given).
                var changes: [String] = []
                for step in 0..<3 {
                    for n in 0..<30 {
                        let status = ["ontvangen", "in-behandeling", "besluit"][step]
                        changes.append(
                            SyncHarness.change(
                                "Z-\(n)", bsn: step == 0 ? SyncHarness.bsn(n) : nil, event: "Z-\(n)-\(step)", status: status,
                                at: "2026-11-0\(step + 2)T10:00:00Z"))
                    }
                }
                feed.append(changes)
                let department = try await SyncHarness.feedDepartment(database, feed: feed.feedURL, token: "feed-token")
                var settings = SyncSettings()
                settings.pageSize = 7
                try await SyncHarness.with(database, settings: settings) { () async throws in
                    #expect(try await eventually { try await Self.cursor(database, department) == "90" })
                }
                // Every case ended at its final status, with its three events in order.
                let current = try await database.scalar(
                    "SELECT count(*) FROM cases WHERE status_code = 'besluit' AND status_final",
                    as: Int.self)
                #expect(current == 30)
                #expect(try await database.scalar("SELECT count(*) FROM status_events", as: Int.self) == 90)
                let misordered = try await database.scalar(
                    """
                    SELECT count(*) FROM status_events a JOIN status_events b ON a.case_id = b.case_id
                    WHERE right(a.event_id, 1) < right(b.event_id, 1) AND a.id > b.id
                    """, as: Int.self)
                #expect(misordered == 0)
                // Each page was asked for once, from the cursor the previous one ended at, with the feed's token.
                let pulls = feed.requests.filter { $0.path == "/feed/changes" }
                let afters = pulls.map { Int($0.query["after"] ?? "0") ?? -1 }
                #expect(Array(afters.prefix(13)) == Array(stride(from: 0, through: 84, by: 7)))
                #expect(Set(afters.dropFirst(13)).allSatisfy { $0 == 90 })
                #expect(pulls.allSatisfy { $0.authorization == "Bearer feed-token" && $0.query["limit"] == "7" })
                let applied = try await database.scalar(
                    "SELECT changes_applied FROM department_sync WHERE department_id = \(department)", as: Int64.self)
                #expect(applied == 90)
            }
        }
    }

    @Test("a change that cannot be applied is recorded without its content and the feed moves on")
    func badChangesAreRefused() async throws {
        try await TestDatabase.with { database async throws in
            try await DepartmentSimulator.with(logger: database.logger) { feed async throws in
                feed.append([
                    SyncHarness.change("Z-1", bsn: SyncHarness.bsn(1), event: "Z-1-0", status: "ontvangen", at: "2026-11-02T10:00:00Z"),
                    // An unknown status type, an invalid BSN, and something that is not a change at all.
                    SyncHarness.change("Z-1", event: "Z-1-1", status: "verzonnen", at: "2026-11-03T10:00:00Z"),
                    SyncHarness.change("Z-2", bsn: "123456789", event: "Z-2-0", status: "ontvangen", at: "2026-11-02T10:00:00Z"),
                    #"[1, 2, 3]"#,
                    SyncHarness.change("Z-1", event: "Z-1-2", status: "besluit", at: "2026-11-04T10:00:00Z"),
                ])
                let department = try await SyncHarness.feedDepartment(database, feed: feed.feedURL)
                try await SyncHarness.with(database) { () async throws in
                    #expect(try await eventually { try await Self.cursor(database, department) == "5" })
                }
                #expect(try await database.scalar("SELECT count(*) FROM status_events", as: Int.self) == 2)
                var reasons: [String] = []
                for try await reason in try await database.client.query("SELECT reason FROM sync_refusals ORDER BY id").decode(String.self)
                {
                    reasons.append(reason)
                }
                #expect(reasons.count == 3)
                #expect(reasons[0].contains("verzonnen"))
                #expect(reasons[1] == "invalid change: case.subject.bsn: invalid")
                #expect(reasons[2] == "invalid change: (the change itself): type, reference: required")
                #expect(!reasons.joined().contains("123456789"))
                let refused = try await database.scalar(
                    "SELECT changes_refused FROM department_sync WHERE department_id = \(department)", as: Int64.self)
                #expect(refused == 3)
            }
        }
    }

    @Test("a failing department is backed off and flagged while a healthy one keeps flowing; garbage fails clearly")
    func brokenDepartmentIsIsolated() async throws {
        try await TestDatabase.with { database async throws in
            try await DepartmentSimulator.with(logger: database.logger) { broken async throws in
                try await DepartmentSimulator.with(logger: database.logger) { healthy async throws in
                    broken.setBehaviour(.failing)
                    broken.append([
                        SyncHarness.change("B-1", bsn: SyncHarness.bsn(1), event: "B-1", status: "ontvangen", at: "2026-11-02T10:00:00Z")
                    ])
                    let brokenID = try await SyncHarness.feedDepartment(database, name: "Kapot", feed: broken.feedURL)
                    let healthyID = try await SyncHarness.feedDepartment(database, name: "Gezond", feed: healthy.feedURL)
                    // One worker slot: the broken department's job must give it back, not hold it.
                    try await SyncHarness.with(database, concurrency: 1) { () async throws in
                        // The breaker opens after five failures in a row; meanwhile the healthy feed keeps flowing.
                        #expect(
                            try await eventually {
                                try await database.scalar(
                                    "SELECT count(*) FROM department_sync WHERE department_id = \(brokenID) AND open_until > now()",
                                    as: Int.self) == 1
                            })
                        for batch in 0..<3 {
                            healthy.append([
                                SyncHarness.change(
                                    "H-\(batch)", bsn: SyncHarness.bsn(10 + batch), event: "H-\(batch)", status: "ontvangen",
                                    at: "2026-11-02T10:00:00Z")
                            ])
                            #expect(try await eventually { try await Self.cursor(database, healthyID) == "\(batch + 1)" })
                        }
                        let status = try await ConnectorStore().status(client: database.client, logger: database.logger)
                        let flagged = try #require(status.first { $0.departmentID == brokenID })
                        #expect(flagged.consecutiveFailures >= DepartmentGate.failuresToOpen && flagged.openUntil != nil)
                        #expect(flagged.lastError?.contains("500") == true)
                        #expect(status.first { $0.departmentID == healthyID }?.consecutiveFailures == 0)
                        // While open, the broken department gets no requests at all.
                        let before = broken.requests.count
                        healthy.append([
                            SyncHarness.change(
                                "H-9", bsn: SyncHarness.bsn(20), event: "H-9", status: "ontvangen", at: "2026-11-02T10:00:00Z")
                        ])
                        #expect(try await eventually { try await Self.cursor(database, healthyID) == "4" })
                        #expect(broken.requests.count == before)
                    }
                    // Nothing of the broken department was applied, and its cursor did not move.
                    #expect(try await Self.cursor(database, brokenID) == nil)
                }
            }
        }
    }

    @Test("a page that is not JSON fails the pull with a clear reason and moves nothing")
    func garbageFailsClearly() async throws {
        try await TestDatabase.with { database async throws in
            try await DepartmentSimulator.with(logger: database.logger) { feed async throws in
                feed.setBehaviour(.garbage)
                feed.append([
                    SyncHarness.change("Z-1", bsn: SyncHarness.bsn(1), event: "Z-1", status: "ontvangen", at: "2026-11-02T10:00:00Z")
                ])
                let department = try await SyncHarness.feedDepartment(database, feed: feed.feedURL)
                try await SyncHarness.with(database) { () async throws in
                    let failed = try await eventually {
                        let error = try await database.scalar(
                            "SELECT coalesce(last_error, '') FROM department_sync WHERE department_id = \(department)", as: String.self)
                        return error == "the department's answer is malformed: not JSON"
                    }
                    #expect(failed)
                    #expect(try await Self.cursor(database, department) == nil)
                    // Once the feed answers properly, the change arrives.
                    feed.setBehaviour(.normal)
                    #expect(try await eventually { try await Self.cursor(database, department) == "1" })
                }
                #expect(try await database.scalar("SELECT count(*) FROM status_events", as: Int.self) == 1)
            }
        }
    }

    @Test("a paused department gets no requests; resumed, it catches up")
    func pauseAndResume() async throws {
        try await TestDatabase.with { database async throws in
            try await DepartmentSimulator.with(logger: database.logger) { feed async throws in
                let department = try await SyncHarness.feedDepartment(database, feed: feed.feedURL)
                try await ConnectorStore().setPaused(true, departmentID: department, client: database.client, logger: database.logger)
                feed.append([
                    SyncHarness.change("Z-1", bsn: SyncHarness.bsn(1), event: "Z-1", status: "ontvangen", at: "2026-11-02T10:00:00Z")
                ])
                try await SyncHarness.with(database) { () async throws in
                    // The pull job ran and went back to waiting, without a request.
                    #expect(
                        try await eventually {
                            try await database.scalar(
                                "SELECT count(*) FROM jobs WHERE kind = 'sync.feed.pull' AND state = 'pending' AND run_at > now() + interval '10 seconds'",
                                as: Int.self) == 1
                        })
                    #expect(feed.requests.isEmpty)
                    try await ConnectorStore().setPaused(false, departmentID: department, client: database.client, logger: database.logger)
                    try await database.client.query("UPDATE jobs SET run_at = now() WHERE kind = 'sync.feed.pull'")
                    #expect(try await eventually { try await Self.cursor(database, department) == "1" })
                }
            }
        }
    }

    @Test("only URLs under a connector's own roots are fetched")
    func urlsOutsideTheRootsAreRefused() {
        let root = URL(string: "https://zaken.example.nl/zaken/api/v1/")!
        let allowed = ["https://zaken.example.nl/zaken/api/v1/statussen/1", "https://ZAKEN.example.nl:443/zaken/api/v1/zaken?page=2"]
        let refused = [
            "https://zaken.example.nl/zaken/api/v2/zaken", "https://zaken.example.nl/zaken/api/v1/../../admin",
            "https://zaken.example.nl/zaken/api/v1/%2e%2e/admin", "https://zaken.example.nl.evil.test/zaken/api/v1/zaken",
            "http://zaken.example.nl/zaken/api/v1/zaken", "https://zaken.example.nl:8443/zaken/api/v1/zaken",
            "https://user@zaken.example.nl/zaken/api/v1/zaken", "https://127.0.0.1/zaken/api/v1/zaken",
            "https://zaken.example.nl/zaken/api/v1x", "file:///etc/passwd", "https://zaken.example.nl/zaken/api/v1/..;/admin",
            "https://zaken.example.nl/zaken/api/v1/%5c..%5cadmin", "https://zaken.example.nl/zaken/api/v1/%252e%252e/admin",
        ]
        for url in allowed { #expect(SyncURLs.isURL(URL(string: url)!, under: root), "\(url)") }
        for url in refused { #expect(!SyncURLs.isURL(URL(string: url)!, under: root), "\(url)") }
    }

    static func cursor(_ database: TestDatabase, _ department: UUID) async throws -> String? {
        try await database.scalar("SELECT cursor FROM department_sync WHERE department_id = \(department)", as: String?.self)
    }
}
