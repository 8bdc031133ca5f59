public import Foundation
public import Logging
public import PostgresNIO

/// Why a case write was refused; each maps to a 4xx with this description.
public enum CaseError: Error, Equatable, CustomStringConvertible {
    case unknownCaseType(String)
    case unknownStatusType(String)
    case unknownCase
    case correctsUnknownEvent(String)
    case eventForAnotherCase
    case notFinal
    case feedbackGiven

    public var description: String {
        switch self {
        case .unknownCaseType(let code): "there is no case type '\(code)' for this department; PUT it first"
        case .unknownStatusType(let code): "the case type has no status type '\(code)'"
        case .unknownCase: "there is no case with this reference for this department; PUT the case first"
        case .correctsUnknownEvent(let id): "'corrects' names event '\(id)', which this case does not have"
        case .eventForAnotherCase: "this event id was already used for another case"
        case .notFinal: "feedback can be given once the case is closed"
        case .feedbackGiven: "feedback was already given for this case"
        }
    }
}

/// The `cases` and `status_events` tables: what departments write, and what residents read.
public struct CaseStore: Sendable {
    public init() {}

    // Department writes: ``apply(_:departmentID:jobs:traceID:on:logger:)`` in CaseChanges.swift.

    // MARK: Reads

    /// How to find one case.
    public enum Key: Sendable {
        case id(UUID)
        /// A department's own reference.
        case reference(department: UUID, String)
        /// A resident's case: only found when it belongs to that subject, so another resident's id finds nothing.
        case owned(UUID, by: Subject)
    }

    /// One case; `lock` holds its row until the transaction ends.
    public func find(_ key: Key, lock: Bool = false, on connection: PostgresConnection, logger: Logger) async throws -> CaseRecord? {
        let select = Self.caseColumns
        var query: PostgresQuery
        switch key {
        case .id(let id):
            query = "\(unescaped: select) WHERE c.id = \(id)"
        case .reference(let department, let reference):
            query = "\(unescaped: select) WHERE c.department_id = \(department) AND c.reference = \(reference)"
        case .owned(let id, let subject):
            query =
                "\(unescaped: select) WHERE c.id = \(id) AND c.subject_kind = \(subject.kind.rawValue) AND c.subject = \(subject.number)"
        }
        if lock { query.sql += " FOR UPDATE OF c" }
        let rows = try await connection.query(query, logger: logger)
        for try await row in rows {
            return try Self.decodeCase(row)
        }
        return nil
    }

    /// A case's history as the resident sees it: oldest first, corrected events left out (their correction stands
    /// in their place).
    public func history(of caseID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> [StatusEvent] {
        let rows = try await connection.query(
            """
            SELECT \(unescaped: Self.eventColumns)
            FROM status_events e
            WHERE e.case_id = \(caseID)
              AND NOT EXISTS (SELECT 1 FROM status_events c WHERE c.case_id = e.case_id AND c.corrects = e.event_id)
            ORDER BY e.sort_at, e.id
            """,
            logger: logger
        )
        var events: [StatusEvent] = []
        for try await row in rows { events.append(try Self.decodeEvent(row)) }
        return events
    }

    /// The columns ``decodeEvent(_:)`` reads, from `status_events e`.
    static let eventColumns = """
        e.id, e.case_id, e.event_id, e.status_code, e.text_nl, e.text_en, e.explanation_nl, e.explanation_en, e.set_at,
        e.final, e.informs, e.corrects
        """

    static func decodeEvent(_ row: PostgresRow) throws -> StatusEvent {
        let (id, caseID, eventID, code, nl, en, explanationNL, explanationEN, setAt, final, informs, corrects) = try row.decode(
            (Int64, UUID, String, String, String, String?, String?, String?, Date, Bool, Bool, String?).self
        )
        return StatusEvent(
            id: id,
            caseID: caseID,
            eventID: eventID,
            statusCode: code,
            text: LocalizedText(nl: nl, en: en),
            explanation: explanationNL.map { LocalizedText(nl: $0, en: explanationEN) },
            setAt: setAt,
            final: final,
            informs: informs,
            corrects: corrects
        )
    }

    /// What ``decodeCase(_:)`` reads: `SELECT … FROM cases c JOIN case_types ct`, for a WHERE clause to follow.
    static let caseColumns = """
        SELECT c.id, c.department_id, c.reference, c.subject_kind, c.subject, c.case_type_id, ct.code, c.title,
               c.submitted_at, c.due_date::text, c.language, c.contact_email, c.handler::text, c.status_code,
               c.status_text_nl, c.status_text_en, c.status_set_at, c.status_final
        FROM cases c JOIN case_types ct ON ct.id = c.case_type_id
        """

    /// Decodes the columns of ``caseColumns``.
    static func decodeCase(_ row: PostgresRow) throws -> CaseRecord {
        let (
            id, department, reference, kind, number, caseTypeID, caseTypeCode, title, submittedAt, dueDate, language,
            contactEmail, handler, statusCode, statusNL, statusEN, statusSetAt, statusFinal
        ) = try row.decode(
            (
                UUID, UUID, String, String, String, UUID, String, String, Date, String?, String, String?, String?, String?,
                String?, String?, Date?, Bool
            ).self
        )
        guard let kind = Subject.Kind(rawValue: kind), let language = Resident.Locale(rawValue: language) else {
            throw StoreError.unexpectedValue("cases row \(id)")
        }
        var status: CurrentStatus?
        if let statusCode, let statusNL, let statusSetAt {
            status = CurrentStatus(
                code: statusCode, text: LocalizedText(nl: statusNL, en: statusEN), setAt: statusSetAt, final: statusFinal)
        }
        return CaseRecord(
            id: id,
            departmentID: department,
            reference: reference,
            subject: try Subject(kind: kind, validating: number),
            caseTypeID: caseTypeID,
            caseTypeCode: caseTypeCode,
            title: title,
            submittedAt: submittedAt,
            dueDate: dueDate,
            language: language,
            contactEmail: contactEmail,
            handler: try handler.map { try JSONDecoder().decode(Contact.self, from: Data($0.utf8)) },
            status: status
        )
    }
}
