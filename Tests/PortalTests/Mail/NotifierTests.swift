import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Shared
import Testing

@testable import Notifier
@testable import PortalAPI

/// The notifier end to end: a department's status push in the API, the notifier in this process, a real SMTP server
/// (aiosmtpd) as the relay. Every test waits for what it expects in the database or the relay's mailbox.
@Suite("Notifier")
struct NotifierTests {
    static let address = "resident@example.org"

    /// A department with the test case type, and case `reference` for `bsn` (its form address `contact`).
    static func department(_ api: APIHarness, name: String = "Burgerzaken") async throws -> HTTPFields {
        try await CaseTrackingTests.department(api, name: name)
    }

    static func createCase(
        _ api: APIHarness, _ department: HTTPFields, _ reference: String, bsn: String = "999993653", contact: String? = address,
        language: String = "nl"
    ) async throws -> UUID {
        let contactField = contact.map { #", "contactEmail": "\#($0)""# } ?? ""
        let body = #"""
            {"subject": {"bsn": "\#(bsn)"}, "caseType": "paspoort", "title": "Paspoort aanvragen",
             "submittedAt": "2026-11-20T09:12:00Z", "language": "\#(language)"\#(contactField)}
            """#
        let created = try await api.request(.put, "/api/v1/department/cases/\(reference)", headers: department, json: body)
        try #require(created.status == .created, "\(String(buffer: created.body))")
        let first = try await api.request(
            .post, "/api/v1/department/cases/\(reference)/statuses", headers: department,
            json: CaseTrackingTests.status("\(reference)-1", "ontvangen", at: "2026-11-20T09:12:00Z", text: "Ontvangen"))
        try #require(first.status == .created)
        return try #require(UUID(uuidString: try APIHarness.object(created)["id"]?.stringValue ?? ""))
    }

    /// Pushes a status that informs the resident.
    static func push(
        _ api: APIHarness, _ department: HTTPFields, _ reference: String, event: String, at: String = "2026-11-21T10:00:00Z"
    )
        async throws
    {
        let pushed = try await api.request(
            .post, "/api/v1/department/cases/\(reference)/statuses", headers: department,
            json: CaseTrackingTests.status(event, "in-behandeling", at: at, text: "In behandeling"))
        try #require(pushed.status == .created, "\(String(buffer: pushed.body))")
    }

    static func count(_ database: TestDatabase, _ query: PostgresQuery) async throws -> Int {
        try await database.scalar(query, as: Int.self)
    }

    @Test("a status push over STARTTLS with AUTH: exactly one mail, with the right headers, parts, language and link, and no personal data")
    func statusPushSendsOneMail() async throws {
        let smtp = try await SMTPTestServer(.starttls, user: "portal", password: "geheim")
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            let caseID = try await Self.createCase(api, department, "Z-1")
            // A resident who logged in but never chose a language gets mail about an English case in English.
            _ = try await Self.createCase(api, department, "Z-2", bsn: "111222333", contact: "buurman@example.org", language: "en")
            _ = try await api.devLogin(bsn: "111222333")
            let settings = try NotifierHarness.settings(smtp, mode: .starttls, user: "portal", password: "geheim")
            try await NotifierHarness.with(api.database, settings: settings) { _ async throws in
                try await Self.push(api, department, "Z-1", event: "Z-1-2")
                try await Self.push(api, department, "Z-2", event: "Z-2-2")
                let sent = try await eventually {
                    try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries WHERE state = 'sent'") == 2
                }
                #expect(sent)
            }
            // The first status ("ontvangen") informs nobody; each push is one mail.
            let messages = try smtp.messages()
            try #require(messages.count == 2)
            let english = try #require(messages.first { $0.envelope["to"] == .array([.string("buurman@example.org")]) })
            #expect(try MailMessageTests.parsed(Array(english.message.utf8))["Subject"] == "There is news about your case")
            let (raw, envelope) = try #require(messages.first { $0.envelope["to"] == .array([.string(Self.address)]) })
            #expect(envelope["to"] == .array([.string(Self.address)]))
            #expect(envelope["tls"] == .bool(true) && envelope["authenticated"] == .bool(true))
            let mail = try MailMessageTests.parsed(Array(raw.utf8))
            let messageID = try await api.database.scalar(
                "SELECT message_id FROM mail_deliveries WHERE address = \(Self.address)", as: String.self)
            #expect(mail["Message-ID"] == messageID)
            #expect(mail["Subject"] == "Er is nieuws over uw zaak")
            #expect(mail["Content-Language"] == "nl")
            #expect(mail["From"] == "Gemeente Test <noreply@portal.test>")
            #expect(mail["List-Unsubscribe"] == "<https://portal.test/instellingen/e-mail>")
            #expect(mail["defects"] == "0")
            let text = try #require(mail["text/plain"])
            let html = try #require(mail["text/html"])
            #expect(text.contains("Er is een nieuwe status. Bekijk de zaak: https://portal.test/zaken/\(caseID.uuidString.lowercased())"))
            #expect(
                html.contains("<html lang=\"nl\">") && html.contains("href=\"https://portal.test/zaken/\(caseID.uuidString.lowercased())\"")
            )
            // Nothing a stranger should read: no BSN, no title, no status text, no department.
            for secret in ["999993653", "Paspoort", "In behandeling", "Burgerzaken"] {
                #expect(!raw.contains(secret) && !text.contains(secret) && !html.contains(secret), "\(secret)")
            }
            let attempts = try await api.database.client.query("SELECT delivery_id, outcome, reply FROM mail_attempts ORDER BY id")
            var recorded: [String] = []
            for try await (delivery, outcome, reply) in attempts.decode((Int64, String, String?).self) {
                recorded.append("\(delivery) \(outcome) \(reply ?? "-")")
            }
            #expect(recorded.count == 2 && recorded.allSatisfy { $0.contains(" sent 250") }, "\(recorded)")
        }
    }

    @Test("a resident's verified address and language win over the case's: the code mail, then a status mail in English over implicit TLS")
    func verifiedAddressAndLanguage() async throws {
        let smtp = try await SMTPTestServer(.implicit)
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            _ = try await Self.createCase(api, department, "Z-1")
            let session = try await api.devLogin(bsn: "999993653")
            let settings = try NotifierHarness.settings(smtp, mode: .implicit)
            try await NotifierHarness.with(api.database, settings: settings) { _ async throws in
                let patched = try await api.request(
                    .patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"locale": "en", "email": "inwoner@example.nl"}"#)
                #expect(patched.status == .ok)
                #expect(try APIHarness.object(patched)["pendingEmail"] == .string("inwoner@example.nl"))
                #expect(try await eventually { try smtp.messages().count == 1 })
                let codeMail = try MailMessageTests.parsed(Array(try #require(try smtp.messages().first).message.utf8))
                #expect(codeMail["To"] == "inwoner@example.nl" && codeMail["Subject"] == "Your code to confirm your e-mail address")
                #expect(codeMail["List-Unsubscribe"] == "None")
                let lines = (codeMail["text/plain"] ?? "").split(separator: "\n").map(String.init)
                let code = try #require(lines.first { $0.count == 6 && $0.allSatisfy(\.isNumber) })

                // Until the code is typed, mail goes where it went before: the address on the case's form.
                try await Self.push(api, department, "Z-1", event: "Z-1-2")
                #expect(try await eventually { try smtp.messages().count == 2 })
                #expect(try smtp.messages()[1].envelope["to"] == .array([.string(Self.address)]))

                let verified = try await api.request(
                    .post, "/api/v1/me/email-verification", headers: session.unsafeHeaders, json: #"{"code": "\#(code)"}"#)
                #expect(verified.status == .ok, "\(String(buffer: verified.body))")
                #expect(try APIHarness.object(verified)["email"] == .string("inwoner@example.nl"))

                try await Self.push(api, department, "Z-1", event: "Z-1-3", at: "2026-11-22T10:00:00Z")
                #expect(try await eventually { try smtp.messages().count == 3 })
            }
            let messages = try smtp.messages()
            try #require(messages.count == 3)
            let (raw, envelope) = messages[2]
            // (The server speaks only TLS, so every mail it took came over TLS; aiosmtpd marks STARTTLS sessions only.)
            #expect(envelope["to"] == .array([.string("inwoner@example.nl")]))
            let mail = try MailMessageTests.parsed(Array(raw.utf8))
            #expect(mail["Subject"] == "There is news about your case" && mail["Content-Language"] == "en")
            // The address is in no log line of the API.
            #expect(api.log.lines(containing: "inwoner@example.nl").isEmpty)
        }
    }

    @Test(
        "a message about no case reaches the resident's verified address in the same mail as case news, linking to the inbox, without its content"
    )
    func generalMessage() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            let caseID = try await Self.createCase(api, department, "Z-1")
            _ = try await api.devLogin(bsn: "999993653")
            try await api.database.client.query(
                "UPDATE residents SET email = 'geverifieerd@example.org', email_verified_at = now() WHERE subject = '999993653'")
            // Both before the notifier starts: one mail with a line for each.
            let sent = try await api.request(
                .post, "/api/v1/department/messages", headers: department,
                json: #"{"recipient": {"bsn": "999993653"}, "title": "Uw nieuwe paspoortregels", "body": "Vertrouwelijke inhoud 42"}"#)
            #expect(sent.status == .created, "\(String(buffer: sent.body))")
            try await Self.push(api, department, "Z-1", event: "Z-1-2")
            let settings = try NotifierHarness.settings(smtp)
            try await NotifierHarness.with(api.database, settings: settings) { _ async throws in
                #expect(try await eventually { (try? smtp.messages().count) == 1 })
            }
            let (raw, envelope) = try #require(try smtp.messages().first)
            #expect(envelope["to"] == .array([.string("geverifieerd@example.org")]))
            let text = try #require(try MailMessageTests.parsed(Array(raw.utf8))["text/plain"])
            #expect(text.contains("U hebt een nieuw bericht. Bekijk uw berichten: https://portal.test/berichten"))
            #expect(text.contains("Bekijk de zaak: https://portal.test/zaken/\(caseID.uuidString.lowercased())"))
            for secret in ["Vertrouwelijke inhoud", "paspoortregels", "999993653"] { #expect(!raw.contains(secret), "\(secret)") }
        }
    }

    @Test("events for one resident within the merge window are one mail that lists them all")
    func mergeWindow() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            let first = try await Self.createCase(api, department, "Z-1")
            let second = try await Self.createCase(api, department, "Z-2")
            // Another resident's case, pushed at the same time: a mail of its own.
            _ = try await Self.createCase(api, department, "Z-3", bsn: "111222333", contact: "buurman@example.org")
            // Every event is in before the notifier starts, so the merge does not depend on how fast this machine
            // pushes; the window still holds each mail back until its oldest notification is that old.
            try await Self.push(api, department, "Z-1", event: "Z-1-2")
            try await Self.push(api, department, "Z-2", event: "Z-2-2")
            try await Self.push(api, department, "Z-3", event: "Z-3-2")
            // A correction of the first, before the mail went: the resident never saw what it corrects, so the mail
            // says "a new status" once for that case, not "corrected".
            let correction = try await api.request(
                .post, "/api/v1/department/cases/Z-1/statuses", headers: department,
                json: CaseTrackingTests.status(
                    "Z-1-3", "in-behandeling", at: "2026-11-21T11:00:00Z", text: "In behandeling", extra: #", "corrects": "Z-1-2""#))
            #expect(correction.status == .created)
            let settings = try NotifierHarness.settings(smtp, window: .seconds(3))
            try await NotifierHarness.with(api.database, settings: settings) { _ async throws in
                #expect(
                    try await eventually {
                        let open = try await Self.count(api.database, "SELECT count(*) FROM notifications WHERE delivery_id IS NULL")
                        let sent = try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries WHERE state = 'sent'")
                        return open == 0 && sent == 2
                    })
            }
            // No mail was put together before its oldest notification had waited out the window.
            let early = try await Self.count(
                api.database,
                """
                SELECT count(*) FROM mail_deliveries d
                WHERE d.created_at < (SELECT min(n.created_at) FROM notifications n WHERE n.delivery_id = d.id) + interval '3 seconds'
                """)
            #expect(early == 0)
            let messages = try smtp.messages()
            #expect(messages.count == 2)
            let mine = try #require(messages.first { $0.envelope["to"] == .array([.string(Self.address)]) })
            let mail = try MailMessageTests.parsed(Array(mine.message.utf8))
            #expect(mail["Subject"] == "Er is nieuws over 2 van uw zaken")
            let text = try #require(mail["text/plain"])
            #expect(text.components(separatedBy: "Er is een nieuwe status.").count - 1 == 2)
            #expect(text.contains("Er is een nieuwe status. Bekijk de zaak: https://portal.test/zaken/\(first.uuidString.lowercased())"))
            #expect(!text.contains("verbeterd"))
            #expect(text.contains("https://portal.test/zaken/\(second.uuidString.lowercased())"))
            #expect(try await Self.count(api.database, "SELECT count(*) FROM notifications") == 4)
        }
    }

    @Test("a 4xx reply is retried with backoff until the relay accepts; one mail, every attempt recorded")
    func temporaryRefusalIsRetried() async throws {
        let smtp = try await SMTPTestServer(.plain, refuse: [Self.address: 451], refuseTimes: [Self.address: 2])
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            _ = try await Self.createCase(api, department, "Z-1")
            try await NotifierHarness.with(api.database, settings: try NotifierHarness.settings(smtp)) { _ async throws in
                try await Self.push(api, department, "Z-1", event: "Z-1-2")
                #expect(
                    try await eventually {
                        try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries WHERE state = 'sent'") == 1
                    })
            }
            #expect(try smtp.messages().count == 1)
            let outcomes = try await api.database.client.query("SELECT outcome, reply FROM mail_attempts ORDER BY id")
            var seen: [String] = []
            for try await (outcome, reply) in outcomes.decode((String, String?).self) {
                seen.append(outcome)
                if outcome == "transient" { #expect(reply?.contains("451") == true) }
            }
            #expect(seen == ["transient", "transient", "sent"])
            // One delivery, one Message-ID, however many attempts.
            #expect(try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries") == 1)
        }
    }

    @Test(
        "a 5xx reply fails the mail for good without a retry: an error line without the address, a metric, the operator's list, the case page"
    )
    func permanentRefusalFails() async throws {
        let smtp = try await SMTPTestServer(.plain, refuse: [Self.address: 550])
        defer { smtp.stop() }
        let log = TestLog()
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            let caseID = try await Self.createCase(api, department, "Z-1")
            let session = try await api.devLogin(bsn: "999993653")
            let settings = try NotifierHarness.settings(smtp)
            try await NotifierHarness.with(api.database, settings: settings, logger: log.logger("Notifier")) { notifier async throws in
                try await Self.push(api, department, "Z-1", event: "Z-1-2")
                #expect(
                    try await eventually {
                        try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries WHERE state = 'failed'") == 1
                    })
                #expect(try await eventually { try await Self.count(api.database, "SELECT count(*) FROM jobs WHERE state = 'dead'") == 1 })
                #expect(notifier.metric(#"portal_mail_failed_total{kind="update"}"#) == 1)
            }
            #expect(try smtp.messages().isEmpty)
            #expect(try await Self.count(api.database, "SELECT count(*) FROM mail_attempts") == 1)
            let errors = log.captured.filter { $0.hasPrefix("error ") }
            #expect(errors.count == 1 && errors.allSatisfy { $0.contains("550") })
            #expect(log.lines(containing: Self.address).isEmpty)

            let failed = try await MailDeliveryStore(client: api.database.client, messageIDDomain: "", logger: api.database.logger).failed()
            #expect(failed.map(\.maskedAddress) == ["r***@example.org"] && failed.first?.lastReply?.contains("550") == true)
            let table = MailCommand.Failed.table(failed)
            #expect(table.contains("r***@example.org\t1\t") && table.contains("550") && !table.contains(Self.address))

            let page = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(caseID.uuidString.lowercased())", headers: session.headers))
            #expect(page["mailFailed"] == .bool(true))
        }
    }

    @Test("a relay that is down delays mail and loses none: attempts fail as temporary until it is back")
    func relayDownThenBack() async throws {
        let port = try freePort()
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            _ = try await Self.createCase(api, department, "Z-1")
            _ = try await Self.createCase(api, department, "Z-2", bsn: "111222333", contact: "buurman@example.org")
            let settings = try NotifierHarness.settings(port: port)
            let smtp = try await NotifierHarness.with(api.database, settings: settings) { _ async throws -> SMTPTestServer in
                try await Self.push(api, department, "Z-1", event: "Z-1-2")
                try await Self.push(api, department, "Z-2", event: "Z-2-2")
                #expect(
                    try await eventually {
                        try await Self.count(
                            api.database, "SELECT count(DISTINCT delivery_id) FROM mail_attempts WHERE outcome = 'transient'") == 2
                    })
                let smtp = try await SMTPTestServer(.plain, port: port)
                #expect(
                    try await eventually {
                        try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries WHERE state = 'sent'") == 2
                    })
                return smtp
            }
            defer { smtp.stop() }
            let recipients = try smtp.messages().compactMap { $0.envelope["to"].map { "\($0)" } }
            #expect(
                Set(recipients) == ["\(JSONValue.array([.string(Self.address)]))", "\(JSONValue.array([.string("buurman@example.org")]))"])
        }
    }

    @Test("no mail without an address or against the resident's wish; messages cannot be switched off")
    func skippedNotifications() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            _ = try await Self.createCase(api, department, "Z-1", contact: nil)
            _ = try await Self.createCase(api, department, "Z-2", bsn: "111222333", contact: "buurman@example.org")
            let neighbour = try await api.devLogin(bsn: "111222333")
            let refused = try await api.request(
                .patch, "/api/v1/me", headers: neighbour.unsafeHeaders, json: #"{"mailPreferences": {"message": false, "colour": true}}"#)
            #expect(try APIHarness.invalidParams(refused) == ["mailPreferences.colour", "mailPreferences.message"])
            let off = try await api.request(
                .patch, "/api/v1/me", headers: neighbour.unsafeHeaders, json: #"{"mailPreferences": {"status": false}}"#)
            #expect(
                try APIHarness.object(off)["mailPreferences"]
                    == .object(["status": .bool(false), "document": .bool(true), "overdue": .bool(true)]))
            try await NotifierHarness.with(api.database, settings: try NotifierHarness.settings(smtp)) { _ async throws in
                try await Self.push(api, department, "Z-1", event: "Z-1-2")
                try await Self.push(api, department, "Z-2", event: "Z-2-2")
                #expect(
                    try await eventually {
                        try await Self.count(api.database, "SELECT count(*) FROM notifications WHERE skipped IS NOT NULL") == 2
                    })
            }
            let reasons = try await api.database.client.query("SELECT skipped FROM notifications ORDER BY id")
            #expect(try await reasons.decode(String.self).collect() == ["no-address", "switched-off"])
            #expect(try smtp.messages().isEmpty)
        }
    }

    @Test("a case past its due date is announced once, however often the scan runs")
    func overdueOnce() async throws {
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            _ = try await Self.createCase(api, department, "Z-1")
            _ = try await Self.createCase(api, department, "Z-2")
            // Z-1 became overdue yesterday; Z-2 a month ago (old news, not mailed).
            try await api.database.client.query(
                """
                UPDATE cases SET due_date = CASE reference WHEN 'Z-1' THEN (now() AT TIME ZONE 'Europe/Amsterdam')::date - 1
                                                           ELSE (now() AT TIME ZONE 'Europe/Amsterdam')::date - 30 END
                """)
            for _ in 0..<2 {
                _ = try await api.database.client.withConnection { connection in
                    try await NotificationStore().recordOverdue(jobs: api.database.jobs, on: connection, logger: api.database.logger)
                }
            }
            let rows = try await api.database.client.query(
                "SELECT c.reference, n.kind FROM notifications n JOIN cases c ON c.id = n.case_id")
            #expect(try await rows.decode((String, String).self).collect().map { "\($0.0) \($0.1)" } == ["Z-1 overdue"])
            #expect(try await Self.count(api.database, "SELECT count(*) FROM jobs WHERE kind = 'mail.notification'") == 1)
        }
    }

    @Test("twenty notifications for one resident at once, their jobs running together: one mail with every one of them")
    func concurrentJobsOfOneResident() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            try await api.database.client.query(
                """
                WITH department AS (INSERT INTO departments (name) VALUES ('Burgerzaken') RETURNING id),
                     type AS (INSERT INTO case_types (department_id, code, name_nl) SELECT id, 'paspoort', 'Paspoort' FROM department RETURNING id, department_id)
                INSERT INTO cases (department_id, reference, subject_kind, subject, case_type_id, title, submitted_at, contact_email)
                SELECT type.department_id, 'C-' || i, 'bsn', '999993653', type.id, 'Paspoort', now(), \(Self.address)
                FROM type, generate_series(1, 20) AS i
                """)
            var ids: [UUID] = []
            for try await id in try await api.database.client.query("SELECT id FROM cases").decode(UUID.self) { ids.append(id) }
            let caseIDs = ids
            try await NotifierHarness.with(api.database, settings: try NotifierHarness.settings(smtp)) { _ async throws in
                try await api.database.client.withConnection { connection in
                    let notifications = caseIDs.enumerated().map {
                        NewNotification.status(event: Int64($0.offset + 1), caseID: $0.element, correction: false)
                    }
                    try await NotificationStore().record(
                        notifications, jobs: api.database.jobs, traceID: nil, on: connection, logger: api.database.logger)
                }
                #expect(
                    try await eventually { try await Self.count(api.database, "SELECT count(*) FROM jobs WHERE state = 'completed'") == 20 }
                )
            }
            #expect(try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries") == 1)
            #expect(try await Self.count(api.database, "SELECT count(*) FROM notifications WHERE delivery_id IS NULL") == 0)
            let messages = try smtp.messages()
            try #require(messages.count == 1)
            #expect(try MailMessageTests.parsed(Array(messages[0].message.utf8))["Subject"] == "Er is nieuws over 20 van uw zaken")
        }
    }

    @Test("a status job queued by an API from before notifications (a rolling upgrade) still leads to its mail")
    func legacyStatusJob() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            let caseID = try await Self.createCase(api, department, "Z-1")
            try await NotifierHarness.with(api.database, settings: try NotifierHarness.settings(smtp)) { _ async throws in
                try await api.database.client.query(
                    """
                    INSERT INTO jobs (queue, kind, max_attempts, payload, unique_key)
                    VALUES ('notifications', 'notification.status', 20,
                            jsonb_build_object('caseID', \(caseID.uuidString), 'correction', false, 'statusEvent', 4242), 'status-event:4242');
                    """)
                #expect(try await eventually { try smtp.messages().count == 1 })
            }
            #expect(
                try await Self.count(
                    api.database, "SELECT count(*) FROM notifications WHERE key = 'status:4242' AND delivery_id IS NOT NULL") == 1)
        }
    }

    @Test("a delivery whose job ended without sending it is marked failed, with the error signal of a refusal")
    func abandonedDelivery() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        let log = TestLog()
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api)
            let caseID = try await Self.createCase(api, department, "Z-1")
            // What a crash on the job's last attempt leaves: a delivery still sending, its job dead.
            try await api.database.client.query(
                """
                WITH job AS (
                    INSERT INTO jobs (queue, kind, payload, state, attempt, max_attempts, finished_at)
                    VALUES ('notifications', 'mail.notification', '{"notification": 1}', 'dead', 25, 25, now()) RETURNING id
                ), delivery AS (
                    INSERT INTO mail_deliveries (kind, message_id, address, language, job_id, created_at)
                    SELECT 'update', '<abandoned@portal.test>', \(Self.address), 'nl', id, now() - interval '2 minutes' FROM job
                    RETURNING id
                )
                INSERT INTO notifications (key, kind, case_id, delivery_id) SELECT 'status:1', 'status', \(caseID), id FROM delivery
                """)
            let settings = try NotifierHarness.settings(smtp, housekeeping: .milliseconds(100))
            try await NotifierHarness.with(api.database, settings: settings, logger: log.logger("Notifier")) { notifier async throws in
                #expect(
                    try await eventually {
                        try await Self.count(api.database, "SELECT count(*) FROM mail_deliveries WHERE state = 'failed'") == 1
                    })
                #expect(try await eventually { notifier.metric(#"portal_mail_failed_total{kind="update"}"#) == 1 })
            }
            #expect(log.captured.filter { $0.hasPrefix("error ") && $0.contains("its job ended") }.count == 1)
            let session = try await api.devLogin(bsn: "999993653")
            let page = try APIHarness.object(
                try await api.request(.get, "/api/v1/cases/\(caseID.uuidString.lowercased())", headers: session.headers))
            #expect(page["mailFailed"] == .bool(true))
        }
    }
}

extension AsyncSequence {
    fileprivate func collect() async throws -> [Element] {
        var all: [Element] = []
        for try await element in self { all.append(element) }
        return all
    }
}
