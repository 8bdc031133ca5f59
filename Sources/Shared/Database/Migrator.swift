public import Foundation
public import Logging
public import PostgresNIO

/// One numbered SQL file from `Database/Migrations`, named `NNNN_description.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// A fingerprint of the file, stored when it is applied, so an edited migration is noticed instead of being
    /// silently out of step with the databases it already ran on. (FNV-1a: this detects edits, it is not a MAC.)
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in self.sql.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Why a process will not run against the database it was given.
public enum SchemaError: Error, CustomStringConvertible {
    case behind(database: Int, required: Int)
    case editedMigration(version: Int, name: String)
    case missingFiles(String)

    public var description: String {
        switch self {
        case .behind(let database, let required):
            "the database schema is at version \(database) but this build needs version \(required): run `PortalAPI migrate` first"
        case .editedMigration(let version, let name):
            "migration \(version) (\(name)) was changed after it was applied; migrations are forward-only, add a new one instead"
        case .missingFiles(let problem):
            "the migration files are not usable: \(problem)"
        }
    }
}

/// Applies the numbered SQL migrations, and tells whether a database is current.
///
/// Migrations are forward-only and each runs in its own transaction together with its row in
/// `schema_migrations`, so a failure leaves the database at the last good version. The whole run holds a
/// PostgreSQL advisory lock, so any number of processes may call ``migrate()`` at the same moment: one applies,
/// the others wait and then find nothing left to do.
public struct Migrator: Sendable {
    /// An arbitrary constant that identifies the portal's migration lock among other advisory locks.
    static let advisoryLockKey: Int64 = 0x706f_7274_616c_6d67  // "portalmg"

    public let migrations: [Migration]
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, migrations: [Migration] = Migrator.bundledMigrations, logger: Logger) {
        self.client = client
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// The version this build needs.
    public var latestVersion: Int { self.migrations.last?.version ?? 0 }

    /// The migrations shipped with this build, loaded from the bundle's `Migrations` folder.
    public static let bundledMigrations: [Migration] = {
        guard let folder = Bundle.module.url(forResource: "Migrations", withExtension: nil),
            let migrations = try? loadMigrations(from: folder)
        else { return [] }
        return migrations
    }()

    /// Reads `NNNN_description.sql` files from a folder; the versions must run 1, 2, 3, ... without gaps.
    public static func loadMigrations(from folder: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
        let migrations = try files.map { file -> Migration in
            let stem = file.deletingPathExtension().lastPathComponent
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw SchemaError.missingFiles("\(file.lastPathComponent) is not named NNNN_description.sql")
            }
            let sql = try String(contentsOf: file, encoding: .utf8)
            return Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql)
        }.sorted { $0.version < $1.version }
        for (offset, migration) in migrations.enumerated() where migration.version != offset + 1 {
            throw SchemaError.missingFiles("expected migration \(offset + 1), found \(migration.version)")
        }
        return migrations
    }

    /// Applies every migration the database does not have yet, and returns those it applied.
    @discardableResult
    public func migrate() async throws -> [Migration] {
        guard !self.migrations.isEmpty else { throw SchemaError.missingFiles("no migrations are bundled with this build") }
        return try await self.client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: self.logger)
            do {
                let applied = try await self.applyPending(on: connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: self.logger)
                return applied
            } catch {
                // Closing the session would release the lock too, but the connection goes back to the pool.
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: self.logger)
                throw error
            }
        }
    }

    private func applyPending(on connection: PostgresConnection) async throws -> [Migration] {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            logger: self.logger
        )
        let done = try await self.appliedChecksums(on: connection)
        try self.verifyUnchanged(done)
        var applied: [Migration] = []
        for migration in self.migrations where done[migration.version] == nil {
            self.logger.info(
                "applying migration",
                metadata: ["portal.migration.version": "\(migration.version)", "portal.migration.name": "\(migration.name)"]
            )
            try await connection.withTransaction(logger: self.logger) { connection in
                for statement in SQLScript.statements(in: migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
                try await connection.query(
                    """
                    INSERT INTO schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """,
                    logger: self.logger
                )
            }
            applied.append(migration)
        }
        return applied
    }

    /// The version the database is at (0 before the first migration).
    public func databaseVersion() async throws -> Int {
        try await self.client.withConnection { connection in
            try await self.appliedChecksums(on: connection).keys.max() ?? 0
        }
    }

    /// Throws ``SchemaError`` unless the database has every migration of this build, unchanged. A database that is
    /// ahead is accepted (with a notice): during a rolling upgrade, migrations run before the new code, and the
    /// old processes still running must keep working against the newer, backward-compatible schema.
    public func requireCurrent() async throws {
        // Without its migration files this build cannot tell what it needs; it must not accept any database.
        guard !self.migrations.isEmpty else { throw SchemaError.missingFiles("no migrations are bundled with this build") }
        let done = try await self.client.withConnection { try await self.appliedChecksums(on: $0) }
        try self.verifyUnchanged(done)
        let version = done.keys.max() ?? 0
        if version < self.latestVersion {
            throw SchemaError.behind(database: version, required: self.latestVersion)
        }
        if version > self.latestVersion {
            self.logger.notice(
                "the database schema is newer than this build",
                metadata: ["portal.schema.database": "\(version)", "portal.schema.build": "\(self.latestVersion)"]
            )
        }
    }

    private func appliedChecksums(on connection: PostgresConnection) async throws -> [Int: String] {
        let exists =
            try await connection.query(
                "SELECT to_regclass('schema_migrations') IS NOT NULL",
                logger: self.logger
            ).collect().first?.decode(Bool.self) ?? false
        guard exists else { return [:] }
        var result: [Int: String] = [:]
        for try await (version, checksum) in try await connection.query(
            "SELECT version, checksum FROM schema_migrations",
            logger: self.logger
        ).decode((Int, String).self) {
            result[version] = checksum
        }
        return result
    }

    private func verifyUnchanged(_ done: [Int: String]) throws {
        for migration in self.migrations {
            if let checksum = done[migration.version], checksum != migration.checksum {
                throw SchemaError.editedMigration(version: migration.version, name: migration.name)
            }
        }
    }
}
