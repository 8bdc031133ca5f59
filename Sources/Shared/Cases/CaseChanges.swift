public import Foundation
public import Logging
public import PostgresNIO

/// What a department sends for one case: the case itself (created or updated), status events for it, or both.
public struct CaseChange: Sendable {
    public var reference: String
    /// The case's fields with their case type (already looked up); nil when only statuses are added.
    public var fields: CaseFields?
    public var statuses: [NewStatusEvent]

    public struct CaseFields: Sendable {
        public var input: CaseInput
        public var caseType: CaseType

        public init(_ input: CaseInput, caseType: CaseType) {
            self.input = input
            self.caseType = caseType
        }
    }

    public init(reference: String, fields: CaseFields? = nil, statuses: [NewStatusEvent] = []) {
        self.reference = reference
        self.fields = fields
        self.statuses = statuses
    }
}

/// What applying one ``CaseChange`` did: all of it, or (refused) none of it.
public enum CaseChangeOutcome: Sendable, Equatable {
    case applied(AppliedCaseChange)
    case refused(CaseError)
}

public struct AppliedCaseChange: Sendable, Equatable {
    public var caseID: UUID
    public var subject: Subject
    /// Whether this change created the case; nil when it had no case fields.
    public var created: Bool?
    /// One per status event of the change, in order.
    public var statuses: [StatusOutcome]
}

extension CaseStore {
    /// Applies changes to a department's cases in the caller's transaction, set-based: a handful of statements for
    /// the whole list, however long, instead of several per case and status. Every change is checked before
    /// anything is written, so a refused change (unknown case or status type, an event id of another case, a
    /// correction of an unknown event) leaves no trace, and the others are applied.
    ///
    /// The rules are those of a single status push: replaying an event id changes nothing and returns the original;
    /// history is ordered by when each status was set (a correction takes the place of the event it corrects); the
    /// current status is the newest uncorrected event; a status that becomes current and informs records a
    /// notification (with its notifier job), except the very first status of a case unless the department set `informs` on it. When one
    /// change adds several statuses to a case, only the one that ends up current is announced.
    ///
    /// Each reference may appear only once. The references are locked first (``lockReferences(departmentID:_:on:logger:)``),
    /// so a retry that overlaps its first attempt waits for it and then sees a replay, and concurrent calls do not
    /// deadlock.
    public func apply(
        _ changes: [CaseChange],
        departmentID: UUID,
        jobs: JobQueue,
        traceID: String?,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [CaseChangeOutcome] {
        precondition(Set(changes.map(\.reference)).count == changes.count, "one change per case")
        guard !changes.isEmpty else { return [] }

        try await self.lockReferences(departmentID: departmentID, changes.map(\.reference), on: connection, logger: logger)
        // What the database holds: the cases (locked), which of them have events, the event ids already used, and
        // the place in history of the events that are corrected.
        let existing = try await self.lockCases(
            departmentID: departmentID, references: changes.map(\.reference), on: connection, logger: logger)
        // Only changes with statuses need the rest; a change of case fields alone needs none of it.
        let statusReferences = Set(changes.filter { !$0.statuses.isEmpty }.map(\.reference))
        let withEvents = try await self.casesWithEvents(
            existing.filter { statusReferences.contains($0.key) }.map(\.value.id), on: connection, logger: logger)
        let eventIDs = changes.flatMap { $0.statuses.map(\.eventID) }
        let used = try await self.events(departmentID: departmentID, eventIDs: eventIDs, on: connection, logger: logger)
        let correctedIDs = changes.flatMap { $0.statuses.compactMap(\.corrects) }
        let corrected = try await self.placesInHistory(departmentID: departmentID, eventIDs: correctedIDs, on: connection, logger: logger)
        // The case types of existing cases that get statuses without new case fields (those bring their own type).
        var caseTypes: [UUID: CaseType] = [:]
        let typeless = changes.filter { !$0.statuses.isEmpty && $0.fields == nil }.compactMap { existing[$0.reference] }
        for record in typeless where caseTypes[record.caseTypeID] == nil {
            caseTypes[record.caseTypeID] = try await CaseTypeStore().find(id: record.caseTypeID, on: connection, logger: logger)
        }

        // Every change checked in order, against the database and the changes accepted before it.
        var plans: [Result<Plan, CaseError>] = []
        var claimed: Set<String> = []  // the event ids of the changes accepted so far
        for change in changes {
            let plan = self.plan(
                change, existing: existing[change.reference], caseTypes: caseTypes, used: used, corrected: corrected, claimed: claimed)
            if case .success(let accepted) = plan { claimed.formUnion(accepted.newEvents.map(\.event.eventID)) }
            plans.append(plan)
        }
        let accepted = zip(changes, plans).compactMap { change, plan -> (CaseChange, Plan)? in
            guard case .success(let plan) = plan else { return nil }
            return (change, plan)
        }

        // The writes: cases, then events, then the current status of every case that got events, then notifications.
        let upserts = accepted.compactMap { change, _ in change.fields.map { (change.reference, $0) } }
        let upserted = try await self.upsert(departmentID: departmentID, upserts, on: connection, logger: logger)
        var caseIDs: [String: UUID] = existing.mapValues(\.id)
        for (reference, row) in upserted { caseIDs[reference] = row.id }
        var rows: [NewEventRow] = []
        for (change, plan) in accepted {
            guard let caseID = caseIDs[change.reference] else { throw StoreError.noRowReturned }
            rows += plan.newEvents.map { NewEventRow(caseID: caseID, departmentID: departmentID, planned: $0) }
        }
        let inserted = try await self.insertEvents(rows, on: connection, logger: logger)
        let current = try await self.updateCurrentStatus(of: Array(Set(rows.map(\.caseID))), on: connection, logger: logger)

        var notifications: [NewNotification] = []
        var outcomes: [CaseChangeOutcome] = []
        for (change, result) in zip(changes, plans) {
            let plan: Plan
            switch result {
            case .success(let checked): plan = checked
            case .failure(let error):
                outcomes.append(.refused(error))
                continue
            }
            guard let caseID = caseIDs[change.reference] else { throw StoreError.noRowReturned }
            var statuses: [StatusOutcome] = []
            for step in plan.steps {
                switch step {
                case .replay(let original):
                    statuses.append(.replayed(original))
                case .replayOfNew(let index), .new(let index):
                    let planned = plan.newEvents[index]
                    guard let id = inserted[planned.event.eventID] else { throw StoreError.noRowReturned }
                    let stored = planned.stored(id: id, caseID: caseID)
                    if case .new = step { statuses.append(.added(stored)) } else { statuses.append(.replayed(stored)) }
                }
            }
            // The announcement: the new event that ended up current, if it informs and is not the case's first status.
            if let id = current[caseID], let index = plan.newEvents.firstIndex(where: { inserted[$0.event.eventID] == id }) {
                let planned = plan.newEvents[index]
                let first = index == 0 && !withEvents.contains(caseID)
                if planned.informs && (!first || planned.event.informs == true) {
                    notifications.append(.status(event: id, caseID: caseID, correction: planned.event.corrects != nil))
                }
            }
            let subject = change.fields?.input.subject ?? existing[change.reference]?.subject
            guard let subject else { throw StoreError.noRowReturned }
            outcomes.append(
                .applied(
                    AppliedCaseChange(caseID: caseID, subject: subject, created: upserted[change.reference]?.created, statuses: statuses)))
        }
        try await NotificationStore().record(notifications, jobs: jobs, traceID: traceID, on: connection, logger: logger)
        return outcomes
    }

    // MARK: Checking

    /// A status event that will be inserted, with what was decided about it.
    private struct PlannedEvent {
        var event: NewStatusEvent
        var final: Bool
        var informs: Bool
        /// Its place in history: when it was set, or the place of the event it corrects.
        var sortAt: Date

        func stored(id: Int64, caseID: UUID) -> StatusEvent {
            StatusEvent(
                id: id,
                caseID: caseID,
                eventID: self.event.eventID,
                statusCode: self.event.statusCode,
                text: self.event.text,
                explanation: self.event.explanation,
                setAt: self.event.setAt,
                final: self.final,
                informs: self.informs,
                corrects: self.event.corrects
            )
        }
    }

    /// What a change will do, status by status.
    private struct Plan {
        enum Step {
            case new(Int)
            case replay(StatusEvent)
            /// The same event id twice in one change: the second is a replay of the first.
            case replayOfNew(Int)
        }

        var newEvents: [PlannedEvent] = []
        var steps: [Step] = []
    }

    private func plan(
        _ change: CaseChange,
        existing record: CaseRecord?,
        caseTypes: [UUID: CaseType],
        used: [String: StatusEvent],
        corrected: [String: (caseID: UUID, sortAt: Date)],
        claimed: Set<String>
    ) -> Result<Plan, CaseError> {
        var plan = Plan()
        guard change.fields != nil || record != nil else { return .failure(.unknownCase) }
        guard !change.statuses.isEmpty else { return .success(plan) }
        guard let caseType = change.fields?.caseType ?? record.flatMap({ caseTypes[$0.caseTypeID] }) else {
            return .failure(.unknownCase)
        }
        for event in change.statuses {
            if let original = used[event.eventID] {
                guard original.caseID == record?.id else { return .failure(.eventForAnotherCase) }
                plan.steps.append(.replay(original))
                continue
            }
            if let index = plan.newEvents.firstIndex(where: { $0.event.eventID == event.eventID }) {
                plan.steps.append(.replayOfNew(index))
                continue
            }
            if claimed.contains(event.eventID) { return .failure(.eventForAnotherCase) }
            guard let statusType = caseType.statusType(event.statusCode) else { return .failure(.unknownStatusType(event.statusCode)) }
            var sortAt = event.setAt
            if let correctedID = event.corrects {
                if let earlier = plan.newEvents.first(where: { $0.event.eventID == correctedID }) {
                    sortAt = earlier.sortAt
                } else if let place = corrected[correctedID], let record, place.caseID == record.id {
                    sortAt = place.sortAt
                } else {
                    return .failure(.correctsUnknownEvent(correctedID))
                }
            }
            plan.steps.append(.new(plan.newEvents.count))
            plan.newEvents.append(
                PlannedEvent(event: event, final: statusType.final, informs: event.informs ?? statusType.informs, sortAt: sortAt))
        }
        return .success(plan)
    }

    // MARK: Statements

    /// Locks a department's case references until the transaction ends, whether or not the cases exist yet, in one
    /// fixed order (transaction-scoped advisory locks on a hash of department and reference; a collision only makes
    /// two unrelated writes wait for each other). Every write of a case takes these first.
    func lockReferences(departmentID: UUID, _ references: [String], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            SELECT pg_advisory_xact_lock(k) FROM (
                SELECT DISTINCT hashtextextended(\(departmentID)::text || ':' || r, 0) AS k FROM unnest(\(references)::text[]) AS r
                ORDER BY k
            ) AS ordered ORDER BY k
            """,
            logger: logger
        )
    }

    /// The department's cases with these references, locked until the transaction ends, by reference.
    private func lockCases(
        departmentID: UUID, references: [String], on connection: PostgresConnection, logger: Logger
    ) async throws -> [String: CaseRecord] {
        let rows = try await connection.query(
            """
            \(unescaped: Self.caseColumns)
            WHERE c.department_id = \(departmentID) AND c.reference = ANY(\(references))
            ORDER BY c.reference
            FOR UPDATE OF c
            """,
            logger: logger
        )
        var records: [String: CaseRecord] = [:]
        for try await row in rows {
            let record = try Self.decodeCase(row)
            records[record.reference] = record
        }
        return records
    }

    private func casesWithEvents(_ caseIDs: [UUID], on connection: PostgresConnection, logger: Logger) async throws -> Set<UUID> {
        guard !caseIDs.isEmpty else { return [] }
        let rows = try await connection.query(
            "SELECT DISTINCT case_id FROM status_events WHERE case_id = ANY(\(caseIDs))",
            logger: logger
        )
        return try await rows.decode(UUID.self).reduce(into: []) { $0.insert($1) }
    }

    /// The department's events with these ids, by event id.
    private func events(
        departmentID: UUID, eventIDs: [String], on connection: PostgresConnection, logger: Logger
    ) async throws -> [String: StatusEvent] {
        guard !eventIDs.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT \(unescaped: Self.eventColumns)
            FROM status_events e WHERE e.department_id = \(departmentID) AND e.event_id = ANY(\(eventIDs))
            """,
            logger: logger
        )
        var events: [String: StatusEvent] = [:]
        for try await row in rows {
            let event = try Self.decodeEvent(row)
            events[event.eventID] = event
        }
        return events
    }

    /// The case and place in history of the department's events with these ids.
    private func placesInHistory(
        departmentID: UUID, eventIDs: [String], on connection: PostgresConnection, logger: Logger
    ) async throws -> [String: (caseID: UUID, sortAt: Date)] {
        guard !eventIDs.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT event_id, case_id, sort_at FROM status_events
            WHERE department_id = \(departmentID) AND event_id = ANY(\(eventIDs))
            """,
            logger: logger
        )
        var places: [String: (caseID: UUID, sortAt: Date)] = [:]
        for try await (eventID, caseID, sortAt) in rows.decode((String, UUID, Date).self) { places[eventID] = (caseID, sortAt) }
        return places
    }

    /// Creates or updates cases; returns each one's id and whether it was created, by reference.
    private func upsert(
        departmentID: UUID,
        _ cases: [(reference: String, fields: CaseChange.CaseFields)],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [String: (id: UUID, created: Bool)] {
        guard !cases.isEmpty else { return [:] }
        let rows = cases.sorted { $0.reference < $1.reference }.map { reference, fields in
            CaseRow(
                reference: reference,
                subject_kind: fields.input.subject.kind.rawValue,
                subject: fields.input.subject.number,
                case_type_id: fields.caseType.id,
                title: fields.input.title,
                submitted_at: fields.input.submittedAt.postgresMicroseconds,
                due_date: fields.input.dueDate,
                term_days: fields.caseType.termDays,
                language: fields.input.language.rawValue,
                contact_email: fields.input.contactEmail,
                handler: fields.input.handler
            )
        }
        let result = try await connection.query(
            """
            WITH input AS (
                SELECT x.*, \(unescaped: Self.fromMicroseconds("x.submitted_at")) AS submitted
                FROM jsonb_to_recordset(\(try Self.json(rows))::jsonb) AS x(
                    reference text, subject_kind text, subject text, case_type_id uuid, title text, submitted_at bigint,
                    due_date date, term_days integer, language text, contact_email text, handler jsonb)
            )
            INSERT INTO cases (department_id, reference, subject_kind, subject, case_type_id, title, submitted_at, due_date,
                               language, contact_email, handler, last_activity_at)
            SELECT \(departmentID), reference, subject_kind, subject, case_type_id, title, submitted,
                   coalesce(due_date, (submitted AT TIME ZONE 'Europe/Amsterdam')::date + term_days),
                   language, contact_email, nullif(handler, 'null'::jsonb), submitted
            FROM input ORDER BY reference
            ON CONFLICT (department_id, reference) DO UPDATE
            SET subject_kind = excluded.subject_kind, subject = excluded.subject, case_type_id = excluded.case_type_id,
                title = excluded.title, submitted_at = excluded.submitted_at, due_date = excluded.due_date,
                language = excluded.language, contact_email = excluded.contact_email, handler = excluded.handler,
                last_activity_at = greatest(cases.last_activity_at, excluded.submitted_at), updated_at = now()
            RETURNING reference, id, (xmax = 0)
            """,
            logger: logger
        )
        var upserted: [String: (id: UUID, created: Bool)] = [:]
        for try await (reference, id, created) in result.decode((String, UUID, Bool).self) { upserted[reference] = (id, created) }
        return upserted
    }

    /// Inserts status events; returns each one's id by event id.
    private func insertEvents(_ rows: [NewEventRow], on connection: PostgresConnection, logger: Logger) async throws -> [String: Int64] {
        guard !rows.isEmpty else { return [:] }
        let result = try await connection.query(
            """
            INSERT INTO status_events (case_id, department_id, event_id, status_code, text_nl, text_en, explanation_nl,
                                       explanation_en, set_at, final, informs, corrects, sort_at)
            SELECT case_id, department_id, event_id, status_code, text_nl, text_en, explanation_nl, explanation_en,
                   \(unescaped: Self.fromMicroseconds("set_at")), final, informs, corrects,
                   \(unescaped: Self.fromMicroseconds("sort_at"))
            FROM ROWS FROM (jsonb_to_recordset(\(try Self.json(rows))::jsonb) AS (
                case_id uuid, department_id uuid, event_id text, status_code text, text_nl text, text_en text,
                explanation_nl text, explanation_en text, set_at bigint, final boolean, informs boolean, corrects text,
                sort_at bigint)) WITH ORDINALITY AS x
            ORDER BY x.ordinality  -- ids in the order given: of events set at the same time, the later one wins
            RETURNING event_id, id
            """,
            logger: logger
        )
        var ids: [String: Int64] = [:]
        for try await (eventID, id) in result.decode((String, Int64).self) { ids[eventID] = id }
        return ids
    }

    /// Sets each case's current status to its newest event (by place in history) that no other event corrects;
    /// returns that event's id per case.
    private func updateCurrentStatus(of caseIDs: [UUID], on connection: PostgresConnection, logger: Logger) async throws -> [UUID: Int64] {
        guard !caseIDs.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            UPDATE cases SET status_event = n.id, status_code = n.status_code, status_text_nl = n.text_nl,
                             status_text_en = n.text_en, status_set_at = n.set_at, status_final = n.final,
                             last_activity_at = greatest(cases.last_activity_at, n.set_at), updated_at = now()
            FROM (
                SELECT DISTINCT ON (e.case_id) e.case_id, e.id, e.status_code, e.text_nl, e.text_en, e.set_at, e.final
                FROM status_events e
                WHERE e.case_id = ANY(\(caseIDs))
                  AND NOT EXISTS (SELECT 1 FROM status_events c WHERE c.case_id = e.case_id AND c.corrects = e.event_id)
                ORDER BY e.case_id, e.sort_at DESC, e.id DESC
            ) n
            WHERE cases.id = n.case_id
            RETURNING cases.id, cases.status_event
            """,
            logger: logger
        )
        var current: [UUID: Int64] = [:]
        for try await (caseID, eventID) in rows.decode((UUID, Int64).self) { current[caseID] = eventID }
        return current
    }

    // MARK: Rows as JSON

    /// A case row for `jsonb_to_recordset`; times in PostgreSQL's microseconds, so nothing is rounded on the way.
    private struct CaseRow: Encodable {
        let reference: String
        let subject_kind: String
        let subject: String
        let case_type_id: UUID
        let title: String
        let submitted_at: Int64
        let due_date: String?
        let term_days: Int?
        let language: String
        let contact_email: String?
        let handler: Contact?
    }

    private struct NewEventRow: Encodable {
        let case_id: UUID
        let department_id: UUID
        let event_id: String
        let status_code: String
        let text_nl: String
        let text_en: String?
        let explanation_nl: String?
        let explanation_en: String?
        let set_at: Int64
        let final: Bool
        let informs: Bool
        let corrects: String?
        let sort_at: Int64

        var caseID: UUID { self.case_id }

        init(caseID: UUID, departmentID: UUID, planned: PlannedEvent) {
            self.case_id = caseID
            self.department_id = departmentID
            self.event_id = planned.event.eventID
            self.status_code = planned.event.statusCode
            self.text_nl = planned.event.text.nl
            self.text_en = planned.event.text.en
            self.explanation_nl = planned.event.explanation?.nl
            self.explanation_en = planned.event.explanation?.en
            self.set_at = planned.event.setAt.postgresMicroseconds
            self.final = planned.final
            self.informs = planned.informs
            self.corrects = planned.event.corrects
            self.sort_at = planned.sortAt.postgresMicroseconds
        }
    }

    private static func json(_ rows: some Encodable) throws -> String {
        String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
    }

    /// SQL for a timestamp from ``Foundation/Date/postgresMicroseconds``.
    private static func fromMicroseconds(_ column: String) -> String {
        "('2000-01-01 00:00:00+00'::timestamptz + \(column) * interval '1 microsecond')"
    }
}

extension Date {
    /// Microseconds since 2000-01-01 UTC, PostgreSQL's own representation of a timestamp. Rounded to the nearest
    /// microsecond, so that a time given to the microsecond survives the detour through a `Double`.
    var postgresMicroseconds: Int64 {
        Int64((self.timeIntervalSince(Date(timeIntervalSince1970: 946_684_800)) * 1_000_000).rounded())
    }
}
