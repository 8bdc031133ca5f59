import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Shared

/// What every operator command shares: a running database client on a current schema, one-line failures, and output
/// for a person by default or one JSON object per line with `--json`.
enum OperatorCommand {
    /// Runs `body` with the process's database client running, as operator command `name`: a configuration error exits
    /// 78, any other error (an unknown id, a schema that is behind) prints its one line and exits 1.
    static func run<T: Sendable>(_ name: String, _ body: @Sendable (PortalProcess) async throws -> T) async throws -> T {
        let configuration = EntryPoint.configuration(for: name, defaultHTTPPort: 8080)
        let (logger, prometheus) = EntryPoint.bootstrap(name, configuration: configuration)
        let process = PortalProcess(name: "PortalAPI", configuration: configuration, prometheus: prometheus, logger: logger)
        do {
            return try await process.database.whileRunning {
                try await process.migrator.requireCurrent()
                return try await body(process)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            EntryPoint.fail(name, error, status: 1)
        }
    }

    /// Who ran the command, for the audit log: the operating system's user, as `PortalAPI@<host>:<user>`.
    static var actor: String {
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown"
        return "PortalAPI@\(ProcessInfo.processInfo.hostName):\(user)"
    }

    static func jsonLine(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    static func time(_ date: Date?) -> String { date.map { $0.formatted(.iso8601) } ?? "-" }

    /// Fails the command with `message` on standard error and status 1.
    static func refuse(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("\(message)\n".utf8))
        return .failure
    }
}

// MARK: jobs

/// `PortalAPI jobs ...`: look at the job queue and act on single jobs.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, inspect, retry and cancel jobs (docs/JOBS.md).",
        subcommands: [List.self, Show.self, Retry.self, Cancel.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The newest jobs, filtered by queue, state and kind.")

        @Option(help: "sync, notifications or maintenance.") var queue: String?
        @Option(help: "available, scheduled, running, completed, cancelled or dead (pending = available and scheduled).")
        var state: String?
        @Option(help: "A job kind, e.g. mail.notification.") var kind: String?
        @Option(help: "At most this many (1-10000).") var limit = 50
        @Flag(help: "One JSON object per job and line.") var json = false

        func validate() throws {
            let states = ["available", "scheduled", "pending", "running", "completed", "cancelled", "dead"]
            if let state, !states.contains(state) { throw ValidationError("--state must be one of \(states.joined(separator: ", "))") }
            guard (1...10_000).contains(self.limit) else { throw ValidationError("--limit must be between 1 and 10000") }
        }

        func run() async throws {
            let jobs = try await OperatorCommand.run("PortalAPI jobs list") { process in
                try await process.jobs.list(queue: self.queue, state: self.state, kind: self.kind, limit: self.limit)
            }
            for job in jobs {
                if self.json {
                    print(OperatorCommand.jsonLine(JobView(job)))
                } else {
                    var line = "\(job.id)  \(job.queue)  \(job.kind)  \(JobView.state(of: job))  attempt \(job.attempt)/\(job.maxAttempts)"
                    line += "  run at \(OperatorCommand.time(job.runAt))"
                    if let error = job.lastError { line += "  last error: \(error.prefix(120))" }
                    print(line)
                }
            }
            if jobs.isEmpty && !self.json { print("no jobs match") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One job, with its payload and last error.")
        @Argument(help: "The job's id.") var id: Int64
        @Flag(help: "One JSON object.") var json = false

        func run() async throws {
            guard let job = try await OperatorCommand.run("PortalAPI jobs show", { try await $0.jobs.job(JobID(rawValue: self.id)) }) else {
                throw OperatorCommand.refuse("no job \(self.id)")
            }
            let view = JobView(job)
            if self.json {
                print(OperatorCommand.jsonLine(view))
                return
            }
            print(
                """
                job \(job.id)  \(job.queue)  \(job.kind)  \(view.state)
                attempt      \(job.attempt) of \(job.maxAttempts)
                created      \(OperatorCommand.time(job.createdAt))
                run at       \(OperatorCommand.time(job.runAt))
                held by      \(job.leaseOwner ?? "-")
                unique key   \(job.uniqueKey ?? "-")
                trace id     \(job.traceID ?? "-")
                payload      \(view.payload)
                last error   \(job.lastError ?? "-")
                """)
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run dead jobs again (or waiting ones now), each with a fresh set of attempts.")
        @Argument(help: "Job ids.") var ids: [Int64] = []
        @Flag(help: "Every dead job (of --queue, when given).") var allDead = false
        @Option(help: "With --all-dead: only this queue.") var queue: String?

        func validate() throws {
            guard self.ids.isEmpty != !self.allDead else { throw ValidationError("give job ids or --all-dead, not both") }
        }

        func run() async throws {
            let (retried, refused) = try await OperatorCommand.run("PortalAPI jobs retry") { process in
                var ids = self.ids.map(JobID.init(rawValue:))
                if self.allDead {
                    ids = try await process.jobs.list(queue: self.queue, state: "dead", kind: nil, limit: 100_000).map(\.id)
                }
                var (retried, refused) = ([JobID](), [JobID]())
                for id in ids {
                    if try await process.jobs.retry(id) { retried.append(id) } else { refused.append(id) }
                }
                return (retried, refused)
            }
            print(
                "\(retried.count) jobs queued to run now\(retried.isEmpty ? "" : ": " + retried.map(\.description).joined(separator: " "))")
            if !refused.isEmpty {
                throw OperatorCommand.refuse(
                    "not retried (unknown, running or finished, or another job with its key waits): "
                        + refused.map(\.description).joined(separator: " "))
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel waiting jobs (a running job finishes its attempt first).")
        @Argument(help: "Job ids.") var ids: [Int64]

        func run() async throws {
            let refused = try await OperatorCommand.run("PortalAPI jobs cancel") { process in
                var refused: [Int64] = []
                for id in self.ids where !(try await process.jobs.cancel(JobID(rawValue: id))) { refused.append(id) }
                return refused
            }
            print("\(self.ids.count - refused.count) jobs cancelled")
            if !refused.isEmpty {
                throw OperatorCommand.refuse("not cancelled (unknown, or not waiting): " + refused.map(String.init).joined(separator: " "))
            }
        }
    }
}

/// A job as `jobs list --json` and `jobs show --json` print it; secrets in payloads (a verification code) are masked.
struct JobView: Encodable {
    let id: Int64
    let queue: String
    let kind: String
    let state: String
    let attempt: Int
    let maxAttempts: Int
    let createdAt: Date
    let runAt: Date
    let leaseOwner: String?
    let uniqueKey: String?
    let traceId: String?
    let payload: String
    let lastError: String?

    init(_ job: JobSnapshot) {
        (self.id, self.queue, self.kind, self.state) = (job.id.rawValue, job.queue, job.kind, Self.state(of: job))
        (self.attempt, self.maxAttempts, self.createdAt, self.runAt) = (job.attempt, job.maxAttempts, job.createdAt, job.runAt)
        (self.leaseOwner, self.uniqueKey, self.traceId, self.lastError) = (job.leaseOwner, job.uniqueKey, job.traceID, job.lastError)
        self.payload = Self.masked(job.payload)
    }

    /// `pending` split into `available` (due) and `scheduled` (waiting for its time), as the metrics have it.
    static func state(of job: JobSnapshot) -> String {
        guard job.state == .pending else { return job.state.rawValue }
        return job.runAt > Date() ? "scheduled" : "available"
    }

    static let secretKeys: Set<String> = ["code", "secret", "token", "password", "apiKey"]

    static func masked(_ payload: String) -> String {
        guard var object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else { return payload }
        for key in object.keys where Self.secretKeys.contains(key) { object[key] = "***" }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return payload
        }
        return String(decoding: data, as: UTF8.self)
    }
}

// MARK: mail

/// `PortalAPI mail ...`: the mails that did not arrive, and sending them again.
struct MailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mail",
        abstract: "Mails that could not be delivered, and sending them again (docs/MAIL.md).",
        subcommands: [Failed.self, Resend.self]
    )

    struct Failed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mails refused by the relay or given up after the last attempt, newest first; addresses masked.")
        @Option(help: "At most this many (1-10000).") var limit = 100
        @Flag(help: "One JSON object per mail and line.") var json = false

        func run() async throws {
            let (failed, stranded) = try await OperatorCommand.run("PortalAPI mail failed") { process in
                let store = MailDeliveryStore(client: process.database, messageIDDomain: "", logger: process.logger)
                return (try await store.failed(limit: self.limit), try await store.stranded())
            }
            if self.json {
                for delivery in failed { print(OperatorCommand.jsonLine(FailedMailView(delivery))) }
                return
            }
            print(Self.table(failed), terminator: "")
            if stranded > 0 {
                print(
                    "\(stranded) notifications wait without a job (cancelled, or dead before a mail was prepared): docs/MAIL.md, Operators")
            }
        }

        static func table(_ failed: [FailedDelivery]) -> String {
            guard !failed.isEmpty else { return "No failed deliveries.\n" }
            var output = "delivery\tkind\tcreated\taddress\tattempts\tlast reply\n"
            for delivery in failed {
                let reply = MailAddress.redacted((delivery.lastReply ?? "-").replacingOccurrences(of: "\n", with: " "))
                output +=
                    "\(delivery.id)\t\(delivery.kind.rawValue)\t\(OperatorCommand.time(delivery.createdAt))\t\(delivery.maskedAddress)\t\(delivery.attempts)\t\(reply)\n"
            }
            return output
        }
    }

    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send failed mails again, to the same address with the same Message-ID (after fixing the cause).")
        @Argument(help: "Delivery ids, as `mail failed` lists them.") var ids: [Int64]

        func run() async throws {
            let results = try await OperatorCommand.run("PortalAPI mail resend") { process in
                let store = MailDeliveryStore(client: process.database, messageIDDomain: "", logger: process.logger)
                var results: [(Int64, MailDeliveryStore.Resend)] = []
                for id in self.ids { results.append((id, try await store.resend(id, jobs: process.jobs))) }
                return results
            }
            var failures = 0
            for (id, result) in results {
                switch result {
                case .queued(let job): print("delivery \(id): queued again as job \(job)")
                case .unknown: print("delivery \(id): no such delivery"); failures += 1
                case .notFailed: print("delivery \(id): not failed (sent, or being sent)"); failures += 1
                case .verification: print("delivery \(id): a verification code; the resident asks for a new one"); failures += 1
                }
            }
            if failures > 0 { throw ExitCode.failure }
        }
    }
}

private struct FailedMailView: Encodable {
    let id: Int64
    let kind: String
    let createdAt: Date
    let address: String
    let attempts: Int
    let lastReply: String?

    init(_ delivery: FailedDelivery) {
        (self.id, self.kind, self.createdAt) = (delivery.id, delivery.kind.rawValue, delivery.createdAt)
        (self.address, self.attempts) = (delivery.maskedAddress, delivery.attempts)
        self.lastReply = delivery.lastReply.map(MailAddress.redacted)
    }
}

// MARK: stats

/// `PortalAPI stats`: the whole deployment at a glance.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Queues, mail, sync and cases at a glance: what an operator checks first."
    )

    @Flag(help: "One JSON object.") var json = false

    struct Figures: Encodable, Sendable {
        struct Queue: Encodable, Sendable {
            let queue: String
            let available: Int
            let scheduled: Int
            let running: Int
            let dead: Int
            let oldestAvailableSeconds: Double
        }
        var queues: [Queue] = []
        var residents = 0
        var openCases = 0
        var closedCases = 0
        var overdueCases = 0
        var documents = 0
        var documentBytes: Int64 = 0
        var pendingForDepartments = 0
        var mailsSentLastDay = 0
        var mailsFailedLastDay = 0
        var mailsSending = 0
        var departments = 0
        var departmentsFailing = 0
        var departmentsPaused = 0
        var largestSyncLagSeconds = 0.0
        var databaseBytes: Int64 = 0
    }

    func run() async throws {
        let figures = try await OperatorCommand.run("PortalAPI stats") { process in
            var figures = Figures()
            figures.queues = try await process.jobs.depth().map {
                Figures.Queue(
                    queue: $0.queue, available: $0.available, scheduled: $0.scheduled, running: $0.running, dead: $0.dead,
                    oldestAvailableSeconds: $0.oldestAvailableSeconds)
            }
            let rows = try await process.database.query(
                """
                SELECT (SELECT count(*) FROM residents)::int8,
                       (SELECT count(*) FROM cases WHERE NOT status_final)::int8,
                       (SELECT count(*) FROM cases WHERE status_final)::int8,
                       (SELECT count(*) FROM cases WHERE NOT status_final AND due_date < (now() AT TIME ZONE 'Europe/Amsterdam')::date)::int8,
                       (SELECT count(*) FROM documents WHERE state = 'stored')::int8,
                       (SELECT coalesce(sum(size), 0) FROM documents WHERE state = 'stored')::int8,
                       ((SELECT count(*) FROM documents WHERE delivery = 'pending' AND state = 'stored')
                         + (SELECT count(*) FROM messages WHERE delivery = 'pending'))::int8,
                       (SELECT count(*) FROM mail_deliveries WHERE state = 'sent' AND finished_at > now() - interval '1 day')::int8,
                       (SELECT count(*) FROM mail_deliveries WHERE state = 'failed' AND finished_at > now() - interval '1 day')::int8,
                       (SELECT count(*) FROM mail_deliveries WHERE state = 'sending')::int8,
                       pg_database_size(current_database())::int8
                """,
                logger: process.logger)
            for try await row in rows {
                let values = try row.decode((Int, Int, Int, Int, Int, Int64, Int, Int, Int, Int, Int64).self)
                (figures.residents, figures.openCases, figures.closedCases, figures.overdueCases) = (values.0, values.1, values.2, values.3)
                (figures.documents, figures.documentBytes, figures.pendingForDepartments) = (values.4, values.5, values.6)
                (figures.mailsSentLastDay, figures.mailsFailedLastDay, figures.mailsSending) = (values.7, values.8, values.9)
                figures.databaseBytes = values.10
            }
            let departments = try await DepartmentStore().list(client: process.database, logger: process.logger)
            figures.departments = departments.filter { $0.revokedAt == nil }.count
            let sync = try await ConnectorStore().status(client: process.database, logger: process.logger)
            figures.departmentsFailing = sync.filter { $0.consecutiveFailures > 0 }.count
            figures.departmentsPaused = sync.filter(\.paused).count
            figures.largestSyncLagSeconds = sync.map(\.lagSeconds).max() ?? 0
            return figures
        }
        if self.json {
            print(OperatorCommand.jsonLine(figures))
            return
        }
        print("queue          available  scheduled  running  dead  oldest waiting")
        for queue in figures.queues {
            print(
                queue.queue.padding(toLength: 15, withPad: " ", startingAt: 0)
                    + "\(queue.available)".leftPadded(9) + "\(queue.scheduled)".leftPadded(11) + "\(queue.running)".leftPadded(9)
                    + "\(queue.dead)".leftPadded(6) + "\(Int(queue.oldestAvailableSeconds)) s".leftPadded(16))
        }
        print(
            """
            residents      \(figures.residents)
            cases          \(figures.openCases) open (\(figures.overdueCases) past their due date), \(figures.closedCases) closed
            documents      \(figures.documents) stored, \(ByteCountFormatter.string(fromByteCount: figures.documentBytes, countStyle: .file))
            to departments \(figures.pendingForDepartments) uploads and messages not yet delivered
            mail           \(figures.mailsSentLastDay) sent and \(figures.mailsFailedLastDay) failed in the last day, \(figures.mailsSending) being sent
            departments    \(figures.departments) active; \(figures.departmentsFailing) failing, \(figures.departmentsPaused) paused; largest sync lag \(Int(figures.largestSyncLagSeconds)) s
            database       \(ByteCountFormatter.string(fromByteCount: figures.databaseBytes, countStyle: .file))
            """)
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        self.count >= width ? self : String(repeating: " ", count: width - self.count) + self
    }
}

// MARK: privacy

/// `PortalAPI privacy ...`: requests under the GDPR about one person (docs/OPERATIONS.md, "Privacy requests").
struct PrivacyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privacy",
        abstract: "Export or erase everything the portal holds about one BSN or KvK number.",
        discussion:
            "The number is read from standard input (one line), never from the command line, so it stays out of shell history and process lists.",
        subcommands: [Export.self, Erase.self]
    )

    struct Who: ParsableArguments {
        @Flag(help: "The number is a KvK number (a business) instead of a BSN.") var kvk = false

        /// Reads and checks the number from standard input.
        func subject() throws -> Subject {
            guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else {
                throw OperatorCommand.refuse("give the \(self.kvk ? "KvK number" : "BSN") on standard input")
            }
            do {
                return try Subject(kind: self.kvk ? .kvk : .bsn, validating: line)
            } catch {
                throw OperatorCommand.refuse("not a valid \(self.kvk ? "KvK number" : "BSN"): \(error)")
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print everything about the person as one JSON document (recorded in the audit log).")
        @OptionGroup var who: Who

        func run() async throws {
            let subject = try self.who.subject()
            let hasher = try Self.hasher()
            let document = try await OperatorCommand.run("PortalAPI privacy export") { process in
                try await PrivacyStore(
                    client: process.database, audit: AuditLog(hasher: hasher, database: process.database), logger: process.logger
                ).export(subject, hasher: hasher, actor: OperatorCommand.actor, traceID: TraceContext.newTraceID())
            }
            print(document)
        }

        static func hasher() throws -> SubjectHasher {
            do {
                return try SubjectHasher(environment: EnvironmentReader())
            } catch {
                EntryPoint.fail("PortalAPI privacy", error, status: 78)
            }
        }
    }

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase the person's profile, sessions, cases, documents, messages, notifications and mails.",
            discussion: """
                Audit records stay (the municipality must account for its processing; they hold only a keyed hash) and \
                one more records the erasure. Nothing is erased while an upload or message of the person waits for a \
                department. Without --yes it only shows what would go.
                """
        )
        @OptionGroup var who: Who
        @Flag(help: "Really erase; without it, only count.") var yes = false
        @Flag(help: "One JSON object.") var json = false

        func run() async throws {
            let subject = try self.who.subject()
            let hasher = try Export.hasher()
            let erasure = try await OperatorCommand.run("PortalAPI privacy erase") { process in
                let storages = try DocumentSettings(EnvironmentReader()).storages(database: process.database, logger: process.logger)
                return try await PrivacyStore(
                    client: process.database, audit: AuditLog(hasher: hasher, database: process.database), logger: process.logger
                ).erase(subject, actor: OperatorCommand.actor, traceID: TraceContext.newTraceID(), dryRun: !self.yes, storages: storages)
            }
            if self.json {
                print(OperatorCommand.jsonLine(erasure))
            } else {
                let what =
                    "\(erasure.resident) profile, \(erasure.cases) cases, \(erasure.documents) documents, \(erasure.messages) messages, "
                    + "\(erasure.notifications) notifications, \(erasure.mails) mails"
                print(erasure.erased ? "erased: \(what)" : "would erase: \(what)")
            }
            if erasure.waitingForDepartment > 0 {
                throw OperatorCommand.refuse(
                    "not erased: \(erasure.waitingForDepartment) uploads or messages wait for their department; erase after they are delivered"
                )
            }
        }
    }
}

// MARK: templates

/// `PortalAPI templates preview`: the mail templates rendered with sample data.
struct TemplatesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "templates",
        abstract: "Mail templates (docs/MAIL.md).",
        subcommands: [Preview.self]
    )

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every mail in both languages, rendered with sample data by the templates the notifier would use.",
            discussion: "Reads PORTAL_MAIL_TEMPLATES_DIR (or the bundled templates); needs no database and no relay."
        )

        func run() async throws {
            do {
                let templates = try await MailTemplates(directory: EnvironmentReader().string("PORTAL_MAIL_TEMPLATES_DIR"))
                print(try MailPreview.render(templates), terminator: "")
            } catch {
                EntryPoint.fail("PortalAPI templates preview", error, status: 1)
            }
        }
    }
}
