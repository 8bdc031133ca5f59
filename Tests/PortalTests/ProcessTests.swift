import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Testing

@testable import Shared

/// The executables as an operator runs them: real processes, real signals.
@Suite("Processes")
struct ProcessTests {
    func environment(_ database: TestDatabase, port: Int = 0) -> [String: String] {
        let settings = database.settings
        return [
            "PORTAL_DATABASE_URL": "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable",
            "PORTAL_HTTP_PORT": "\(port)",
            "PORTAL_AUDIT_KEY": APIHarness.auditKey,
            "PORTAL_SMTP_URL": "smtp://localhost:2525",
            "PORTAL_MAIL_FROM": "noreply@portal.test",
        ]
    }

    @Test("a worker killed with SIGKILL while holding jobs loses none: they run again after the lease")
    func killedWorkerLosesNothing() async throws {
        try await TestDatabase.with { database async throws in
            struct Hold: Codable, Sendable {}
            let hold = JobKind<Hold>("probe.hold", queue: "probe", maxAttempts: 5)
            _ = try await database.client.withConnection { connection in
                try await database.jobs.enqueue(try (0..<8).map { _ in try NewJob(hold, payload: Hold()) }, on: connection)
            }
            var environment = self.environment(database)
            environment["PORTAL_JOB_LEASE_SECONDS"] = "1"
            environment["PORTAL_JOB_RESCUE_SECONDS"] = "0.2"
            environment["PORTAL_JOB_CONCURRENCY"] = "8"

            let victim = try ChildProcess("JobProbe", environment: environment)
            #expect(
                try await eventually {
                    try await database.scalar(
                        "SELECT count(*) FROM jobs WHERE state = 'running' AND lease_owner LIKE \("%/\(victim.pid)/%")", as: Int.self) == 8
                }, "the probe should hold all eight jobs: \(victim.output)")
            victim.signal(SIGKILL)
            #expect(await victim.waitForExit() == SIGKILL)

            let successor = try ChildProcess("JobProbe", environment: environment)
            #expect(
                try await eventually {
                    try await database.scalar("SELECT count(*) FROM jobs WHERE state = 'completed'", as: Int.self) == 8
                }, "every job must be completed by the successor: \(successor.output)")
            let attempts = try await database.client.query("SELECT attempt FROM jobs ORDER BY id").collect().map { try $0.decode(Int.self) }
            #expect(attempts == Array(repeating: 2, count: 8), "the killed attempt counts; the second one completed")

            successor.signal(SIGTERM)
            #expect(await successor.waitForExit() == 0, "SIGTERM is a graceful shutdown: \(successor.output)")
        }
    }

    @Test(
        "each executable serves health and metrics, is ready on a current schema, and stops cleanly on SIGTERM",
        arguments: ["PortalAPI", "SyncWorker", "Notifier"])
    func startAndStop(executable: String) async throws {
        try await TestDatabase.with { database async throws in
            let port = try freePort()
            let process = try ChildProcess(executable, environment: self.environment(database, port: port))
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                let ready = try await eventually {
                    (try? await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health/ready"), timeout: .seconds(2)))?.status
                        == .ok
                }
                #expect(ready, "\(executable) never became ready: \(process.output)")
                let live = try await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health/live"), timeout: .seconds(15))
                #expect(live.status == .ok)
                let metrics = try await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(15))
                #expect(metrics.status == .ok)
                #expect(metrics.headers.first(name: "content-type")?.hasPrefix("text/plain") == true)
                let queue = ["SyncWorker": Queues.sync, "Notifier": Queues.notifications][executable]
                if let queue {
                    // A worker reports its own queue's depth from its first moments, even while the queue is empty.
                    let sample = #"portal_jobs{queue="\#(queue)",state="available"} 0"#
                    let reported = try await eventually {
                        let response = try await http.execute(
                            HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(15))
                        return String(buffer: try await response.body.collect(upTo: 1 << 20)).contains(sample)
                    }
                    #expect(reported, "\(executable) never reported \(sample)")
                }
            } catch {
                try? await http.shutdown()
                throw error
            }
            try await http.shutdown()
            process.signal(SIGTERM)
            #expect(await process.waitForExit() == 0, "\(process.output)")
            // Logs are JSON lines when not on a terminal.
            let lines = process.output.split(separator: "\n")
            #expect(!lines.isEmpty)
            for line in lines {
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not a JSON line: \(line)")
            }
        }
    }

    @Test(
        "a process refuses a schema that is behind, with one clear line",
        arguments: ["PortalAPI", "SyncWorker", "Notifier"])
    func schemaBehind(executable: String) async throws {
        try await TestDatabase.with(migrated: false) { database async throws in
            let process = try ChildProcess(executable, environment: self.environment(database, port: try freePort()))
            #expect(await process.waitForExit() == 1)
            #expect(
                process.output.contains("\(executable): the database schema is at version 0 but this build needs version"),
                "\(process.output)")
        }
    }

    @Test("a bad setting stops a process at start with one line naming the variable")
    func badSetting() async throws {
        let process = try ChildProcess(
            "SyncWorker", environment: ["PORTAL_DATABASE_URL": "postgres://portal@localhost/portal", "PORTAL_HTTP_PORT": "http"])
        #expect(await process.waitForExit() == 78)
        #expect(
            process.output == "SyncWorker: configuration error: PORTAL_HTTP_PORT must be a whole number from 0 to 65535, got \"http\"\n")
    }

    @Test("the notifier refuses a relay that would send mail in the clear over the network, in one line")
    func notifierMailSettings() async throws {
        let process = try ChildProcess(
            "Notifier",
            environment: [
                "PORTAL_DATABASE_URL": "postgres://portal@localhost/portal", "PORTAL_MAIL_FROM": "noreply@portal.test",
                "PORTAL_SMTP_URL": "smtp://user:secret@mail.example.org:25",
            ])
        #expect(await process.waitForExit() == 78)
        #expect(
            process.output
                == "Notifier: configuration error: PORTAL_SMTP_URL without TLS is only allowed for a relay on this machine (localhost); use ?tls=starttls or smtps://\n"
        )
        #expect(!process.output.contains("secret"))
    }

    @Test("the API needs an audit key, and warns loudly at start when the development login is on")
    func apiIdentitySettings() async throws {
        let withoutKey = try ChildProcess("PortalAPI", environment: ["PORTAL_DATABASE_URL": "postgres://portal@localhost/portal"])
        #expect(await withoutKey.waitForExit() == 78)
        #expect(withoutKey.output == "PortalAPI: configuration error: PORTAL_AUDIT_KEY is required but not set\n")

        try await TestDatabase.with { database async throws in
            var environment = self.environment(database, port: try freePort())
            environment["PORTAL_DEV_LOGIN"] = "true"
            let process = try ChildProcess("PortalAPI", environment: environment)
            let warned = try await eventually {
                process.output.contains(#""level":"critical""#) && process.output.contains("PORTAL_DEV_LOGIN is on")
            }
            #expect(warned, "\(process.output)")
            process.signal(SIGTERM)
            #expect(await process.waitForExit() == 0)
        }
    }

    @Test("PortalAPI migrate applies the migrations, then finds nothing to do")
    func migrateCommand() async throws {
        try await TestDatabase.with(migrated: false) { database async throws in
            let first = try ChildProcess("PortalAPI", environment: self.environment(database), arguments: ["migrate"])
            #expect(await first.waitForExit() == 0, "\(first.output)")
            #expect(first.output.contains("applied 0001 job_queue"))
            let check = try ChildProcess("PortalAPI", environment: self.environment(database), arguments: ["migrate", "--check"])
            #expect(await check.waitForExit() == 0, "\(check.output)")
            #expect(check.output.contains("database schema version \(Migrator.bundledMigrations.count)"))
            let again = try ChildProcess("PortalAPI", environment: self.environment(database), arguments: ["migrate", "--json"])
            #expect(await again.waitForExit() == 0, "\(again.output)")
            let latest = Migrator.bundledMigrations.count
            #expect(again.printed == #"{"applied":[],"build":\#(latest),"database":\#(latest)}"# + "\n", "\(again.printed)")
        }
    }
}
