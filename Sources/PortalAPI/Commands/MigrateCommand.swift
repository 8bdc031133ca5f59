import ArgumentParser
import Foundation
import Logging
import Shared

/// `PortalAPI migrate`: applies the pending migrations. Safe to run from several places at once.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending database migrations (forward-only, each in its own transaction)."
    )

    @Flag(help: "Only show the database's version and this build's, and exit 1 when the database is behind.")
    var check = false

    @Flag(help: #"Print {"database": version, "build": version, "applied": [versions]} on one line."#)
    var json = false

    struct Outcome: Encodable {
        let database: Int
        let build: Int
        let applied: [Int]
    }

    func run() async throws {
        let configuration = EntryPoint.configuration(for: "PortalAPI", defaultHTTPPort: 8080)
        let (logger, prometheus) = EntryPoint.bootstrap("PortalAPI migrate", configuration: configuration)
        let process = PortalProcess(name: "PortalAPI", configuration: configuration, prometheus: prometheus, logger: logger)
        do {
            try await process.database.whileRunning {
                let migrator = process.migrator
                if self.check {
                    let version = try await migrator.databaseVersion()
                    if self.json {
                        print(OperatorCommand.jsonLine(Outcome(database: version, build: migrator.latestVersion, applied: [])))
                    } else {
                        print("database schema version \(version); this build needs \(migrator.latestVersion)")
                    }
                    if version < migrator.latestVersion { throw ExitCode.failure }
                    return
                }
                let applied = try await migrator.migrate()
                if self.json {
                    let version = try await migrator.databaseVersion()
                    print(
                        OperatorCommand.jsonLine(Outcome(database: version, build: migrator.latestVersion, applied: applied.map(\.version)))
                    )
                } else if applied.isEmpty {
                    print("database schema is current (version \(migrator.latestVersion))")
                } else {
                    for migration in applied { print("applied \(String(format: "%04d", migration.version)) \(migration.name)") }
                }
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            EntryPoint.fail("PortalAPI migrate", error, status: 1)
        }
    }
}
