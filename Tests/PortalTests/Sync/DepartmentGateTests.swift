import Foundation
import PostgresNIO
import Testing

@testable import Shared
@testable import SyncWorker

@Suite("Department gate")
struct DepartmentGateTests {
    @Test("the breaker opens after five failures in a row, for 10 s; failures of requests already under way neither count nor lengthen it")
    func breakerOpensOnce() async throws {
        try await TestDatabase.with { database async throws in
            let id = try await SyncHarness.feedDepartment(database, feed: URL(string: "http://127.0.0.1:1/feed")!)
            let gate = DepartmentGate(client: database.client, logger: database.logger)
            var waits: [Duration] = []
            for _ in 0..<4 { waits.append(try await gate.failed(id, error: "503")) }
            #expect(waits.allSatisfy { $0 <= .seconds(30) })
            // The fifth opens it; then fifteen more requests that were in flight fail, as after a short outage.
            let opened = try await gate.failed(id, error: "503")
            #expect(opened > .seconds(9) && opened <= .seconds(10) + .milliseconds(1))
            for _ in 0..<15 {
                let wait = try await gate.failed(id, error: "503")
                #expect(wait <= opened, "an in-flight failure lengthened the open breaker to \(wait)")
            }
            let row = try await database.client.query(
                "SELECT consecutive_failures, extract(epoch FROM open_until - now())::float8 FROM department_sync WHERE department_id = \(id)",
                logger: database.logger)
            for try await (failures, openFor) in row.decode((Int, Double).self) {
                #expect(failures == DepartmentGate.failuresToOpen)
                #expect(openFor <= 10)
            }
        }
    }
}
