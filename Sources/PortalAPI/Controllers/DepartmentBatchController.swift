import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Shared

/// `POST /api/v1/department/cases:batch`: many cases and their statuses at once, for a department's first load of
/// thousands of open cases, or a catch-up after an outage.
///
/// ```
/// {"items": [{"reference": "HLM-1", "case": {...as PUT...}, "statuses": [{...as POST...}, ...]}, ...]}
/// ```
///
/// Items are applied in order, in chunks of ``chunkSize``: each chunk is one transaction, applied set-based (a few
/// statements for the whole chunk, ``CaseStore/apply(_:departmentID:jobs:traceID:on:logger:)``), and each item within
/// it is all-or-nothing, so one bad item does not hold back the others. The answer has one result per
/// item, in the same order, with the HTTP status the item would have had on its own. Everything is idempotent, so a
/// client retries exactly the items that did not succeed.
struct DepartmentBatchController {
    let cases: DepartmentCasesController
    static let maximumItems = 1000
    static let chunkSize = 100

    func register(on routes: APIRoutes) {
        routes.department(.post, "/api/v1/department/cases:batch", self.batch)
    }

    struct ItemResult: Encodable {
        struct StatusResult: Encodable {
            let eventId: String
            /// `added` or `replayed`.
            let result: String
        }

        struct ProblemView: Encodable {
            let code: String
            let detail: String
            let invalidParams: [FieldError]?
        }

        let reference: String?
        let status: Int
        /// `created` or `updated`, when the item had a case.
        let `case`: String?
        let statuses: [StatusResult]?
        let problem: ProblemView?

        static func failed(_ reference: String?, _ problem: Problem) -> ItemResult {
            ItemResult(
                reference: reference,
                status: problem.status.code,
                case: nil,
                statuses: nil,
                problem: ProblemView(
                    code: problem.code,
                    detail: problem.detail,
                    invalidParams: problem.invalidParams.isEmpty ? nil : problem.invalidParams
                )
            )
        }
    }

    struct BatchView: Encodable {
        let results: [ItemResult]
        let applied: Int
        let failed: Int
    }

    func batch(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context, limit: 16 * 1024 * 1024)
        var items: [(index: Int, item: CaseChangeItem)] = []
        let raw = body.independentObjects("items", count: 1...Self.maximumItems)
        try body.finish()
        guard let raw else { throw Problem.invalidInput([]) }
        var results = [ItemResult?](repeating: nil, count: raw.count)

        // Read every item first: an invalid item gets its 400 without touching the database.
        var caseTypeCodes: Set<String> = []
        for (index, var itemBody) in raw.enumerated() {
            let (reference, item) = itemBody.caseChange()
            guard let item else {
                results[index] = .failed(reference, .invalidInput(itemBody.allErrors))
                continue
            }
            if let code = item.input?.caseTypeCode { caseTypeCodes.insert(code) }
            items.append((index, item))
        }

        // The case types named, once each; items whose case type is unknown are refused here.
        let resolved = try await self.cases.identity.database.withConnection { connection in
            try await self.cases.caseTypes.changes(
                for: items.map(\.item), departmentID: context.department.id, on: connection, logger: context.logger)
        }
        var changes: [(index: Int, change: CaseChange)] = []
        for ((index, item), result) in zip(items, resolved) {
            switch result {
            case .success(let change): changes.append((index, change))
            case .failure(let error): results[index] = .failed(item.reference, DepartmentCasesController.problem(error))
            }
        }
        for chunk in CaseChange.chunks(changes, size: Self.chunkSize, reference: \.change.reference) {
            do {
                let outcomes = try await self.cases.identity.database.transaction(logger: context.logger) { connection in
                    try await self.cases.apply(chunk.map(\.change), context: context, on: connection)
                }
                for ((index, change), outcome) in zip(chunk, outcomes) { results[index] = Self.result(change, outcome) }
            } catch {
                // The chunk's transaction failed as a whole: nothing of it was applied. Retrying those items is safe.
                context.logger.error("a batch chunk failed", metadata: ["error": "\(LoggableError.describe(error))"])
                let problem = Problem(
                    status: .serviceUnavailable,
                    code: "not-applied",
                    detail: "This item was not applied because its chunk failed; send it again."
                )
                for (index, change) in chunk { results[index] = .failed(change.reference, problem) }
            }
        }
        let all = results.map { $0 ?? .failed(nil, Problem(status: .internalServerError, code: "internal-error", detail: "No result.")) }
        let applied = all.filter { $0.problem == nil }.count
        return try JSONResponse.make(.ok, BatchView(results: all, applied: applied, failed: all.count - applied))
    }

    /// The result of one applied or refused item, with the HTTP status it would have had on its own.
    private static func result(_ change: CaseChange, _ outcome: CaseChangeOutcome) -> ItemResult {
        switch outcome {
        case .refused(let error):
            return .failed(change.reference, DepartmentCasesController.problem(error))
        case .applied(let applied):
            let statuses = applied.statuses.map { outcome -> ItemResult.StatusResult in
                switch outcome {
                case .added(let event): .init(eventId: event.eventID, result: "added")
                case .replayed(let event): .init(eventId: event.eventID, result: "replayed")
                }
            }
            let created = applied.created == true || statuses.contains { $0.result == "added" }
            return ItemResult(
                reference: change.reference,
                status: created ? 201 : 200,
                case: applied.created.map { $0 ? "created" : "updated" },
                statuses: change.statuses.isEmpty ? nil : statuses,
                problem: nil
            )
        }
    }
}
