import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Shared

/// `PortalAPI department ...`: onboarding departments and managing their API keys. An API key is printed once and
/// only its hash is stored, so a lost key is replaced by rotating, never recovered.
struct DepartmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "department",
        abstract: "Onboard departments and manage their API keys.",
        subcommands: [Add.self, RotateKey.self, Revoke.self, List.self, Stats.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a department and print its first API key, once.")

        @Option(help: "The department's name, unique, e.g. \"Burgerzaken\".")
        var name: String

        @Flag(help: #"Print {"id": ..., "name": ..., "apiKey": ...} on one line."#)
        var json = false

        func validate() throws {
            let trimmed = self.name.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed.count <= 200 else { throw ValidationError("--name must be 1 to 200 characters") }
        }

        func run() async throws {
            let issued = try await DepartmentCommand.withStore { store, client, logger in
                try await store.add(name: self.name.trimmingCharacters(in: .whitespaces), client: client, logger: logger)
            }
            DepartmentCommand.print(issued, json: self.json)
        }
    }

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract: "Issue a new API key; the current keys keep working for the grace period, then expire."
        )

        @Option(help: "The department's id.")
        var id: String

        @Option(help: "Hours the current keys stay valid (0 ends them now).")
        var graceHours: Int = 24

        @Flag(help: #"Print {"id": ..., "name": ..., "apiKey": ..., "previousKeysExpireAt": ...} on one line."#)
        var json = false

        func validate() throws {
            guard UUID(uuidString: self.id) != nil else { throw ValidationError("--id must be a department id (a UUID)") }
            guard (0...720).contains(self.graceHours) else { throw ValidationError("--grace-hours must be between 0 and 720") }
        }

        func run() async throws {
            let issued = try await DepartmentCommand.withStore { store, client, logger in
                try await store.rotateKey(
                    of: UUID(uuidString: self.id)!, grace: Duration.seconds(self.graceHours * 3600), client: client, logger: logger)
            }
            DepartmentCommand.print(issued, json: self.json)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a department and all its keys, at once.")

        @Option(help: "The department's id.")
        var id: String

        func validate() throws {
            guard UUID(uuidString: self.id) != nil else { throw ValidationError("--id must be a department id (a UUID)") }
        }

        func run() async throws {
            let department = try await DepartmentCommand.withStore { store, client, logger in
                try await store.revoke(UUID(uuidString: self.id)!, client: client, logger: logger)
            }
            Swift.print("revoked department \(department.id.uuidString.lowercased()) (\(department.name)) and all its keys")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the departments.")

        @Flag(help: "One JSON object per line.")
        var json = false

        func run() async throws {
            let departments = try await DepartmentCommand.withStore { store, client, logger in
                try await store.list(client: client, logger: logger)
            }
            for department in departments {
                if self.json {
                    Swift.print(DepartmentCommand.jsonLine(department))
                } else {
                    let status = department.revokedAt == nil ? "active" : "revoked"
                    Swift.print("\(department.id.uuidString.lowercased())  \(status)  \(department.name)")
                }
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Figures per case type: open and closed, lead times, share within the term, overdue, feedback."
        )

        @Option(help: "The department's id.")
        var id: String

        @Flag(help: "One JSON object per case type and line.")
        var json = false

        func validate() throws {
            guard UUID(uuidString: self.id) != nil else { throw ValidationError("--id must be a department id (a UUID)") }
        }

        func run() async throws {
            let statistics = try await DepartmentCommand.withStore { _, client, logger in
                try await CaseStore().statistics(departmentID: UUID(uuidString: self.id)!, client: client, logger: logger)
            }
            for row in statistics {
                if self.json {
                    Swift.print(DepartmentCommand.jsonLine(row))
                } else {
                    let days = { (value: Double?) in value.map { String(format: "%.1f", $0) } ?? "-" }
                    let share = row.withinTermShare.map { String(format: "%.0f%%", $0 * 100) } ?? "-"
                    Swift.print(
                        "\(row.caseType)  open \(row.open)  closed \(row.closed)  median \(days(row.medianLeadDays)) d  "
                            + "p90 \(days(row.p90LeadDays)) d  within term \(share)  overdue \(row.overdue)  "
                            + "feedback \(days(row.averageFeedback)) (\(row.feedbackCount))"
                    )
                }
            }
        }
    }

    /// Runs `body` with a running database client, as an operator command: a configuration error exits 78, any
    /// other error (a taken name, an unknown id, a schema that is behind) prints its one line and exits 1.
    static func withStore<T: Sendable>(
        _ body: @Sendable (DepartmentStore, PostgresClient, Logger) async throws -> T
    ) async throws -> T {
        let configuration = EntryPoint.configuration(for: "PortalAPI department", defaultHTTPPort: 8080)
        let (logger, prometheus) = EntryPoint.bootstrap("PortalAPI department", configuration: configuration)
        let process = PortalProcess(name: "PortalAPI", configuration: configuration, prometheus: prometheus, logger: logger)
        do {
            return try await process.database.whileRunning {
                try await process.migrator.requireCurrent()
                return try await body(DepartmentStore(), process.database, logger)
            }
        } catch {
            EntryPoint.fail("PortalAPI department", error, status: 1)
        }
    }

    static func print(_ issued: IssuedCredential, json: Bool) {
        if json {
            Swift.print(self.jsonLine(CredentialView(issued)))
            return
        }
        Swift.print("department \(issued.department.id.uuidString.lowercased()) (\(issued.department.name))")
        Swift.print("API key (shown once; store it in the department's secret store):")
        Swift.print(issued.apiKey)
        if let expiry = issued.previousKeysExpireAt {
            Swift.print("the previous keys stop working at \(expiry.formatted(.iso8601))")
        }
    }

    static func jsonLine(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

/// What `--json` prints for a new key.
private struct CredentialView: Encodable {
    let id: String
    let name: String
    let apiKey: String
    let previousKeysExpireAt: Date?

    init(_ issued: IssuedCredential) {
        self.id = issued.department.id.uuidString.lowercased()
        self.name = issued.department.name
        self.apiKey = issued.apiKey
        self.previousKeysExpireAt = issued.previousKeysExpireAt
    }
}
