public import Foundation
public import Logging
public import PostgresNIO

/// The figures a municipality steers on, per case type: aggregates only, nothing about any one resident.
public struct CaseTypeStatistics: Sendable, Equatable, Codable {
    public var caseType: String
    public var name: String
    public var open: Int
    public var closed: Int
    /// Days from submission to the final status, over closed cases.
    public var medianLeadDays: Double?
    public var p90LeadDays: Double?
    /// Of the closed cases with a due date, the share decided on or before it (0 to 1).
    public var withinTermShare: Double?
    /// Open cases past their due date today (Dutch time).
    public var overdue: Int
    public var averageFeedback: Double?
    public var feedbackCount: Int
}

extension CaseStore {
    /// The figures for each of a department's case types, in one statement.
    public func statistics(departmentID: UUID, client: PostgresClient, logger: Logger) async throws -> [CaseTypeStatistics] {
        let rows = try await client.query(
            """
            WITH facts AS (
                SELECT c.case_type_id, c.status_final,
                       CASE WHEN c.status_final THEN extract(epoch FROM c.status_set_at - c.submitted_at) / 86400 END AS lead_days,
                       CASE WHEN c.status_final AND c.due_date IS NOT NULL
                            THEN (c.status_set_at AT TIME ZONE 'Europe/Amsterdam')::date <= c.due_date END AS on_time,
                       (NOT c.status_final AND c.due_date < (now() AT TIME ZONE 'Europe/Amsterdam')::date) AS overdue,
                       f.rating
                FROM cases c LEFT JOIN case_feedback f ON f.case_id = c.id
                WHERE c.department_id = \(departmentID)
            )
            SELECT ct.code, ct.name_nl,
                   count(f.case_type_id) FILTER (WHERE NOT f.status_final)::bigint,
                   count(f.case_type_id) FILTER (WHERE f.status_final)::bigint,
                   (percentile_cont(0.5) WITHIN GROUP (ORDER BY f.lead_days))::float8,
                   (percentile_cont(0.9) WITHIN GROUP (ORDER BY f.lead_days))::float8,
                   (avg(f.on_time::int))::float8,
                   count(f.case_type_id) FILTER (WHERE f.overdue)::bigint,
                   (avg(f.rating))::float8,
                   count(f.rating)::bigint
            FROM case_types ct LEFT JOIN facts f ON f.case_type_id = ct.id
            WHERE ct.department_id = \(departmentID)
            GROUP BY ct.code, ct.name_nl
            ORDER BY ct.code
            """,
            logger: logger
        )
        var statistics: [CaseTypeStatistics] = []
        for try await (code, name, open, closed, median, p90, withinTerm, overdue, feedback, feedbackCount) in rows.decode(
            (String, String, Int, Int, Double?, Double?, Double?, Int, Double?, Int).self
        ) {
            statistics.append(
                CaseTypeStatistics(
                    caseType: code,
                    name: name,
                    open: open,
                    closed: closed,
                    medianLeadDays: median,
                    p90LeadDays: p90,
                    withinTermShare: withinTerm,
                    overdue: overdue,
                    averageFeedback: feedback,
                    feedbackCount: feedbackCount
                )
            )
        }
        return statistics
    }
}
