import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared
@testable import SyncWorker

@Suite("Retention")
struct RetentionTests {
    static func retention(_ api: APIHarness, _ settings: DocumentSettings = DocumentSettings()) -> Retention {
        Retention(
            settings: RetentionSettings(), client: api.database.client,
            storages: settings.storages(database: api.database.client, logger: api.database.logger), logger: api.database.logger)
    }

    @Test(
        "uploads the department has go after 30 days; a closed case goes after 12 months with everything in it, not while an upload waits")
    func casesAndDocuments() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("portal-retention-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var options = APIHarness.Options()
        options.documents.storage = .directory(folder.path)
        let documents = options.documents
        try await APIHarness.with(options) { api in
            let fixture = try await DocumentFixture.make(api)
            var ids: [String] = []
            for name in ["old.pdf", "recent.pdf", "pending.pdf"] {
                let document = try APIHarness.object(try await fixture.upload(DocumentFixture.pdf(size: 1000), name: name))
                ids.append(try #require(document["id"]?.stringValue))
            }
            func file(_ id: String) -> String { folder.appendingPathComponent(String(id.prefix(2))).appendingPathComponent(id).path }
            let client = api.database.client
            try await client.query(
                "UPDATE documents SET delivery = 'delivered', delivered_at = now() - interval '31 days' WHERE id = \(UUID(uuidString: ids[0])!)"
            )
            try await client.query(
                "UPDATE documents SET delivery = 'delivered', delivered_at = now() - interval '29 days' WHERE id = \(UUID(uuidString: ids[1])!)"
            )
            // A second case of the same resident, closed eleven months ago: it stays.
            let second = try await api.request(
                .put, "/api/v1/department/cases/Z-2026-002", headers: fixture.department,
                json: CaseTrackingTests.caseBody(bsn: DocumentFixture.bsn))
            try #require(second.status == .created)
            try await client.query(
                """
                UPDATE cases SET status_final = true,
                       status_set_at = CASE reference WHEN 'Z-2026-001' THEN now() - interval '13 months' ELSE now() - interval '11 months' END
                """)

            var report = try await Self.retention(api, documents).apply()
            #expect(report.deliveredDocuments == 1 && report.closedCases == 0, "the case waits for its pending upload")
            #expect(!FileManager.default.fileExists(atPath: file(ids[0])))
            #expect(FileManager.default.fileExists(atPath: file(ids[1])) && FileManager.default.fileExists(atPath: file(ids[2])))
            #expect(try await api.database.scalar("SELECT count(*)::int FROM cases", as: Int.self) == 2)

            try await client.query("UPDATE documents SET delivery = 'delivered', delivered_at = now() WHERE delivery = 'pending'")
            report = try await Self.retention(api, documents).apply()
            #expect(report.closedCases == 1 && report.complete)
            #expect(try await api.database.scalar("SELECT string_agg(reference, ',') FROM cases", as: String.self) == "Z-2026-002")
            for table in [
                "documents", "status_events WHERE case_id NOT IN (SELECT id FROM cases)",
                "notifications WHERE case_id IS NOT NULL AND case_id NOT IN (SELECT id FROM cases)",
            ] {
                #expect(
                    try await api.database.scalar(PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM \(table)"), as: Int.self) == 0,
                    "\(table)")
            }
            #expect(!FileManager.default.fileExists(atPath: file(ids[1])) && !FileManager.default.fileExists(atPath: file(ids[2])))
            // The resident no longer sees the removed case; the other is still there.
            let list = try APIHarness.object(try await api.request(.get, "/api/v1/cases", headers: fixture.session.headers))
            #expect(list["items"]?.arrayValue?.count == 1)
        }
    }

    @Test("finished mail, its notifications and old audit records go after their terms; mail still on its way stays")
    func mailAndAudit() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let client = api.database.client
            try await client.query(
                """
                INSERT INTO mail_deliveries (kind, message_id, address, language, job_id, state, created_at, finished_at) VALUES
                    ('update', '<old@test>', 'a@example.org', 'nl', 1, 'sent', now() - interval '100 days', now() - interval '91 days'),
                    ('update', '<failed@test>', 'a@example.org', 'nl', 2, 'failed', now() - interval '100 days', now() - interval '92 days'),
                    ('update', '<recent@test>', 'a@example.org', 'nl', 3, 'sent', now() - interval '100 days', now() - interval '89 days'),
                    ('update', '<sending@test>', 'a@example.org', 'nl', 4, 'sending', now() - interval '100 days', NULL)
                """)
            try await client.query(
                """
                INSERT INTO notifications (key, kind, case_id, created_at, delivery_id, skipped)
                SELECT n.key, 'status', c.id, now() - interval '95 days', d.id, n.skipped
                FROM cases c,
                     (VALUES ('t:old', '<old@test>', NULL), ('t:recent', '<recent@test>', NULL), ('t:sending', '<sending@test>', NULL),
                             ('t:skipped', NULL, 'no-address'), ('t:open', NULL, NULL)) AS n(key, message_id, skipped)
                     LEFT JOIN mail_deliveries d ON d.message_id = n.message_id
                """)
            try await client.query(
                """
                INSERT INTO audit_log (occurred_at, activity, actor_kind, result, trace_id) VALUES
                    (now() - interval '2558 days', 'test.old', 'system', 'success', 't'),
                    (now() - interval '2556 days', 'test.recent', 'system', 'success', 't')
                """)
            let report = try await Self.retention(api).apply()
            #expect(report.mailDeliveries == 2 && report.notifications == 2 && report.auditRecords == 1)
            #expect(
                try await api.database.scalar("SELECT string_agg(message_id, ',' ORDER BY id) FROM mail_deliveries", as: String.self)
                    == "<recent@test>,<sending@test>")
            #expect(
                try await api.database.scalar(
                    "SELECT string_agg(key, ',' ORDER BY key) FROM notifications WHERE key LIKE 't:%'", as: String.self)
                    == "t:open,t:recent,t:sending")
            #expect(try await api.database.scalar("SELECT count(*)::int FROM audit_log WHERE activity = 'test.old'", as: Int.self) == 0)
            #expect(try await api.database.scalar("SELECT count(*)::int FROM audit_log WHERE activity = 'test.recent'", as: Int.self) == 1)
            _ = fixture
        }
    }

    @Test("refusals older than 90 days and skipped ZGW statuses reconciliation can no longer meet are removed; recent ones stay")
    func syncTables() async throws {
        try await TestDatabase.with { database async throws in
            let department = try await SyncHarness.feedDepartment(database, feed: URL(string: "https://feed.example")!)
            try await database.client.query(
                """
                INSERT INTO sync_refusals (department_id, reason, refused_at) VALUES
                    (\(department), 'old', now() - interval '91 days'), (\(department), 'recent', now() - interval '89 days')
                """)
            try await database.client.query(
                """
                INSERT INTO zgw_skipped (department_id, status_url, reason, skipped_at) VALUES
                    (\(department), 'https://z/1', 'intern', now() - interval '121 days'),
                    (\(department), 'https://z/2', 'intern', now() - interval '100 days')
                """)
            let retention = Retention(
                settings: try RetentionSettings(EnvironmentReader([:]), zgwLookbackDays: 90), client: database.client, storages: [:],
                logger: database.logger)
            let report = try await retention.apply()
            #expect(report.syncRefusals == 1 && report.zgwSkipped == 1)
            #expect(try await database.scalar("SELECT string_agg(reason, ',') FROM sync_refusals", as: String.self) == "recent")
            #expect(try await database.scalar("SELECT string_agg(status_url, ',') FROM zgw_skipped", as: String.self) == "https://z/2")
        }
    }

    @Test("the schedule repair starts one retention job for the deployment; the job runs retention and snoozes for the interval")
    func scheduled() async throws {
        try await TestDatabase.with { database async throws in
            try await database.client.query(
                "INSERT INTO audit_log (occurred_at, activity, actor_kind, result, trace_id) VALUES (now() - interval '3000 days', 'old', 'system', 'success', 't')"
            )
            let repair = ScheduleRepair(database: database.client, jobs: database.jobs, interval: .seconds(300), logger: database.logger)
            await repair.repair()
            await repair.repair()
            #expect(try await database.scalar("SELECT count(*)::int FROM jobs WHERE kind = 'maintenance.retention'", as: Int.self) == 1)
            var registry = JobRegistry()
            RetentionJob(
                retention: Retention(settings: RetentionSettings(), client: database.client, storages: [:], logger: database.logger)
            )
            .register(in: &registry)
            let harness = ProcessorHarness(database: database, registry: registry, queues: [Queues.maintenance], settings: JobSettings())
            try await harness.run { _ in
                let snoozed = try await eventually {
                    try await database.scalar(
                        "SELECT count(*)::int FROM jobs WHERE kind = 'maintenance.retention' AND attempt = 0 AND state = 'pending' AND run_at > now() + interval '50 minutes'",
                        as: Int.self) == 1
                }
                #expect(snoozed)
            }
            #expect(try await database.scalar("SELECT count(*)::int FROM audit_log WHERE activity = 'old'", as: Int.self) == 0)
        }
    }
}
