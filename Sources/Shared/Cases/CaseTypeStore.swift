public import Foundation
public import Logging
public import PostgresNIO

/// The `case_types` and `status_types` tables.
public struct CaseTypeStore: Sendable {
    public init() {}

    /// Creates or replaces a department's case type and its steps, in the caller's transaction. Returns the case type
    /// and whether it was new.
    public func put(
        departmentID: UUID,
        code: String,
        name: LocalizedText,
        termDays: Int?,
        statusTypes: [StatusType],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> (CaseType, created: Bool) {
        let rows = try await connection.query(
            """
            INSERT INTO case_types (department_id, code, name_nl, name_en, term_days)
            VALUES (\(departmentID), \(code), \(name.nl), \(name.en), \(termDays))
            ON CONFLICT (department_id, code) DO UPDATE
            SET name_nl = excluded.name_nl, name_en = excluded.name_en, term_days = excluded.term_days, updated_at = now()
            RETURNING id, (xmax = 0)
            """,
            logger: logger
        )
        guard let (id, created) = try await rows.decode((UUID, Bool).self).first(where: { _ in true }) else {
            throw StoreError.noRowReturned
        }
        try await connection.query("DELETE FROM status_types WHERE case_type_id = \(id)", logger: logger)
        // Arrays cannot hold NULL binds here: an absent English name travels as '' and is stored as NULL.
        try await connection.query(
            """
            INSERT INTO status_types (case_type_id, position, code, name_nl, name_en, informs, final, uploads_allowed)
            SELECT \(id), position, code, name_nl, nullif(name_en, ''), informs, final, uploads_allowed
            FROM unnest(\(Array(0..<statusTypes.count)), \(statusTypes.map(\.code)), \(statusTypes.map(\.name.nl)),
                        \(statusTypes.map { $0.name.en ?? "" }), \(statusTypes.map(\.informs)), \(statusTypes.map(\.final)),
                        \(statusTypes.map(\.uploadsAllowed)))
                 AS t(position, code, name_nl, name_en, informs, final, uploads_allowed)
            """,
            logger: logger
        )
        let caseType = CaseType(id: id, departmentID: departmentID, code: code, name: name, termDays: termDays, statusTypes: statusTypes)
        return (caseType, created)
    }

    /// A department's case type by its code.
    public func find(departmentID: UUID, code: String, on connection: PostgresConnection, logger: Logger) async throws -> CaseType? {
        let rows = try await connection.query(
            """
            SELECT id, department_id, code, name_nl, name_en, term_days FROM case_types
            WHERE department_id = \(departmentID) AND code = \(code)
            """,
            logger: logger
        )
        return try await self.withStatusTypes(rows, on: connection, logger: logger)
    }

    /// A case type by its id.
    public func find(id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> CaseType? {
        let rows = try await connection.query(
            "SELECT id, department_id, code, name_nl, name_en, term_days FROM case_types WHERE id = \(id)",
            logger: logger
        )
        return try await self.withStatusTypes(rows, on: connection, logger: logger)
    }

    private func withStatusTypes(_ rows: PostgresRowSequence, on connection: PostgresConnection, logger: Logger) async throws -> CaseType? {
        var found: CaseType?
        for try await (id, department, code, nl, en, term) in rows.decode((UUID, UUID, String, String, String?, Int?).self) {
            found = CaseType(
                id: id, departmentID: department, code: code, name: LocalizedText(nl: nl, en: en), termDays: term, statusTypes: [])
        }
        guard var caseType = found else { return nil }
        let steps = try await connection.query(
            """
            SELECT code, name_nl, name_en, informs, final, uploads_allowed FROM status_types
            WHERE case_type_id = \(caseType.id) ORDER BY position
            """,
            logger: logger
        )
        for try await (code, nl, en, informs, final, uploads) in steps.decode((String, String, String?, Bool, Bool, Bool).self) {
            caseType.statusTypes.append(
                StatusType(code: code, name: LocalizedText(nl: nl, en: en), informs: informs, final: final, uploadsAllowed: uploads)
            )
        }
        return caseType
    }
}
