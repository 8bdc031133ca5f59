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

    // MARK: Department writes

    /// Creates or updates a case, in the caller's transaction. Returns the case and whether it was new.
    public func upsert(
        departmentID: UUID,
        reference: String,
        _ input: CaseInput,
        caseType: CaseType,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> (CaseRecord, created: Bool) {
        let handler = try input.handler.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let rows = try await connection.query(
            """
            INSERT INTO cases (department_id, reference, subject_kind, subject, case_type_id, title, submitted_at, due_date,
                               language, contact_email, handler, last_activity_at)
            VALUES (\(departmentID), \(reference), \(input.subject.kind.rawValue), \(input.subject.number), \(caseType.id),
                    \(input.title), \(input.submittedAt),
                    coalesce(\(input.dueDate)::date,
                             (\(input.submittedAt)::timestamptz AT TIME ZONE 'Europe/Amsterdam')::date + \(caseType.termDays)::integer),
                    \(input.language.rawValue), \(input.contactEmail), \(handler)::jsonb, \(input.submittedAt))
            ON CONFLICT (department_id, reference) DO UPDATE
            SET subject_kind = excluded.subject_kind, subject = excluded.subject, case_type_id = excluded.case_type_id,
                title = excluded.title, submitted_at = excluded.submitted_at, due_date = excluded.due_date,
                language = excluded.language, contact_email = excluded.contact_email, handler = excluded.handler,
                last_activity_at = greatest(cases.last_activity_at, excluded.submitted_at), updated_at = now()
            RETURNING id, (xmax = 0)
            """,
            logger: logger
        )
        guard let (id, created) = try await rows.decode((UUID, Bool).self).first(where: { _ in true }) else {
            throw StoreError.noRowReturned
        }
        guard let record = try await self.find(.id(id), on: connection, logger: logger) else { throw StoreError.noRowReturned }
        return (record, created)
    }

    /// Adds a status event to a case, in the caller's transaction, and moves the case's current status when the
    /// event is now the newest. Replaying an event id changes nothing and returns the original.
    ///
    /// The caller holds the case row locked (`find(_:lock: true)` in the same transaction), so concurrent events
    /// for one case are applied one after the other. A notification job is enqueued in the same transaction when the event became the current status, informs the
    /// resident, and is not the first status of the case (unless the department set `informs` on it explicitly).
    public func addStatus(
        _ event: NewStatusEvent,
        to record: CaseRecord,
        statusType: StatusType,
        jobs: JobQueue,
        traceID: String?,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> StatusOutcome {
        let earlier = try await connection.query(
            "SELECT EXISTS (SELECT 1 FROM status_events WHERE case_id = \(record.id))",
            logger: logger
        )
        let hadEvents = try await earlier.decode(Bool.self).first(where: { _ in true }) ?? false
        if let original = try await self.event(departmentID: record.departmentID, eventID: event.eventID, on: connection, logger: logger) {
            guard original.caseID == record.id else { throw CaseError.eventForAnotherCase }
            return .replayed(original)
        }
        var sortAt = event.setAt
        if let corrected = event.corrects {
            let rows = try await connection.query(
                "SELECT sort_at FROM status_events WHERE case_id = \(record.id) AND event_id = \(corrected)",
                logger: logger
            )
            guard let at = try await rows.decode(Date.self).first(where: { _ in true }) else {
                throw CaseError.correctsUnknownEvent(corrected)
            }
            sortAt = at
        }
        let informs = event.informs ?? statusType.informs
        let inserted = try await connection.query(
            """
            INSERT INTO status_events (case_id, department_id, event_id, status_code, text_nl, text_en, explanation_nl,
                                       explanation_en, set_at, final, informs, corrects, sort_at)
            VALUES (\(record.id), \(record.departmentID), \(event.eventID), \(event.statusCode), \(event.text.nl), \(event.text.en),
                    \(event.explanation?.nl), \(event.explanation?.en), \(event.setAt), \(statusType.final), \(informs),
                    \(event.corrects), \(sortAt))
            RETURNING id
            """,
            logger: logger
        )
        guard let id = try await inserted.decode(Int64.self).first(where: { _ in true }) else { throw StoreError.noRowReturned }
        // The current status: the newest event (by its place in history) that no other event corrects.
        let current = try await connection.query(
            """
            WITH newest AS (
                SELECT e.id, e.status_code, e.text_nl, e.text_en, e.set_at, e.final, e.sort_at
                FROM status_events e
                WHERE e.case_id = \(record.id)
                  AND NOT EXISTS (SELECT 1 FROM status_events c WHERE c.case_id = e.case_id AND c.corrects = e.event_id)
                ORDER BY e.sort_at DESC, e.id DESC
                LIMIT 1
            )
            UPDATE cases SET status_event = n.id, status_code = n.status_code, status_text_nl = n.text_nl,
                             status_text_en = n.text_en, status_set_at = n.set_at, status_final = n.final,
                             last_activity_at = greatest(cases.last_activity_at, n.set_at), updated_at = now()
            FROM newest n
            WHERE cases.id = \(record.id)
            RETURNING cases.status_event
            """,
            logger: logger
        )
        let isCurrent = try await current.decode(Int64.self).first(where: { _ in true }) == id
        let notify = isCurrent && informs && (hadEvents || event.informs == true)
        if notify {
            let job = try NewJob(
                StatusNotification.kind,
                payload: StatusNotification(caseID: record.id, statusEvent: id, correction: event.corrects != nil),
                uniqueKey: "status-event:\(id)",
                traceID: traceID
            )
            _ = try await jobs.enqueue(job, on: connection)
        }
        let stored = StatusEvent(
            id: id,
            caseID: record.id,
            eventID: event.eventID,
            statusCode: event.statusCode,
            text: event.text,
            explanation: event.explanation,
            setAt: event.setAt,
            final: statusType.final,
            informs: informs,
            corrects: event.corrects
        )
        return .added(stored)
    }

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
        let select = """
            SELECT c.id, c.department_id, c.reference, c.subject_kind, c.subject, c.case_type_id, ct.code, c.title,
                   c.submitted_at, c.due_date::text, c.language, c.contact_email, c.handler::text, c.status_code,
                   c.status_text_nl, c.status_text_en, c.status_set_at, c.status_final
            FROM cases c JOIN case_types ct ON ct.id = c.case_type_id
            """
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

    /// A department's event by its event id.
    func event(departmentID: UUID, eventID: String, on connection: PostgresConnection, logger: Logger) async throws -> StatusEvent? {
        let rows = try await connection.query(
            """
            SELECT \(unescaped: Self.eventColumns)
            FROM status_events e WHERE e.department_id = \(departmentID) AND e.event_id = \(eventID)
            """,
            logger: logger
        )
        for try await row in rows { return try Self.decodeEvent(row) }
        return nil
    }

    /// The columns ``decodeEvent(_:)`` reads, from `status_events e`.
    private static let eventColumns = """
        e.id, e.case_id, e.event_id, e.status_code, e.text_nl, e.text_en, e.explanation_nl, e.explanation_en, e.set_at,
        e.final, e.informs, e.corrects
        """

    private static func decodeEvent(_ row: PostgresRow) throws -> StatusEvent {
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

    /// Decodes the columns `find` selects.
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
