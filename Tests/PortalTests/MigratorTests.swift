import Logging
import PostgresNIO
import Testing

@testable import Shared

@Suite("Migrations")
struct MigratorTests {
    @Test("a new database is behind; migrate brings it to this build's version, once")
    func migrateOnce() async throws {
        try await TestDatabase.with(migrated: false) { database async throws in
            let migrator = Migrator(client: database.client, logger: database.logger)
            await #expect(throws: SchemaError.self) { try await migrator.requireCurrent() }
            #expect(try await migrator.databaseVersion() == 0)

            let applied = try await migrator.migrate()
            #expect(applied.map(\.version) == Array(1...migrator.latestVersion))
            try await migrator.requireCurrent()
            #expect(try await migrator.migrate().isEmpty)
            #expect(try await database.scalar("SELECT count(*) FROM schema_migrations", as: Int.self) == migrator.latestVersion)
        }
    }

    @Test("an upgrade turns status announcements queued for the old notifier into notifications with mail jobs")
    func statusJobsBecomeNotifications() async throws {
        try await TestDatabase.with(migrated: false) { database async throws in
            let before = Migrator.bundledMigrations.filter { $0.version <= 5 }
            try await Migrator(client: database.client, migrations: before, logger: database.logger).migrate()
            // What an API before 0005 wrote: a case, its status event, and a notification.status job for it.
            try await database.client.query(
                """
                WITH department AS (INSERT INTO departments (name) VALUES ('Burgerzaken') RETURNING id),
                     type AS (INSERT INTO case_types (department_id, code, name_nl) SELECT id, 'paspoort', 'Paspoort' FROM department RETURNING id, department_id),
                     c AS (INSERT INTO cases (id, department_id, reference, subject_kind, subject, case_type_id, title, submitted_at)
                           SELECT '0b7a4c1e-0000-4000-8000-000000000001', department_id, 'Z-1', 'bsn', '999993653', id, 'Paspoort', now() FROM type
                           RETURNING id)
                INSERT INTO jobs (queue, kind, max_attempts, payload, unique_key, state, finished_at, last_error)
                VALUES ('notifications', 'notification.status', 20,
                        '{"caseID": "0B7A4C1E-0000-4000-8000-000000000001", "correction": true, "statusEvent": 42}', 'status-event:42',
                        'pending', NULL, NULL),
                       -- One that died because the notifier before 0005 had no handler for it.
                       ('notifications', 'notification.status', 20,
                        '{"caseID": "0B7A4C1E-0000-4000-8000-000000000001", "correction": false, "statusEvent": 41}', NULL,
                        'dead', now() - interval '1 hour', 'no handler for job kind notification.status in this process')
                """)
            try await Migrator(client: database.client, logger: database.logger).migrate()
            let rows = try await database.client.query(
                """
                SELECT n.key || ' ' || n.kind || ' ' || j.kind || ' ' || j.state
                FROM notifications n JOIN jobs j ON j.unique_key = 'notification:' || n.id
                """)
            let converted = try await rows.decode(String.self).reduce(into: []) { $0.append($1) }
            #expect(converted.sorted() == ["status:41 status mail.notification pending", "status:42 correction mail.notification pending"])
            #expect(try await database.scalar("SELECT count(*) FROM jobs WHERE kind = 'notification.status'", as: Int.self) == 0)
        }
    }

    @Test("several processes migrating at the same moment apply each migration once")
    func concurrentMigrations() async throws {
        try await TestDatabase.with(migrated: false) { database async throws in
            // Separate clients, as separate processes would have.
            let results = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let client = PostgresClient(configuration: database.settings.clientConfiguration, backgroundLogger: database.logger)
                        return try await client.whileRunning {
                            try await Migrator(client: client, logger: database.logger).migrate().count
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let latest = Migrator.bundledMigrations.count
            #expect(results.sorted() == [0, 0, 0, latest])
            #expect(try await database.scalar("SELECT count(*) FROM schema_migrations", as: Int.self) == latest)
        }
    }

    @Test("a failing migration leaves the database at the last good version")
    func failingMigrationRollsBack() async throws {
        try await TestDatabase.with(migrated: false) { database async throws in
            let good = Migration(version: 1, name: "good", sql: "CREATE TABLE a (id int);")
            let bad = Migration(version: 2, name: "bad", sql: "CREATE TABLE b (id int); SELECT no_such_function();")
            let migrator = Migrator(client: database.client, migrations: [good, bad], logger: database.logger)
            await #expect(throws: (any Error).self) { try await migrator.migrate() }
            #expect(try await migrator.databaseVersion() == 1)
            #expect(
                try await database.scalar("SELECT to_regclass('b') IS NULL", as: Bool.self),
                "the failed migration's table must be rolled back")
        }
    }

    @Test("a migration edited after it was applied is refused")
    func editedMigration() async throws {
        try await TestDatabase.with(migrated: false) { database async throws in
            let original = Migration(version: 1, name: "first", sql: "CREATE TABLE a (id int);")
            try await Migrator(client: database.client, migrations: [original], logger: database.logger).migrate()
            let edited = Migration(version: 1, name: "first", sql: "CREATE TABLE a (id bigint);")
            let migrator = Migrator(client: database.client, migrations: [edited], logger: database.logger)
            await #expect(throws: SchemaError.self) { try await migrator.requireCurrent() }
            await #expect(throws: SchemaError.self) { try await migrator.migrate() }
        }
    }

    @Test("a database ahead of this build is accepted (rolling upgrades)")
    func aheadIsAccepted() async throws {
        try await TestDatabase.with { database async throws in
            try await database.client.query("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
            try await Migrator(client: database.client, logger: database.logger).requireCurrent()
        }
    }
}
