import Foundation
import PostgresNIO
import Shared
import Testing

/// The notifier as a real process, killed with SIGKILL again and again while it sends: nothing that was queued is
/// lost, and a mail sent twice is recognisably the same mail.
@Suite("Notifier crashes")
struct NotifierCrashTests {
    static let notifications = 1000
    static let kills = 4

    @Test(
        "1,000 notifications, the notifier killed with SIGKILL four times while sending: every one delivered, every repeat with its original's Message-ID"
    )
    func killedWhileSending() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        try await TestDatabase.with { database async throws in
            // 1,000 cases of 1,000 residents, each with its own form address: a mail each.
            try await database.client.query(
                """
                WITH department AS (INSERT INTO departments (name) VALUES ('Burgerzaken') RETURNING id),
                     type AS (INSERT INTO case_types (department_id, code, name_nl) SELECT id, 'paspoort', 'Paspoort' FROM department RETURNING id, department_id)
                INSERT INTO cases (department_id, reference, subject_kind, subject, case_type_id, title, submitted_at, contact_email)
                SELECT type.department_id, 'C-' || i, 'bsn', (100000000 + i)::text, type.id, 'Paspoort', now(), 'inwoner' || i || '@example.org'
                FROM type, generate_series(1, \(Self.notifications)) AS i
                """)
            var caseIDs: [UUID] = []
            for try await id in try await database.client.query("SELECT id FROM cases ORDER BY reference").decode(UUID.self) {
                caseIDs.append(id)
            }
            try await database.client.withConnection { connection in
                let notifications = caseIDs.enumerated().map {
                    NewNotification.status(event: Int64($0.offset + 1), caseID: $0.element, correction: false)
                }
                try await NotificationStore().record(
                    notifications, jobs: database.jobs, traceID: nil, on: connection, logger: database.logger)
            }

            let settings = database.settings
            let environment = [
                "PORTAL_DATABASE_URL":
                    "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable",
                "PORTAL_HTTP_PORT": "0",
                "PORTAL_SMTP_URL": "smtp://127.0.0.1:\(smtp.port)",
                "PORTAL_MAIL_FROM": "noreply@portal.test",
                "PORTAL_MAIL_MERGE_WINDOW_SECONDS": "0",
                "PORTAL_MAIL_RETRY_SECONDS": "0.1",
                "PORTAL_JOB_LEASE_SECONDS": "1",
                "PORTAL_JOB_RESCUE_SECONDS": "0.2",
                "PORTAL_JOB_CONCURRENCY": "16",
            ]
            let sent = { try await database.scalar("SELECT count(*) FROM mail_deliveries WHERE state = 'sent'", as: Int.self) }
            // Killed each time another tenth of the mails has gone out, mid-stream.
            for kill in 1...Self.kills {
                let notifier = try ChildProcess("Notifier", environment: environment)
                let target = kill * Self.notifications / 10
                #expect(try await eventually(timeout: .seconds(60)) { try await sent() >= target }, "\(notifier.output.suffix(2000))")
                notifier.signal(SIGKILL)
                #expect(await notifier.waitForExit() == SIGKILL)
            }
            let last = try ChildProcess("Notifier", environment: environment)
            #expect(
                try await eventually(timeout: .seconds(120)) { try await sent() == Self.notifications },
                "\(last.output.suffix(2000))")
            last.signal(SIGTERM)
            #expect(await last.waitForExit() == 0)

            // Every notification is in a sent delivery; none is open, skipped or failed.
            let undelivered = try await database.scalar(
                """
                SELECT count(*) FROM notifications n LEFT JOIN mail_deliveries d ON d.id = n.delivery_id
                WHERE d.state IS DISTINCT FROM 'sent'
                """, as: Int.self)
            #expect(undelivered == 0)

            // What the relay received: every resident got mail, and a repeat carries its original's Message-ID.
            var byRecipient: [String: Set<String>] = [:]
            var received = 0
            for (message, envelope) in try smtp.messages() {
                guard case .array(let to)? = envelope["to"], case .string(let recipient)? = to.first else { continue }
                let header = message.split(separator: "\r\n").first { $0.hasPrefix("Message-ID: ") }
                byRecipient[recipient, default: []].insert(String(header?.dropFirst("Message-ID: ".count) ?? ""))
                received += 1
            }
            #expect(byRecipient.count == Self.notifications)
            #expect(byRecipient.values.allSatisfy { $0.count == 1 }, "a resident got two different mails")
            let recorded = try await database.scalar("SELECT count(DISTINCT message_id) FROM mail_deliveries", as: Int.self)
            #expect(recorded == Self.notifications)
            let duplicates = received - byRecipient.count
            // The figure issue 5 asks for; docs/MAIL.md records a run.
            print(
                "notifier crash test: \(Self.notifications) notifications, \(Self.kills) kills, \(received) mails received, \(duplicates) duplicates (each with its original's Message-ID)"
            )
        }
    }
}
