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
/// Items are applied in order, in chunks of ``chunkSize``: each chunk is one transaction, and each item within it
/// is all-or-nothing (a savepoint), so one bad item does not hold back the others. The answer has one result per
/// item, in the same order, with the HTTP status the item would have had on its own. Everything is idempotent, so a
/// client retries exactly the items that did not succeed.
struct DepartmentBatchController {
    let cases: DepartmentCasesController
    static let maximumItems = 1000
    static let chunkSize = 100

    func register(on routes: APIRoutes) {
        routes.department(.post, "/api/v1/department/cases:batch", self.batch)
    }

    /// One item, read and checked.
    private struct Item {
        let index: Int
        let reference: String
        let caseFields: DepartmentCasesController.CaseFields?
        let statuses: [NewStatusEvent]
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
        var items: [Item] = []
        let raw = body.independentObjects("items", count: 1...Self.maximumItems)
        try body.finish()
        guard let raw else { throw Problem.invalidInput([]) }
        var results = [ItemResult?](repeating: nil, count: raw.count)

        // Read every item first: an invalid item gets its 400 without touching the database.
        var caseTypeCodes: Set<String> = []
        for (index, var itemBody) in raw.enumerated() {
            let reference = itemBody.string("reference", required: true, maxLength: 200)
            if let reference, !DepartmentCasesController.isReference(reference) {
                itemBody.fail("reference", "invalid", "Letters, digits and '._~:-' only.")
            }
            let fields = itemBody.nested("case") { DepartmentCasesController.readCase(&$0).fields }
            let statuses = itemBody.objects("statuses", count: 0...100) { DepartmentCasesController.readStatus(&$0) } ?? []
            if !itemBody.contains("case") && !itemBody.contains("statuses") {
                itemBody.fail("case", "required", "Give a case, statuses, or both.")
            }
            let errors = itemBody.allErrors
            guard errors.isEmpty, let reference else {
                results[index] = .failed(reference, .invalidInput(errors))
                continue
            }
            if let code = fields?.caseTypeCode { caseTypeCodes.insert(code) }
            items.append(Item(index: index, reference: reference, caseFields: fields, statuses: statuses))
        }

        // The case types named, once each.
        var caseTypes: [String: CaseType] = [:]
        try await self.cases.identity.database.withConnection { connection in
            for code in caseTypeCodes {
                caseTypes[code] = try await self.cases.caseTypes.find(
                    departmentID: context.department.id,
                    code: code,
                    on: connection,
                    logger: context.logger
                )
            }
        }

        var start = 0
        while start < items.count {
            let chunk = Array(items[start..<min(start + Self.chunkSize, items.count)])
            start += Self.chunkSize
            do {
                let chunkResults = try await self.cases.identity.database.transaction(logger: context.logger) { connection in
                    var chunkResults: [(Int, ItemResult)] = []
                    for item in chunk {
                        chunkResults.append(
                            (item.index, try await self.apply(item, caseTypes: caseTypes, context: context, on: connection)))
                    }
                    return chunkResults
                }
                for (index, result) in chunkResults { results[index] = result }
            } catch {
                // The chunk's transaction failed as a whole: nothing of it was applied. Retrying those items is safe.
                context.logger.error("a batch chunk failed", metadata: ["error": "\(LoggableError.describe(error))"])
                let problem = Problem(
                    status: .serviceUnavailable,
                    code: "not-applied",
                    detail: "This item was not applied because its chunk failed; send it again."
                )
                for item in chunk { results[item.index] = .failed(item.reference, problem) }
            }
        }
        let all = results.map { $0 ?? .failed(nil, Problem(status: .internalServerError, code: "internal-error", detail: "No result.")) }
        let applied = all.filter { $0.problem == nil }.count
        return try JSONResponse.make(.ok, BatchView(results: all, applied: applied, failed: all.count - applied))
    }

    /// Applies one item inside a savepoint: on a refusal, the item's writes are undone and the chunk goes on.
    private func apply(
        _ item: Item,
        caseTypes: [String: CaseType],
        context: DepartmentRequestContext,
        on connection: PostgresConnection
    ) async throws -> ItemResult {
        try await connection.query("SAVEPOINT batch_item", logger: context.logger)
        do {
            var caseResult: String?
            if let fields = item.caseFields {
                guard let caseType = caseTypes[fields.caseTypeCode] else { throw CaseError.unknownCaseType(fields.caseTypeCode) }
                let (_, created) = try await self.cases.applyCase(
                    item.reference,
                    fields.input(caseType: caseType),
                    caseType: caseType,
                    context: context,
                    on: connection
                )
                caseResult = created ? "created" : "updated"
            }
            var statuses: [ItemResult.StatusResult] = []
            for event in item.statuses {
                let outcome = try await self.cases.applyStatus(event, to: item.reference, context: context, on: connection)
                if case .replayed = outcome {
                    statuses.append(.init(eventId: event.eventID, result: "replayed"))
                } else {
                    statuses.append(.init(eventId: event.eventID, result: "added"))
                }
            }
            try await connection.query("RELEASE SAVEPOINT batch_item", logger: context.logger)
            let created = caseResult == "created" || statuses.contains { $0.result == "added" }
            return ItemResult(
                reference: item.reference,
                status: created ? 201 : 200,
                case: caseResult,
                statuses: item.statuses.isEmpty ? nil : statuses,
                problem: nil
            )
        } catch let error as CaseError {
            try await connection.query("ROLLBACK TO SAVEPOINT batch_item", logger: context.logger)
            return .failed(item.reference, DepartmentCasesController.problem(error))
        }
    }
}
