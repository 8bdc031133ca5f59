import Foundation
import PostgresNIO
import Testing

@testable import Shared
@testable import SyncWorker

/// `PortalAPI department connect-feed|connect-zgw|connect-webhook|pause|resume|status`, as an operator runs them.
@Suite("Sync operator commands")
struct SyncCommandTests {
    @Test("connecting, pausing and watching a department; secrets come from the environment and are never printed")
    func operatorCommands() async throws {
        try await TestDatabase.with { database async throws in
            let settings = database.settings
            let token = "feed-token-\(UUID().uuidString)"
            let secret = "zgw-secret-\(UUID().uuidString)"
            let environment = [
                "PORTAL_DATABASE_URL":
                    "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable",
                "FEED_TOKEN": token, "ZGW_SECRET": secret, "SHORT_SECRET": "kort",
            ]
            func run(_ arguments: [String]) async throws -> (Int32, String) {
                let process = try ChildProcess("PortalAPI", environment: environment, arguments: ["department"] + arguments)
                let status = await process.waitForExit()
                return (status, process.output)
            }
            let feed = try await DepartmentStore().add(name: "Vergunningen", client: database.client, logger: database.logger).department.id
            let zgw = try await DepartmentStore().add(name: "Omgeving", client: database.client, logger: database.logger).department.id

            let (connected, connectOutput) = try await run([
                "connect-feed", "--id", feed.uuidString, "--url", "https://feed.example/portal", "--token-env", "FEED_TOKEN",
                "--interval-seconds", "30",
            ])
            #expect(connected == 0, "\(connectOutput)")
            #expect(!connectOutput.contains(token))
            // A webhook: the short secret is refused, a good one stored and never printed.
            let (short, shortOutput) = try await run([
                "connect-webhook", "--id", feed.uuidString, "--url", "https://feed.example/hook", "--secret-env", "SHORT_SECRET",
            ])
            #expect(short != 0 && shortOutput.contains("at least 32 bytes"), "\(shortOutput)")
            let (cleartext, cleartextOutput) = try await run([
                "connect-webhook", "--id", feed.uuidString, "--url", "http://feed.example/hook", "--secret-env", "ZGW_SECRET",
            ])
            #expect(cleartext != 0 && cleartextOutput.contains("must be https"), "\(cleartextOutput)")
            let (hooked, hookOutput) = try await run([
                "connect-webhook", "--id", feed.uuidString, "--url", "https://feed.example/hook", "--secret-env", "ZGW_SECRET",
            ])
            #expect(hooked == 0 && !hookOutput.contains(secret), "\(hookOutput)")
            #expect(
                try await database.scalar("SELECT url FROM department_webhooks WHERE department_id = \(feed)", as: String.self)
                    == "https://feed.example/hook")
            #expect(
                try await database.scalar("SELECT secret FROM department_connectors WHERE department_id = \(feed)", as: String.self)
                    == token)
            #expect(
                try await database.scalar(
                    "SELECT count(*) FROM jobs WHERE unique_key = \("feed:\(feed.uuidString.lowercased())")", as: Int.self) == 1)

            let (weak, weakOutput) = try await run([
                "connect-zgw", "--id", zgw.uuidString, "--zaken", "https://zaken.example/api/v1/", "--catalogi",
                "https://catalogi.example/api/v1/", "--client-id", "portal", "--secret-env", "SHORT_SECRET",
            ])
            #expect(weak == 1 && weakOutput.contains("at least 32 bytes"), "\(weakOutput)")
            let (zgwConnected, zgwOutput) = try await run([
                "connect-zgw", "--id", zgw.uuidString, "--zaken", "https://zaken.example/api/v1/", "--catalogi",
                "https://catalogi.example/api/v1/", "--client-id", "portal", "--secret-env", "ZGW_SECRET",
            ])
            #expect(zgwConnected == 0, "\(zgwOutput)")
            // Only the credential's own line starts with the scheme; log lines may follow it on standard error.
            let line = try #require(zgwOutput.split(separator: "\n").first { $0.hasPrefix("Bearer ") }, "\(zgwOutput)")
            let credential = String(line.dropFirst("Bearer ".count))
            #expect(credential.hasPrefix(ConnectorStore.callbackPrefix) && !zgwOutput.contains(secret))
            let found = try await ConnectorStore().department(
                callbackCredential: credential, client: database.client, logger: database.logger)
            #expect(found?.id == zgw)

            // Connecting again (new limits) keeps the abonnement's credential working.
            let (again, againOutput) = try await run([
                "connect-zgw", "--id", zgw.uuidString, "--zaken", "https://zaken.example/api/v1/", "--catalogi",
                "https://catalogi.example/api/v1/", "--client-id", "portal", "--secret-env", "ZGW_SECRET", "--max-per-second", "5",
            ])
            #expect(again == 0 && againOutput.contains("stays as it was"), "\(againOutput)")
            let still = try await ConnectorStore().department(
                callbackCredential: credential, client: database.client, logger: database.logger)
            #expect(still?.id == zgw)

            let (bad, badOutput) = try await run(["connect-feed", "--id", feed.uuidString, "--url", "ftp://feed.example"])
            #expect(bad != 0 && badOutput.contains("--url must be an http or https URL"))

            #expect(try await run(["pause", "--id", feed.uuidString]).0 == 0)
            let (_, paused) = try await run(["status"])
            #expect(paused.contains("\(feed.uuidString.lowercased())  Vergunningen  feed  PAUSED"), "\(paused)")
            #expect(try await run(["resume", "--id", feed.uuidString]).0 == 0)
            // Standard output only: standard error carries the process's own log lines, JSON too without a terminal.
            let status = try ChildProcess("PortalAPI", environment: environment, arguments: ["department", "status", "--json"])
            #expect(await status.waitForExit() == 0)
            let json = status.printed
            let lines = json.split(separator: "\n")
            #expect(lines.count == 2)
            let statuses = try lines.map { try JSONDecoder().decode([String: JSONValue].self, from: Data($0.utf8)) }
            #expect(statuses.allSatisfy { $0["paused"] == .bool(false) && $0["changesApplied"] == .number(0) })
            #expect(!json.contains(token) && !json.contains(secret))
        }
    }
}
