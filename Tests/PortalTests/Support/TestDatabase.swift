import Foundation
import Logging
import PostgresNIO
import Testing

@testable import Shared

/// A database of its own for one test, cloned from a template that has every migration applied, on the throwaway
/// server that `scripts/test` starts (`PORTAL_TEST_DATABASE_URL`). Tests therefore never see each other's rows and
/// can run in parallel.
struct TestDatabase: Sendable {
    let settings: DatabaseSettings
    let client: PostgresClient
    let jobs: JobQueue
    let logger: Logger

    /// Runs `body` with a fresh, migrated database whose client is running; drops the database afterwards.
    static func with<Result: Sendable>(
        migrated: Bool = true,
        _ body: @Sendable (TestDatabase) async throws -> Result
    ) async throws -> Result {
        let server = try serverSettings()
        let name = "test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let template = migrated ? try await TemplateDatabase.shared.name() : "template0"
        // The template's last session may still be closing on the server side; that is the only error retried.
        let created = try await eventually {
            do {
                _ = try await admin(server) {
                    try await $0.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name) TEMPLATE \(template)"), logger: logger)
                }
                return true
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "55006" {
                return false
            } catch {
                // PSQLError hides the server's message unless reflected; a setup failure must say what went wrong.
                throw TestSetupError("could not create the test database: \(String(reflecting: error))")
            }
        }
        guard created else { throw TestSetupError("could not clone \(template): it stayed in use") }
        let settings = server.with(database: name)
        let client = PostgresClient(configuration: settings.clientConfiguration, backgroundLogger: logger)
        let database = TestDatabase(settings: settings, client: client, jobs: JobQueue(client: client, logger: logger), logger: logger)
        let result: Result
        do {
            result = try await client.whileRunning { try await body(database) }
        } catch {
            try? await drop(name, on: server)
            // PSQLError's description hides the server's message; a failing test must show it.
            if error is PSQLError { throw TestSetupError(String(reflecting: error)) }
            throw error
        }
        try await drop(name, on: server)
        return result
    }

    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .error
        return logger
    }()

    /// The throwaway server's address. Missing is an error, not a skip: tests that need PostgreSQL must run.
    static func serverSettings() throws -> DatabaseSettings {
        guard let url = ProcessInfo.processInfo.environment["PORTAL_TEST_DATABASE_URL"] else {
            throw TestSetupError("PORTAL_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL")
        }
        return try DatabaseSettings(url: url, variable: "PORTAL_TEST_DATABASE_URL", maximumConnections: 8)
    }

    /// Runs `body` on a single connection to the server's maintenance database.
    static func admin<T: Sendable>(_ server: DatabaseSettings, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: server.host, port: server.port, username: server.username, password: server.password,
                database: server.database, tls: .disable),
            id: 1,
            logger: logger
        )
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    private static func drop(_ name: String, on server: DatabaseSettings) async throws {
        _ = try await admin(server) {
            try await $0.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
    }

    /// Runs one SQL statement and returns the first column of the first row.
    func scalar<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T {
        let rows = try await self.client.query(query, logger: self.logger).collect()
        guard let row = rows.first else { throw TestSetupError("no row for \(query.sql)") }
        return try row.decode(T.self)
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes: waiting by expectation, not by sleeping a
/// guessed time. Returns whether it held. The default is generous on purpose: a CI machine running the whole suite
/// in parallel (the notifier's crash test among it) is many times slower than a quiet one, and a condition that
/// holds must not fail there; a broken feature still fails, only later.
func eventually(timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The migrated template every test database is cloned from, made once per test process.
actor TemplateDatabase {
    static let shared = TemplateDatabase()
    private var creation: Task<String, any Error>?

    func name() async throws -> String {
        if let creation { return try await creation.value }
        // An unstructured task so that concurrent first callers share one creation; it finishes on its own and
        // the actor keeps its result for the rest of the process.
        let creation = Task { try await Self.create() }
        self.creation = creation
        return try await creation.value
    }

    private static func create() async throws -> String {
        let server = try TestDatabase.serverSettings()
        let name = "template_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        _ = try await TestDatabase.admin(server) {
            try await $0.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: TestDatabase.logger)
        }
        let client = PostgresClient(configuration: server.with(database: name).clientConfiguration, backgroundLogger: TestDatabase.logger)
        _ = try await client.whileRunning {
            try await Migrator(client: client, logger: TestDatabase.logger).migrate()
        }
        return name
    }
}
