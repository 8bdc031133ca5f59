public import Foundation
public import Logging
public import PostgresNIO

/// The `residents` table.
public struct ResidentStore: Sendable {
    public init() {}

    /// Finds or creates the resident for a subject that just logged in, in one statement.
    public func upsert(_ subject: Subject, on connection: PostgresConnection, logger: Logger) async throws -> Resident {
        let rows = try await connection.query(
            """
            INSERT INTO residents (subject_kind, subject) VALUES (\(subject.kind.rawValue), \(subject.number))
            ON CONFLICT (subject_kind, subject) DO UPDATE SET last_login_at = now()
            RETURNING id, subject_kind, subject, locale, email
            """,
            logger: logger
        )
        guard let resident = try await Self.decode(rows).first else { throw StoreError.noRowReturned }
        return resident
    }

    /// The resident for a subject, created on first sight; no write when it exists (bearer tokens call this on
    /// every request).
    public func findOrCreate(_ subject: Subject, client: PostgresClient, logger: Logger) async throws -> Resident {
        // Two first requests at once: the one whose insert waited on the other's sees neither its own row (it did
        // nothing) nor the other's (its snapshot is older), and finds nothing. Once more then finds the row.
        for _ in 0..<2 {
            if let resident = try await self.findOrCreateOnce(subject, client: client, logger: logger) { return resident }
        }
        throw StoreError.noRowReturned
    }

    private func findOrCreateOnce(_ subject: Subject, client: PostgresClient, logger: Logger) async throws -> Resident? {
        let rows = try await client.query(
            """
            WITH created AS (
                INSERT INTO residents (subject_kind, subject) VALUES (\(subject.kind.rawValue), \(subject.number))
                ON CONFLICT (subject_kind, subject) DO NOTHING
                RETURNING id, subject_kind, subject, locale, email
            )
            SELECT id, subject_kind, subject, locale, email FROM created
            UNION ALL
            SELECT id, subject_kind, subject, locale, email FROM residents
            WHERE subject_kind = \(subject.kind.rawValue) AND subject = \(subject.number)
            LIMIT 1
            """,
            logger: logger
        )
        return try await Self.decode(rows).first
    }

    /// Changes the language (nil leaves it as it is).
    public func updateSettings(
        of id: UUID,
        locale: Resident.Locale?,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> Resident {
        let rows = try await connection.query(
            """
            UPDATE residents
            SET locale = coalesce(\(locale?.rawValue), locale),
                locale_chosen_at = CASE WHEN \(locale != nil) THEN now() ELSE locale_chosen_at END
            WHERE id = \(id)
            RETURNING id, subject_kind, subject, locale, email
            """,
            logger: logger
        )
        guard let resident = try await Self.decode(rows).first else { throw StoreError.noRowReturned }
        return resident
    }

    /// Decodes rows of `id, subject_kind, subject, locale, email`.
    static func decode(_ rows: PostgresRowSequence) async throws -> [Resident] {
        var residents: [Resident] = []
        for try await (id, kind, number, locale, email) in rows.decode((UUID, String, String, String, String?).self) {
            residents.append(try Self.resident(id: id, kind: kind, number: number, locale: locale, email: email))
        }
        return residents
    }

    static func resident(id: UUID, kind: String, number: String, locale: String, email: String?) throws -> Resident {
        guard let kind = Subject.Kind(rawValue: kind), let locale = Resident.Locale(rawValue: locale) else {
            throw StoreError.unexpectedValue("residents row \(id)")
        }
        return Resident(id: id, subject: try Subject(kind: kind, validating: number), locale: locale, email: email)
    }
}

/// A statement did not give what its constraints promise; a bug or a damaged database, never bad input.
public enum StoreError: Error, CustomStringConvertible {
    case noRowReturned
    case unexpectedValue(String)

    public var description: String {
        switch self {
        case .noRowReturned: "the statement returned no row"
        case .unexpectedValue(let what): "unexpected value in \(what)"
        }
    }
}
