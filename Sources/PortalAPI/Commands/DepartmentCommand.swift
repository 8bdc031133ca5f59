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
        abstract: "Onboard departments, manage their API keys, and connect the sync worker to their systems.",
        subcommands: [
            Add.self, RotateKey.self, Revoke.self, List.self, Stats.self, ConnectFeed.self, ConnectZGW.self, ConnectWebhook.self,
            Pause.self, Resume.self, Status.self,
        ]
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

        @OptionGroup var department: DepartmentID

        @Option(help: "Hours the current keys stay valid (0 ends them now).")
        var graceHours: Int = 24

        @Flag(help: #"Print {"id": ..., "name": ..., "apiKey": ..., "previousKeysExpireAt": ...} on one line."#)
        var json = false

        func validate() throws {
            guard (0...720).contains(self.graceHours) else { throw ValidationError("--grace-hours must be between 0 and 720") }
        }

        func run() async throws {
            let issued = try await DepartmentCommand.withStore { store, client, logger in
                try await store.rotateKey(
                    of: self.department.id, grace: Duration.seconds(self.graceHours * 3600), client: client, logger: logger)
            }
            DepartmentCommand.print(issued, json: self.json)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a department and all its keys, at once.")

        @OptionGroup var department: DepartmentID

        func run() async throws {
            let department = try await DepartmentCommand.withStore { store, client, logger in
                try await store.revoke(self.department.id, client: client, logger: logger)
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
                    Swift.print(OperatorCommand.jsonLine(department))
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

        @OptionGroup var department: DepartmentID

        @Flag(help: "One JSON object per case type and line.")
        var json = false

        func run() async throws {
            let statistics = try await DepartmentCommand.withStore { _, client, logger in
                try await CaseStore().statistics(departmentID: self.department.id, client: client, logger: logger)
            }
            for row in statistics {
                if self.json {
                    Swift.print(OperatorCommand.jsonLine(row))
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

    /// `--id`: a department, by its id.
    struct DepartmentID: ParsableArguments, CustomStringConvertible {
        @Option(name: .customLong("id"), help: "The department's id.")
        var text: String

        var id: UUID { UUID(uuidString: self.text)! }
        var description: String { self.id.uuidString.lowercased() }

        func validate() throws {
            guard UUID(uuidString: self.text) != nil else { throw ValidationError("--id must be a department id (a UUID)") }
        }
    }

    /// The options every connector has: limits, interval, and which department.
    struct ConnectorOptions: ParsableArguments {
        @OptionGroup var department: DepartmentID

        @Option(help: "Seconds between pulls (feed; default 10) or reconciliations (ZGW; default 300).")
        var intervalSeconds: Int?

        @Option(help: "At most this many requests to the department at once, over all sync workers.")
        var maxConcurrent: Int = 4

        @Option(help: "At most this many requests per second to the department, over all sync workers.")
        var maxPerSecond: Double = 20

        func validate() throws {
            guard (1...86400).contains(self.intervalSeconds ?? 10) else {
                throw ValidationError("--interval-seconds must be between 1 and 86400")
            }
            guard (1...100).contains(self.maxConcurrent) else { throw ValidationError("--max-concurrent must be between 1 and 100") }
            guard self.maxPerSecond > 0, self.maxPerSecond <= 10000 else {
                throw ValidationError("--max-per-second must be above 0, at most 10000")
            }
        }

        func connector(_ kind: Connector.Kind, _ settings: Connector.Settings, clientID: String? = nil, secret: String?) -> Connector {
            Connector(
                departmentID: self.department.id, kind: kind, settings: settings, clientID: clientID, secret: secret,
                interval: .seconds(self.intervalSeconds ?? (kind == .feed ? 10 : 300)), maxConcurrent: self.maxConcurrent,
                maxPerSecond: self.maxPerSecond)
        }
    }

    /// A URL option: absolute, http or https, without user info.
    static func url(_ text: String, _ option: String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil,
            url.user == nil
        else { throw ValidationError("\(option) must be an http or https URL without user info") }
        return url
    }

    /// Reads a secret from the environment variable an option names, so it never appears in a process list.
    static func secret(from variable: String?) throws -> String? {
        guard let variable else { return nil }
        guard let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty else {
            throw ValidationError("the environment variable \(variable) is not set")
        }
        return value
    }

    struct ConnectFeed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "connect-feed",
            abstract: "Pull the department's changes from its change feed (docs/FEED.md); replaces an earlier connector."
        )

        @OptionGroup var options: ConnectorOptions

        @Option(help: "The feed's base URL; the sync worker reads <url>/changes.")
        var url: String

        @Option(help: "The environment variable holding the feed's bearer token, if it needs one.")
        var tokenEnv: String?

        func validate() throws { _ = try DepartmentCommand.url(self.url, "--url") }

        func run() async throws {
            let connector = self.options.connector(
                .feed, Connector.Settings(url: try DepartmentCommand.url(self.url, "--url")),
                secret: try DepartmentCommand.secret(from: self.tokenEnv))
            _ = try await DepartmentCommand.withStore { _, client, logger in
                try await ConnectorStore().connect(
                    connector, jobs: JobQueue(client: client, logger: logger), client: client, logger: logger)
            }
            Swift.print(
                "department \(self.options.department) pulls its changes from \(self.url) every \(self.options.intervalSeconds ?? 10) s")
        }
    }

    struct ConnectZGW: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "connect-zgw",
            abstract: "Follow the department's ZGW zaaksysteem (notifications and reconciliation); prints the callback credential once."
        )

        @OptionGroup var options: ConnectorOptions

        @Option(help: "The Zaken API root, e.g. https://zaken.example.nl/zaken/api/v1/.")
        var zaken: String

        @Option(help: "The Catalogi API root.")
        var catalogi: String

        @Option(help: "The client id of our JWTs (as registered in the zaaksysteem's autorisaties).")
        var clientId: String

        @Option(help: "The environment variable holding the secret our JWTs are signed with.")
        var secretEnv: String

        @Option(help: "The highest vertrouwelijkheidaanduiding of a case residents see.")
        var maxConfidentiality: String = "zaakvertrouwelijk"

        @Option(help: "The Documenten API root: residents' uploads are delivered there and linked to their zaak.")
        var documenten: String?

        @Option(help: "With --documenten: the informatieobjecttype (a Catalogi API URL) of a resident's upload.")
        var informatieobjecttype: String?

        @Option(help: "With --documenten: the RSIN of the organisation that keeps the documents (bronorganisatie).")
        var bronorganisatie: String?

        @Flag(help: "Issue a new callback credential (the abonnement's auth must then be changed too).")
        var rotateCredential = false

        func validate() throws {
            _ = try DepartmentCommand.url(self.zaken, "--zaken")
            _ = try DepartmentCommand.url(self.catalogi, "--catalogi")
            if let documenten = self.documenten {
                _ = try DepartmentCommand.url(documenten, "--documenten")
                guard let type = self.informatieobjecttype, let rsin = self.bronorganisatie else {
                    throw ValidationError("--documenten needs --informatieobjecttype and --bronorganisatie")
                }
                _ = try DepartmentCommand.url(type, "--informatieobjecttype")
                guard rsin.count == 9, rsin.allSatisfy(\.isNumber) else {
                    throw ValidationError("--bronorganisatie must be an RSIN: nine digits")
                }
            } else if self.informatieobjecttype != nil || self.bronorganisatie != nil {
                throw ValidationError("--informatieobjecttype and --bronorganisatie go with --documenten")
            }
            guard ZGWConfidentiality.levels.contains(self.maxConfidentiality) else {
                throw ValidationError("--max-confidentiality must be one of \(ZGWConfidentiality.levels.joined(separator: ", "))")
            }
        }

        func run() async throws {
            let settings = Connector.Settings(
                zaken: try DepartmentCommand.url(self.zaken, "--zaken"), catalogi: try DepartmentCommand.url(self.catalogi, "--catalogi"),
                maxConfidentiality: self.maxConfidentiality,
                documenten: try self.documenten.map { try DepartmentCommand.url($0, "--documenten") },
                informatieobjecttype: try self.informatieobjecttype.map { try DepartmentCommand.url($0, "--informatieobjecttype") },
                bronorganisatie: self.bronorganisatie)
            let connector = self.options.connector(
                .zgw, settings, clientID: self.clientId, secret: try DepartmentCommand.secret(from: self.secretEnv))
            let credential = try await DepartmentCommand.withStore { _, client, logger in
                try await ConnectorStore().connect(
                    connector, rotateCredential: self.rotateCredential, jobs: JobQueue(client: client, logger: logger), client: client,
                    logger: logger)
            }
            Swift.print(
                "department \(self.options.department) follows its zaaksysteem; reconciliation every \(self.options.intervalSeconds ?? 300) s"
            )
            guard let credential else {
                Swift.print("the abonnement's auth stays as it was (--rotate-credential issues a new one)")
                return
            }
            Swift.print("Abonnement for Open Notificaties (kanaal \"zaken\"): callbackUrl <public URL>/api/v1/zgw/notifications,")
            Swift.print("auth (shown once; store it in the abonnement and nowhere else):")
            Swift.print("Bearer \(credential)")
        }
    }

    struct ConnectWebhook: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "connect-webhook",
            abstract: "Post residents' messages and uploads to the department's own webhook, signed (docs/SYNC.md, \"Webhook\")."
        )

        @OptionGroup var department: DepartmentID

        @Option(help: "The webhook's URL (https, or http on loopback for tests).")
        var url: String

        @Option(help: "The environment variable holding the signing secret (at least 32 bytes), which the department also keeps.")
        var secretEnv: String

        func validate() throws {
            let url = try DepartmentCommand.url(self.url, "--url")
            // Residents' messages travel in it: TLS, except to this machine (tests, a local relay).
            guard url.scheme?.lowercased() == "https" || ["127.0.0.1", "localhost", "::1", "[::1]"].contains(url.host ?? "") else {
                throw ValidationError("--url must be https (plain http only to this machine)")
            }
        }

        func run() async throws {
            guard let secret = try DepartmentCommand.secret(from: self.secretEnv), secret.utf8.count >= 32 else {
                throw ValidationError("the signing secret must be at least 32 bytes")
            }
            let webhook = Webhook(departmentID: self.department.id, url: try DepartmentCommand.url(self.url, "--url"), secret: secret)
            try await DepartmentCommand.withStore { _, client, logger in
                try await WebhookStore().set(webhook, client: client, logger: logger)
            }
            Swift.print("department \(self.department) receives residents' messages and uploads at its webhook from now on")
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop sending requests to the department's system; nothing is lost.")

        @OptionGroup var department: DepartmentID

        func run() async throws {
            try await DepartmentCommand.withStore { _, client, logger in
                try await ConnectorStore().setPaused(true, departmentID: self.department.id, client: client, logger: logger)
            }
            Swift.print("paused the sync of department \(self.department); its notifications and jobs wait until it is resumed")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume the sync of a paused department.")

        @OptionGroup var department: DepartmentID

        func run() async throws {
            try await DepartmentCommand.withStore { _, client, logger in
                try await ConnectorStore().setPaused(false, departmentID: self.department.id, client: client, logger: logger)
            }
            Swift.print("resumed the sync of department \(self.department)")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per connected department: last successful sync, lag, failures, circuit breaker, changes applied and refused."
        )

        @Flag(help: "One JSON object per department and line.")
        var json = false

        func run() async throws {
            let statuses = try await DepartmentCommand.withStore { _, client, logger in
                try await ConnectorStore().status(client: client, logger: logger)
            }
            for status in statuses {
                if self.json {
                    Swift.print(OperatorCommand.jsonLine(status))
                    continue
                }
                let when = { (date: Date?) in date.map { $0.formatted(.iso8601) } ?? "never" }
                var line = "\(status.departmentID.uuidString.lowercased())  \(status.department)  \(status.kind.rawValue)"
                line += status.paused ? "  PAUSED" : ""
                line += "  last success \(when(status.lastSuccessAt))  lag \(Int(status.lagSeconds)) s"
                line += "  applied \(status.changesApplied)  refused \(status.changesRefused)"
                if status.consecutiveFailures > 0 {
                    line += "  failing (\(status.consecutiveFailures) in a row, last: \(status.lastError ?? "-"))"
                }
                if let open = status.openUntil { line += "  held back until \(open.formatted(.iso8601))" }
                Swift.print(line)
            }
        }
    }

    /// Runs `body` as an operator command (``OperatorCommand/run(_:_:)``) with the department store.
    static func withStore<T: Sendable>(
        _ body: @Sendable (DepartmentStore, PostgresClient, Logger) async throws -> T
    ) async throws -> T {
        try await OperatorCommand.run("PortalAPI department") { process in
            try await body(DepartmentStore(), process.database, process.logger)
        }
    }

    static func print(_ issued: IssuedCredential, json: Bool) {
        if json {
            Swift.print(OperatorCommand.jsonLine(CredentialView(issued)))
            return
        }
        Swift.print("department \(issued.department.id.uuidString.lowercased()) (\(issued.department.name))")
        Swift.print("API key (shown once; store it in the department's secret store):")
        Swift.print(issued.apiKey)
        if let expiry = issued.previousKeysExpireAt {
            Swift.print("the previous keys stop working at \(expiry.formatted(.iso8601))")
        }
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
