public import Foundation
public import Logging
public import PostgresNIO

/// A department (vakafdeling) whose systems call the department API.
public struct Department: Sendable, Equatable, Codable {
    public let id: UUID
    public let name: String
    public let createdAt: Date
    public let revokedAt: Date?
}

/// A credential just issued: the API key is shown once and never stored.
public struct IssuedCredential: Sendable {
    public let department: Department
    public let credentialID: UUID
    public let apiKey: String
    /// When the department's previous keys stop working (rotation only).
    public let previousKeysExpireAt: Date?
}

/// The `departments` and `department_credentials` tables.
public struct DepartmentStore: Sendable {
    /// Department API keys start with this, so that secret scanners and people recognise them.
    public static let keyPrefix = "portal_dk_"

    public init() {}

    /// Registers a department and issues its first API key.
    public func add(name: String, client: PostgresClient, logger: Logger) async throws -> IssuedCredential {
        let apiKey = SecretToken.generate(prefix: Self.keyPrefix)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO departments (name) VALUES (\(name))
                ON CONFLICT (name) DO NOTHING
                RETURNING id, name, created_at, revoked_at
                """,
                logger: logger
            )
            guard let department = try await Self.decode(rows).first else { throw DepartmentError.nameTaken }
            let credentialID = try await self.insertCredential(apiKey, for: department.id, on: connection, logger: logger)
            return IssuedCredential(department: department, credentialID: credentialID, apiKey: apiKey, previousKeysExpireAt: nil)
        }
    }

    /// Issues a new key; the department's current keys keep working for `grace`, then expire.
    public func rotateKey(of id: UUID, grace: Duration, client: PostgresClient, logger: Logger) async throws -> IssuedCredential {
        let apiKey = SecretToken.generate(prefix: Self.keyPrefix)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT id, name, created_at, revoked_at FROM departments WHERE id = \(id) FOR UPDATE",
                logger: logger
            )
            guard let department = try await Self.decode(rows).first else { throw DepartmentError.notFound }
            guard department.revokedAt == nil else { throw DepartmentError.revoked }
            let expiries = try await connection.query(
                """
                WITH expiring AS (
                    UPDATE department_credentials
                    SET expires_at = least(coalesce(expires_at, 'infinity'),
                                           now() + make_interval(secs => \(grace.seconds)))
                    WHERE department_id = \(id) AND revoked_at IS NULL
                    RETURNING expires_at
                )
                SELECT max(expires_at) FROM expiring
                """,
                logger: logger
            )
            let previousExpiry = try await expiries.decode(Date?.self).first(where: { _ in true }) ?? nil
            let credentialID = try await self.insertCredential(apiKey, for: id, on: connection, logger: logger)
            return IssuedCredential(
                department: department,
                credentialID: credentialID,
                apiKey: apiKey,
                previousKeysExpireAt: previousExpiry
            )
        }
    }

    /// Revokes the department and every key it has, at once.
    public func revoke(_ id: UUID, client: PostgresClient, logger: Logger) async throws -> Department {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE departments SET revoked_at = coalesce(revoked_at, now()) WHERE id = \(id)
                RETURNING id, name, created_at, revoked_at
                """,
                logger: logger
            )
            guard let department = try await Self.decode(rows).first else { throw DepartmentError.notFound }
            try await connection.query(
                "UPDATE department_credentials SET revoked_at = now() WHERE department_id = \(id) AND revoked_at IS NULL",
                logger: logger
            )
            return department
        }
    }

    /// Sets the department's general contact, shown to residents when a case names no handler.
    public func setContact(of id: UUID, _ contact: Contact, client: PostgresClient, logger: Logger) async throws {
        let json = String(decoding: try JSONEncoder().encode(contact), as: UTF8.self)
        try await client.query("UPDATE departments SET contact = \(json)::jsonb WHERE id = \(id)", logger: logger)
    }

    /// The department's name and general contact (nil when it set none).
    public func contact(of id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> (name: String, contact: Contact?)? {
        let rows = try await connection.query("SELECT name, contact::text FROM departments WHERE id = \(id)", logger: logger)
        for try await (name, contact) in rows.decode((String, String?).self) {
            return (name, try contact.map { try JSONDecoder().decode(Contact.self, from: Data($0.utf8)) })
        }
        return nil
    }

    public func list(client: PostgresClient, logger: Logger) async throws -> [Department] {
        try await Self.decode(
            client.query("SELECT id, name, created_at, revoked_at FROM departments ORDER BY name", logger: logger)
        )
    }

    /// The department an API key belongs to, when the key is valid now (not expired, not revoked, and its department
    /// not revoked). Marks the key as used, at most once a minute, so operators can see which keys are still in use.
    public func authenticate(apiKey: String, client: PostgresClient, logger: Logger) async throws -> Department? {
        guard apiKey.hasPrefix(Self.keyPrefix) else { return nil }
        let rows = try await client.query(
            """
            WITH valid AS (
                SELECT c.id AS credential_id, d.id, d.name, d.created_at, d.revoked_at, c.last_used_at
                FROM department_credentials c JOIN departments d ON d.id = c.department_id
                WHERE c.key_hash = \(SecretToken.hash(apiKey))
                  AND c.revoked_at IS NULL AND d.revoked_at IS NULL
                  AND (c.expires_at IS NULL OR c.expires_at > now())
            ), touched AS (
                UPDATE department_credentials SET last_used_at = now()
                WHERE id IN (SELECT credential_id FROM valid
                             WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
            )
            SELECT id, name, created_at, revoked_at FROM valid
            """,
            logger: logger
        )
        return try await Self.decode(rows).first
    }

    private func insertCredential(
        _ apiKey: String,
        for departmentID: UUID,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> UUID {
        let rows = try await connection.query(
            """
            INSERT INTO department_credentials (department_id, key_hash)
            VALUES (\(departmentID), \(SecretToken.hash(apiKey)))
            RETURNING id
            """,
            logger: logger
        )
        guard let id = try await rows.decode(UUID.self).first(where: { _ in true }) else { throw StoreError.noRowReturned }
        return id
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [Department] {
        var departments: [Department] = []
        for try await (id, name, createdAt, revokedAt) in rows.decode((UUID, String, Date, Date?).self) {
            departments.append(Department(id: id, name: name, createdAt: createdAt, revokedAt: revokedAt))
        }
        return departments
    }
}

public enum DepartmentError: Error, Equatable, CustomStringConvertible {
    case nameTaken
    case notFound
    case revoked

    public var description: String {
        switch self {
        case .nameTaken: "a department with this name exists already"
        case .notFound: "no department with this id"
        case .revoked: "the department is revoked; add it again under a new name"
        }
    }
}
