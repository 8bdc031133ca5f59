import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// `PortalAPI jobs|mail|stats|privacy`, as an operator runs them: real child processes against a test database.
@Suite("Operator commands")
struct OperatorCommandTests {
    static func environment(_ database: TestDatabase) -> [String: String] {
        let settings = database.settings
        return [
            "PORTAL_DATABASE_URL": "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable",
            "PORTAL_AUDIT_KEY": APIHarness.auditKey,
        ]
    }

    static func run(
        _ database: TestDatabase, _ arguments: [String], input: String? = nil
    ) async throws -> (status: Int32, printed: String, output: String) {
        let process = try ChildProcess("PortalAPI", environment: Self.environment(database), arguments: arguments, input: input)
        let status = await process.waitForExit()
        return (status, process.printed, process.output)
    }

    @Test("jobs: list by queue, state and kind; show masks a verification code; retry gives a dead job new attempts; cancel")
    func jobs() async throws {
        try await TestDatabase.with { database async throws in
            let verification = try NewJob(VerificationMailJob.kind, payload: VerificationMailJob(resident: UUID(), code: "482913"))
            guard case .enqueued(let dead) = try await database.jobs.enqueue(verification),
                case .enqueued(let waiting) = try await database.jobs.enqueue(
                    try NewJob(SyncJobs.feedPull, payload: .init(department: UUID()), runAt: Date().addingTimeInterval(3600)))
            else { throw TestSetupError("enqueue") }
            try await database.client.query(
                "UPDATE jobs SET state = 'dead', attempt = 8, finished_at = now(), last_error = 'relay refused' WHERE id = \(dead.rawValue)"
            )

            let listed = try await Self.run(database, ["jobs", "list", "--state", "dead", "--json"])
            #expect(listed.status == 0, "\(listed.output)")
            let lines = listed.printed.split(separator: "\n").map {
                try? JSONDecoder().decode([String: JSONValue].self, from: Data($0.utf8))
            }
            #expect(lines.count == 1 && lines.first??["id"] == .number(Double(dead.rawValue)) && lines.first??["state"] == .string("dead"))
            #expect(!listed.printed.contains("482913"), "a verification code is masked")
            let scheduled = try await Self.run(database, ["jobs", "list", "--queue", "sync", "--state", "scheduled"])
            #expect(scheduled.printed.contains("\(waiting)  sync  sync.feed.pull  scheduled  attempt 0/20"), "\(scheduled.printed)")
            #expect(try await Self.run(database, ["jobs", "list", "--kind", "no.such.kind"]).printed == "no jobs match\n")

            let shown = try await Self.run(database, ["jobs", "show", "\(dead)"])
            #expect(
                shown.printed.contains("relay refused") && shown.printed.contains(#""code":"***""#) && !shown.printed.contains("482913"))
            #expect(try await Self.run(database, ["jobs", "show", "999999"]).status == 1)

            #expect(try await Self.run(database, ["jobs", "retry", "\(dead)"]).status == 0)
            let retried = try #require(try await database.jobs.job(dead))
            #expect(retried.state == .pending && retried.attempt == 0 && retried.runAt <= Date())
            let again = try await Self.run(database, ["jobs", "retry", "\(dead)", "\(waiting)", "424242"])
            #expect(again.status == 1 && again.output.contains("424242"))

            #expect(try await Self.run(database, ["jobs", "cancel", "\(waiting)"]).status == 0)
            #expect(try await database.jobs.job(waiting)?.state == .cancelled)
            #expect(try await Self.run(database, ["jobs", "cancel", "\(waiting)"]).status == 1, "cancelled already")
            #expect(try await Self.run(database, ["jobs", "list", "--state", "nonsense"]).status != 0)
        }
    }

    @Test("stats sums up queues, cases and mail; --json has the same figures")
    func stats() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            #expect(try await fixture.upload(DocumentFixture.pdf(), name: "a.pdf").status == .created)
            let json = try await Self.run(api.database, ["stats", "--json"])
            #expect(json.status == 0, "\(json.output)")
            let figures = try JSONDecoder().decode([String: JSONValue].self, from: Data(json.printed.utf8))
            #expect(
                figures["openCases"] == .number(1) && figures["documents"] == .number(1) && figures["pendingForDepartments"] == .number(1))
            #expect(figures["residents"] == .number(1) && figures["departments"] == .number(1))
            let text = try await Self.run(api.database, ["stats"])
            #expect(text.printed.contains("cases          1 open (0 past their due date), 0 closed"), "\(text.printed)")
        }
    }

    @Test("privacy: export has everything about one BSN and nothing of another; erase waits for pending uploads, then removes it all")
    func privacy() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            #expect(try await fixture.upload(DocumentFixture.pdf(), name: "loonstrook.pdf").status == .created)
            // Another resident's case, which must stay out of the export and survive the erasure.
            let other = try await api.request(
                .put, "/api/v1/department/cases/Z-2026-009", headers: fixture.department,
                json: CaseTrackingTests.caseBody(bsn: DocumentFixture.otherBSN))
            #expect(other.status == .created)

            #expect(try await Self.run(api.database, ["privacy", "export"], input: "123\n").status == 1, "an invalid BSN is refused")
            let export = try await Self.run(api.database, ["privacy", "export"], input: DocumentFixture.bsn + "\n")
            #expect(export.status == 0, "\(export.output)")
            let document = try JSONDecoder().decode([String: JSONValue].self, from: Data(export.printed.utf8))
            #expect(document["cases"]?.arrayValue?.count == 1 && document["documents"]?.arrayValue?.count == 1)
            #expect(document["cases"]?.arrayValue?.first?.objectValue?["history"]?.arrayValue?.isEmpty == false)
            #expect(document["resident"]?.objectValue != nil && document["auditRecords"]?.arrayValue?.isEmpty == false)
            #expect(!export.printed.contains(DocumentFixture.otherBSN) && !export.printed.contains("Z-2026-009"))
            #expect(!export.output.dropFirst(export.printed.count).contains(DocumentFixture.bsn), "the number is not logged")

            let dry = try await Self.run(api.database, ["privacy", "erase"], input: DocumentFixture.bsn + "\n")
            #expect(dry.status == 1 && dry.output.contains("1 uploads or messages wait for their department"), "\(dry.output)")
            try await api.database.client.query("UPDATE documents SET delivery = 'delivered', delivered_at = now()")
            let preview = try await Self.run(api.database, ["privacy", "erase"], input: DocumentFixture.bsn + "\n")
            #expect(preview.status == 0 && preview.printed.contains("would erase: 1 profile, 1 cases, 1 documents"), "\(preview.output)")
            #expect(try await api.database.scalar("SELECT count(*)::int FROM cases", as: Int.self) == 2)

            let erased = try await Self.run(api.database, ["privacy", "erase", "--yes", "--json"], input: DocumentFixture.bsn + "\n")
            #expect(erased.status == 0, "\(erased.output)")
            #expect(try await api.database.scalar("SELECT string_agg(reference, ',') FROM cases", as: String.self) == "Z-2026-009")
            for table in ["residents", "documents", "document_chunks", "sessions"] {
                #expect(
                    try await api.database.scalar(PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM \(table)"), as: Int.self) == 0,
                    "\(table)")
            }
            let hash = SubjectHasher(key: APIHarness.auditKey).hash(try Subject(kind: .bsn, validating: DocumentFixture.bsn))
            #expect(
                try await api.database.scalar(
                    "SELECT string_agg(activity, ',' ORDER BY id) FROM audit_log WHERE subject_hash = \(hash) AND activity LIKE 'privacy.%'",
                    as: String.self) == "privacy.export,privacy.erase")
            // The erased resident's session no longer works.
            #expect(try await api.request(.get, "/api/v1/cases", headers: fixture.session.headers).status == .unauthorized)
        }
    }

    @Test("mail resend: a mail the relay refused goes again, once fixed, to the same address with the same Message-ID")
    func resend() async throws {
        let address = NotifierTests.address
        let smtp = try await SMTPTestServer(.plain, refuse: [address: 550], refuseTimes: [address: 1])
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await NotifierTests.department(api)
            _ = try await NotifierTests.createCase(api, department, "Z-1")
            try await NotifierHarness.with(api.database, settings: try NotifierHarness.settings(smtp)) { _ async throws in
                try await NotifierTests.push(api, department, "Z-1", event: "Z-1-2")
                #expect(
                    try await eventually {
                        try await api.database.scalar("SELECT count(*)::int FROM mail_deliveries WHERE state = 'failed'", as: Int.self) == 1
                    })
                let failed = try await Self.run(api.database, ["mail", "failed"])
                #expect(failed.printed.contains("r***@example.org") && !failed.printed.contains(address), "\(failed.printed)")
                let id = try await api.database.scalar("SELECT id FROM mail_deliveries", as: Int64.self)
                let resent = try await Self.run(api.database, ["mail", "resend", "\(id)"])
                #expect(resent.status == 0 && resent.printed.contains("queued again"), "\(resent.output)")
                #expect(
                    try await eventually {
                        try await api.database.scalar("SELECT count(*)::int FROM mail_deliveries WHERE state = 'sent'", as: Int.self) == 1
                    })
                #expect(try await Self.run(api.database, ["mail", "resend", "\(id)"]).status == 1, "sent already")
            }
            let messages = try smtp.messages()
            let messageID = try await api.database.scalar("SELECT message_id FROM mail_deliveries", as: String.self)
            #expect(messages.count == 1 && messages.first?.message.contains("Message-ID: \(messageID)") == true)
        }
    }
}
