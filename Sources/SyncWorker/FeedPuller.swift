import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import PostgresNIO
import Shared

/// Pulls a department's change feed (docs/FEED.md) and applies every change exactly once.
///
/// One `sync.feed.pull` job per department (unique key `feed:<department>`) lives as long as the connector: after a
/// run it snoozes for the connector's interval instead of finishing, so there is never a second one and no leader
/// is needed. A page is fetched from the stored cursor and applied in ONE transaction that also stores the next
/// cursor, and only if the cursor is still the one the page was fetched from: a worker killed at any moment either
/// applied the whole page and moved the cursor, or did neither, and two workers can never apply the same page.
struct FeedPuller: Sendable {
    let client: DepartmentClient
    let database: PostgresClient
    let jobs: JobQueue
    /// Changes asked for per request.
    let pageSize: Int
    /// How long one run keeps pulling full pages before it lets other jobs have the worker.
    let budget: Duration

    init(client: DepartmentClient, database: PostgresClient, jobs: JobQueue, pageSize: Int = 500, budget: Duration = .seconds(20)) {
        self.client = client
        self.database = database
        self.jobs = jobs
        self.pageSize = pageSize
        self.budget = budget
    }

    func register(in registry: inout JobRegistry) {
        registry.register(SyncJobs.feedPull) { payload, context in try await self.run(payload.department, context: context) }
    }

    func run(_ department: UUID, context: JobContext) async throws {
        var logger = context.logger
        logger[metadataKey: "portal.department.id"] = "\(department)"
        let started = ContinuousClock.now
        while true {
            let found = try await self.database.withConnection { connection in
                try await ConnectorStore().find(departmentID: department, on: connection, logger: logger)
            }
            // A connector that was removed or changed kind ends its pull job.
            guard let connector = found, connector.kind == .feed, let base = connector.settings.url else { return }
            let more: Bool
            do {
                more = try await self.pullPage(connector, base: base, traceID: context.job.traceID, logger: logger)
            } catch let error as SyncError {
                throw try await self.client.gate.backOff(department, after: error, logger: logger)
            }
            if !more { throw JobSnooze(for: connector.interval) }
            if ContinuousClock.now - started > self.budget { throw JobSnooze(for: .zero) }
        }
    }

    /// Fetches and applies one page; returns whether the feed has more right away.
    func pullPage(_ connector: Connector, base: URL, traceID: String?, logger: Logger) async throws -> Bool {
        let department = connector.departmentID
        let cursor =
            try await self.database.query(
                "SELECT cursor FROM department_sync WHERE department_id = \(department)", logger: logger
            ).decode(String?.self).first { _ in true } ?? nil
        let url = try Self.changesURL(base, after: cursor, limit: self.pageSize)
        var headers = HTTPHeaders()
        if let secret = connector.secret { headers.add(name: "Authorization", value: "Bearer \(secret)") }
        let answer = try await self.client.get(url, from: connector, headers: headers, logger: logger)
        guard answer.status == .ok else { throw SyncError.status(answer.status, "GET \(url.path)") }
        let page = try Self.readPage(answer.body, limit: self.pageSize)

        let result: (applied: Int, refused: Int)?
        do {
            result = try await self.database.transaction(logger: logger) { connection -> (applied: Int, refused: Int) in
                let (applied, refusals) = try await self.apply(
                    page, departmentID: department, traceID: traceID, on: connection, logger: logger)
                for refusal in refusals {
                    try await connection.query(
                        """
                        INSERT INTO sync_refusals (department_id, reference, reason)
                        VALUES (\(department), \(refusal.reference), \(refusal.reason))
                        """,
                        logger: logger
                    )
                }
                // Last, so the row is locked only for the commit: the page counts only if the cursor is still the one
                // it was fetched from. Another worker that applied it first moved the cursor, and this whole
                // transaction is rolled back.
                let full = page.changes.count >= self.pageSize
                let moved = try await connection.query(
                    """
                    UPDATE department_sync
                    SET cursor = \(page.next), changes_applied = changes_applied + \(applied),
                        changes_refused = changes_refused + \(refusals.count),
                        behind_since = CASE WHEN \(full) THEN coalesce(behind_since, now()) END,
                        last_success_at = now(), consecutive_failures = 0, open_until = NULL
                    WHERE department_id = \(department) AND cursor IS NOT DISTINCT FROM \(cursor)
                    RETURNING 1
                    """,
                    logger: logger
                ).collect()
                guard moved.count == 1 else { throw StalePage() }
                return (applied, refusals.count)
            }
        } catch is StalePage {
            result = nil
        }
        guard let result else {
            logger.info("another worker applied this page first; reading on from its cursor")
            return true
        }
        let dimension = SyncGauges.label(department)
        Counter(label: "portal_sync_changes_total", dimensions: [dimension, ("outcome", "applied")]).increment(by: result.applied)
        if result.refused > 0 {
            Counter(label: "portal_sync_changes_total", dimensions: [dimension, ("outcome", "refused")]).increment(by: result.refused)
            logger.warning(
                "changes from the feed were refused; see PortalAPI department status",
                metadata: ["portal.sync.refused": "\(result.refused)"])
        }
        return page.changes.count >= self.pageSize
    }

    /// The page was applied by another worker meanwhile.
    private struct StalePage: Error {}

    struct Refusal {
        let reference: String?
        let reason: String
    }

    /// Applies a page's changes in order, in runs without a repeated case; returns the number applied and the refusals.
    private func apply(
        _ page: FeedPage, departmentID: UUID, traceID: String?, on connection: PostgresConnection, logger: Logger
    ) async throws -> (Int, [Refusal]) {
        var refusals: [(position: Int, refusal: Refusal)] = []
        var items: [(position: Int, item: CaseChangeItem)] = []
        for (position, var fields) in page.changes.enumerated() {
            let (reference, item) = fields.caseChange()
            guard let item else {
                // Field names and codes only: a reason may quote a value, and values may be personal data.
                let prefix = "changes[\(position)]"
                let reason = fields.allErrors.map { error in
                    let name = error.name == prefix ? "(the change itself)" : String(error.name.dropFirst(prefix.count + 1))
                    return "\(name): \(error.code)"
                }
                // The reference only when it is one: an invalid "reference" could be anything, a BSN or a name.
                let valid = reference.flatMap { CaseCodes.isReference($0) ? $0 : nil }
                refusals.append((position, Refusal(reference: valid, reason: "invalid change: \(reason.joined(separator: ", "))")))
                continue
            }
            items.append((position, item))
        }
        let resolved = try await CaseTypeStore().changes(
            for: items.map(\.item), departmentID: departmentID, on: connection, logger: logger)
        var changes: [(position: Int, change: CaseChange)] = []
        for ((position, item), result) in zip(items, resolved) {
            switch result {
            case .success(let change): changes.append((position, change))
            case .failure(let error): refusals.append((position, Refusal(reference: item.reference, reason: error.description)))
            }
        }
        var applied = 0
        // As few runs as the page allows: apply() is set-based, so one run of 500 costs about what one of 100 does.
        for chunk in CaseChange.chunks(changes, size: changes.count, reference: \.change.reference) {
            let outcomes = try await CaseStore().apply(
                chunk.map(\.change), departmentID: departmentID, jobs: self.jobs, traceID: traceID, on: connection, logger: logger)
            for ((position, change), outcome) in zip(chunk, outcomes) {
                switch outcome {
                case .applied: applied += 1
                case .refused(let error): refusals.append((position, Refusal(reference: change.reference, reason: error.description)))
                }
            }
        }
        return (applied, refusals.sorted { $0.position < $1.position }.map(\.refusal))
    }

    static func changesURL(_ base: URL, after cursor: String?, limit: Int) throws -> URL {
        guard var components = URLComponents(url: base.appendingPathComponent("changes"), resolvingAgainstBaseURL: false) else {
            throw SyncError.malformed("the feed URL is not a URL")
        }
        components.queryItems =
            (cursor.map { [URLQueryItem(name: "after", value: $0)] } ?? []) + [URLQueryItem(name: "limit", value: "\(limit)")]
        guard let url = components.url else { throw SyncError.malformed("the cursor does not fit in a URL") }
        return url
    }

    /// A page of the feed: `{"changes": [...], "next": "<cursor>"}`.
    struct FeedPage {
        var changes: [JSONFields]
        var next: String
    }

    static func readPage(_ body: ByteBuffer, limit: Int) throws -> FeedPage {
        var fields: JSONFields
        do {
            fields = try JSONFields.parse(Data(body.readableBytesView))
        } catch {
            throw SyncError.malformed(error.description)
        }
        let next = fields.string("next", required: true, maxLength: 1000)
        let changes = fields.independentObjects("changes", count: 0...limit)
        let errors = fields.allErrors
        guard errors.isEmpty, let next, let changes else {
            throw SyncError.malformed(errors.map(\.description).joined(separator: "; "))
        }
        return FeedPage(changes: changes, next: next)
    }
}
