import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Shared

/// The department contract for status tracking (docs/CASES.md): case types, cases and status events, under
/// `/api/v1/department`, for department keys only. A department only ever sees and changes its own: every lookup is
/// by (department, code or reference).
struct DepartmentCasesController {
    let identity: IdentityServices
    let jobs: JobQueue
    let caseTypes = CaseTypeStore()
    let cases = CaseStore()

    func register(on routes: APIRoutes) {
        routes.department(.put, "/api/v1/department/case-types/{code}", self.putCaseType)
        routes.department(.get, "/api/v1/department/case-types/{code}", self.getCaseType)
        routes.department(.put, "/api/v1/department/cases/{reference}", self.putCase)
        routes.department(.get, "/api/v1/department/cases/{reference}", self.getCase)
        routes.department(.post, "/api/v1/department/cases/{reference}/statuses", self.postStatus)
        routes.department(.get, "/api/v1/department/stats", self.statistics)
    }

    /// `GET /api/v1/department/stats`: per case type, open and closed counts, lead times, the share decided within
    /// the term, overdue cases and the average feedback. Aggregates only: no audit record, no personal data.
    func statistics(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let statistics = try await self.cases.statistics(
            departmentID: context.department.id, client: self.identity.database, logger: context.logger)
        return try JSONResponse.make(.ok, ["caseTypes": statistics])
    }

    // MARK: Case types

    func putCaseType(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let code = try Self.pathCode(context, "code", check: CaseCodes.isCode, what: "case type code")
        var body = try await JSONBody.read(request, context: context)
        let name = body.localized("name", required: true, maxLength: 200)
        let termDays = body.integer("termDays", in: 1...3650)
        let statusTypes = body.objects("statusTypes", required: true, count: 1...100) { item -> StatusType? in
            let code = item.string("code", required: true, maxLength: 100)
            if let code, !CaseCodes.isCode(code) { item.fail("code", "invalid", "Letters, digits, '.', '_' and '-' only.") }
            let name = item.localized("name", required: true, maxLength: 200)
            let informs = item.bool("informs") ?? true
            let final = item.bool("final") ?? false
            let uploads = item.bool("uploadsAllowed") ?? false
            guard let code, let name else { return nil }
            return StatusType(code: code, name: name, informs: informs, final: final, uploadsAllowed: uploads)
        }
        if let statusTypes, Set(statusTypes.map(\.code)).count != statusTypes.count {
            body.fail("statusTypes", "invalid", "Each status type code may appear once.")
        }
        try body.finish()
        guard let name, let statusTypes else { throw Problem.invalidInput([]) }
        let (caseType, created) = try await self.identity.database.transaction(logger: context.logger) { connection in
            try await self.caseTypes.put(
                departmentID: context.department.id,
                code: code,
                name: name,
                termDays: termDays,
                statusTypes: statusTypes,
                on: connection,
                logger: context.logger
            )
        }
        return try JSONResponse.make(created ? .created : .ok, CaseTypeView(caseType))
    }

    func getCaseType(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let code = try Self.pathCode(context, "code", check: CaseCodes.isCode, what: "case type code")
        let found = try await self.identity.database.withConnection { connection in
            try await self.caseTypes.find(departmentID: context.department.id, code: code, on: connection, logger: context.logger)
        }
        guard let caseType = found else { throw Problem.notFound }
        return try JSONResponse.make(.ok, CaseTypeView(caseType))
    }

    // MARK: Cases

    func putCase(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let reference = try Self.pathCode(context, "reference", check: CaseCodes.isReference, what: "case reference")
        var body = try await JSONBody.read(request, context: context)
        let (input, caseTypeCode) = body.caseInput()
        // The case type must exist; checked with the other fields so that one answer lists every problem.
        var caseType: CaseType?
        if let code = caseTypeCode {
            caseType = try await self.identity.database.withConnection { connection in
                try await self.caseTypes.find(departmentID: context.department.id, code: code, on: connection, logger: context.logger)
            }
            if caseType == nil { body.fail("caseType", "unknown", CaseError.unknownCaseType(code).description) }
        }
        try body.finish()
        guard let input, let caseType else { throw Problem.invalidInput([]) }
        let (record, created) = try await self.identity.database.transaction(logger: context.logger) { connection in
            let change = CaseChange(reference: reference, fields: .init(input, caseType: caseType))
            guard case .applied(let applied)? = try await self.apply([change], context: context, on: connection).first,
                let record = try await self.cases.find(.id(applied.caseID), on: connection, logger: context.logger)
            else { throw StoreError.noRowReturned }
            return (record, applied.created == true)
        }
        return try JSONResponse.make(created ? .created : .ok, DepartmentCaseView(record, history: nil))
    }

    func getCase(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let reference = try Self.pathCode(context, "reference", check: CaseCodes.isReference, what: "case reference")
        let view = try await self.identity.database.transaction(logger: context.logger) { connection -> DepartmentCaseView? in
            guard
                let record = try await self.cases.find(
                    .reference(department: context.department.id, reference),
                    on: connection,
                    logger: context.logger
                )
            else { return nil }
            let history = try await self.cases.history(of: record.id, on: connection, logger: context.logger)
            try await self.identity.audit.record(
                Self.auditRecord("case.read", record.id, record.subject, context), on: connection, logger: context.logger)
            return DepartmentCaseView(record, history: history)
        }
        guard let view else { throw Problem(status: .notFound, code: "not-found", detail: CaseError.unknownCase.description) }
        return try JSONResponse.make(.ok, view)
    }

    // MARK: Status events

    func postStatus(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let reference = try Self.pathCode(context, "reference", check: CaseCodes.isReference, what: "case reference")
        var body = try await JSONBody.read(request, context: context)
        let event = body.statusEvent()
        try body.finish()
        guard let event else { throw Problem.invalidInput([]) }
        let outcome: StatusOutcome
        do {
            outcome = try await self.identity.database.transaction(logger: context.logger) { connection in
                try await self.applyStatus(event, to: reference, context: context, on: connection)
            }
        } catch let error as CaseError {
            throw Self.problem(error)
        }
        switch outcome {
        case .added(let stored): return try JSONResponse.make(.created, StatusEventView(stored))
        case .replayed(let original): return try JSONResponse.make(.ok, StatusEventView(original))
        }
    }

    /// Adds a status event to a department's case, with its audit record, in the caller's transaction.
    func applyStatus(
        _ event: NewStatusEvent,
        to reference: String,
        context: DepartmentRequestContext,
        on connection: PostgresConnection
    ) async throws -> StatusOutcome {
        let outcome = try await self.apply([CaseChange(reference: reference, statuses: [event])], context: context, on: connection)
        switch outcome.first {
        case .applied(let applied)?:
            guard let status = applied.statuses.first else { throw StoreError.noRowReturned }
            return status
        case .refused(let error)?: throw error
        case nil: throw StoreError.noRowReturned
        }
    }

    /// Applies changes to the department's cases (``CaseStore/apply(_:departmentID:jobs:traceID:on:logger:)``) with
    /// an audit record for every case written and every status added, in the caller's transaction.
    func apply(
        _ changes: [CaseChange], context: DepartmentRequestContext, on connection: PostgresConnection
    ) async throws
        -> [CaseChangeOutcome]
    {
        let outcomes = try await self.cases.apply(
            changes,
            departmentID: context.department.id,
            jobs: self.jobs,
            traceID: context.traceID,
            on: connection,
            logger: context.logger
        )
        var records: [AuditRecord] = []
        for case .applied(let applied) in outcomes {
            if applied.created != nil { records.append(Self.auditRecord("case.upsert", applied.caseID, applied.subject, context)) }
            for case .added in applied.statuses {
                records.append(Self.auditRecord("case.status.add", applied.caseID, applied.subject, context))
            }
        }
        try await self.identity.audit.record(records, on: connection, logger: context.logger)
        return outcomes
    }

    /// The problem for a refused case write.
    static func problem(_ error: CaseError) -> Problem {
        switch error {
        case .unknownCase: Problem(status: .notFound, code: "not-found", detail: error.description)
        case .unknownStatusType:
            Problem.invalidInput([FieldError(name: "statusType", code: "unknown", reason: error.description)])
        case .correctsUnknownEvent:
            Problem.invalidInput([FieldError(name: "corrects", code: "unknown", reason: error.description)])
        case .unknownCaseType:
            Problem.invalidInput([FieldError(name: "caseType", code: "unknown", reason: error.description)])
        case .eventForAnotherCase, .notFinal, .feedbackGiven: Problem(status: .conflict, code: "conflict", detail: error.description)
        }
    }

    // MARK: Helpers

    /// The audit record of the department's processing of one case.
    private static func auditRecord(
        _ activity: String, _ caseID: UUID, _ subject: Subject, _ context: DepartmentRequestContext
    )
        -> AuditRecord
    {
        AuditRecord(
            activity: activity,
            actor: .department(context.department.id),
            subject: subject,
            objectType: "case",
            objectID: caseID.uuidString.lowercased(),
            traceID: context.traceID
        )
    }

    /// A path parameter that must match `check`; anything else is a 404 (there is nothing at such an address).
    static func pathCode(
        _ context: some RequestContext,
        _ name: String,
        check: (String) -> Bool,
        what: String
    ) throws -> String {
        guard let value = context.parameters.get(name), check(value) else {
            throw Problem(status: .notFound, code: "not-found", detail: "That is not a valid \(what).")
        }
        return value
    }
}

// MARK: Views

struct CaseTypeView: Encodable {
    struct StatusTypeView: Encodable {
        let code: String
        let name: LocalizedText
        let informs: Bool
        let final: Bool
        let uploadsAllowed: Bool
    }

    let code: String
    let name: LocalizedText
    let termDays: Int?
    let statusTypes: [StatusTypeView]

    init(_ caseType: CaseType) {
        self.code = caseType.code
        self.name = caseType.name
        self.termDays = caseType.termDays
        self.statusTypes = caseType.statusTypes.map {
            StatusTypeView(code: $0.code, name: $0.name, informs: $0.informs, final: $0.final, uploadsAllowed: $0.uploadsAllowed)
        }
    }
}

struct StatusEventView: Encodable {
    let eventId: String
    let statusType: String
    let text: LocalizedText
    let explanation: LocalizedText?
    let setAt: Date
    let final: Bool
    let informs: Bool
    let corrects: String?

    init(_ event: StatusEvent) {
        self.eventId = event.eventID
        self.statusType = event.statusCode
        self.text = event.text
        self.explanation = event.explanation
        self.setAt = event.setAt
        self.final = event.final
        self.informs = event.informs
        self.corrects = event.corrects
    }
}

/// What the portal holds of a case, for its department (the subject included: it is the department's own data).
struct DepartmentCaseView: Encodable {
    struct SubjectView: Encodable {
        let bsn: String?
        let kvk: String?
    }

    struct StatusView: Encodable {
        let code: String
        let text: LocalizedText
        let setAt: Date
        let final: Bool
    }

    let id: String
    let reference: String
    let subject: SubjectView
    let caseType: String
    let title: String
    let submittedAt: Date
    let dueDate: String?
    let language: String
    let contactEmail: String?
    let handler: Contact?
    let status: StatusView?
    let history: [StatusEventView]?

    init(_ record: CaseRecord, history: [StatusEvent]?) {
        self.id = record.id.uuidString.lowercased()
        self.reference = record.reference
        self.subject = SubjectView(
            bsn: record.subject.kind == .bsn ? record.subject.number : nil,
            kvk: record.subject.kind == .kvk ? record.subject.number : nil
        )
        self.caseType = record.caseTypeCode
        self.title = record.title
        self.submittedAt = record.submittedAt
        self.dueDate = record.dueDate
        self.language = record.language.rawValue
        self.contactEmail = record.contactEmail
        self.handler = record.handler
        self.status = record.status.map { StatusView(code: $0.code, text: $0.text, setAt: $0.setAt, final: $0.final) }
        self.history = history?.map(StatusEventView.init)
    }
}
