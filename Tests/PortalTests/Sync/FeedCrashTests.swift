import Foundation
import PostgresNIO
import Testing

@testable import Shared

/// The sync worker as a real process, killed with SIGKILL again and again during a large pull: afterwards every
/// change was applied exactly once.
@Suite("Sync worker crashes")
struct FeedCrashTests {
    static let cases = 2000
    static let steps = 5
    static var changes: Int { Self.cases * Self.steps }
    static let kills = 3

    @Test("10,000 changes, the sync worker killed with SIGKILL three times while pulling: every change applied once, none missing")
    func killedWhilePulling() async throws {
        try await TestDatabase.with { database async throws in
            try await DepartmentSimulator.with(logger: database.logger) { feed async throws in
                // 2,000 cases, each created by its first change and moved on by four more, spread over the feed.
                var changes: [String] = []
                for step in 0..<Self.steps {
                    let status = step == 0 ? "ontvangen" : step == Self.steps - 1 ? "besluit" : "in-behandeling"
                    for n in 0..<Self.cases {
                        changes.append(
                            SyncHarness.change(
                                "C-\(n)", bsn: step == 0 ? SyncHarness.bsn(n) : nil, event: "C-\(n)-\(step)", status: status,
                                at: "2026-11-0\(step + 1)T10:00:00Z"))
                    }
                }
                feed.append(changes)
                let department = try await SyncHarness.feedDepartment(database, feed: feed.feedURL)
                let settings = database.settings
                let environment = [
                    "PORTAL_DATABASE_URL":
                        "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable",
                    "PORTAL_HTTP_PORT": "0",
                    "PORTAL_SYNC_PAGE_SIZE": "200",
                    "PORTAL_SYNC_REQUEST_TIMEOUT_SECONDS": "5",
                    "PORTAL_JOB_LEASE_SECONDS": "1",
                    "PORTAL_JOB_RESCUE_SECONDS": "0.2",
                ]
                let applied = {
                    try await database.scalar(
                        "SELECT changes_applied FROM department_sync WHERE department_id = \(department)", as: Int64.self)
                }
                // Killed each time another fifth of the changes is in, mid-pull.
                for kill in 1...Self.kills {
                    let worker = try ChildProcess("SyncWorker", environment: environment)
                    let target = Int64(kill * Self.changes / 5)
                    #expect(try await eventually(timeout: .seconds(120)) { try await applied() >= target }, "\(worker.output.suffix(2000))")
                    worker.signal(SIGKILL)
                    #expect(await worker.waitForExit() == SIGKILL)
                }
                let last = try ChildProcess("SyncWorker", environment: environment)
                #expect(
                    try await eventually(timeout: .seconds(180)) {
                        try await database.scalar(
                            "SELECT cursor FROM department_sync WHERE department_id = \(department)", as: String?.self)
                            == "\(Self.changes)"
                    }, "\(last.output.suffix(2000))")
                last.signal(SIGTERM)
                #expect(await last.waitForExit() == 0)

                // Exactly once: every event once, every case at its last status, the counter moved with the cursor.
                #expect(try await database.scalar("SELECT count(*) FROM status_events", as: Int.self) == Self.changes)
                #expect(try await database.scalar("SELECT count(DISTINCT event_id) FROM status_events", as: Int.self) == Self.changes)
                #expect(try await database.scalar("SELECT count(*) FROM cases WHERE status_code = 'besluit'", as: Int.self) == Self.cases)
                #expect(try await applied() == Int64(Self.changes))
                #expect(try await database.scalar("SELECT count(*) FROM sync_refusals", as: Int.self) == 0)
                // Pages were asked for again after a kill (the page in flight), but none was applied twice.
                let pulls = feed.requests.filter { $0.path == "/feed/changes" }.count
                print(
                    "sync worker crash test: \(Self.changes) changes, \(Self.kills) kills, \(pulls) page requests for \(Self.changes / 200) pages, every change applied once"
                )
            }
        }
    }
}
