public import Foundation
public import Logging
public import PostgresNIO

/// How long the portal keeps each kind of data: the `PORTAL_RETENTION_*` settings (docs/OPERATIONS.md, "Retention").
/// The portal is a window on the departments' own records, which stay the record of authority: what it removes
/// here, the department still holds.
public struct RetentionSettings: Sendable, Equatable {
    /// `PORTAL_RETENTION_CLOSED_CASE_MONTHS` (12): a case is removed, with its history, documents, messages and
    /// notifications, this long after its final status; not while anything the resident sent waits for the department.
    public var closedCaseMonths = 12
    /// `PORTAL_RETENTION_DELIVERED_DOCUMENT_DAYS` (30): a resident's upload is removed this long after the department
    /// confirmed it has it (fetched it, or the sync worker delivered it).
    public var deliveredDocumentDays = 30
    /// `PORTAL_RETENTION_MAIL_DAYS` (90): finished mail deliveries with their attempts, and the notifications they
    /// carried or skipped, are removed after this.
    public var mailDays = 90
    /// `PORTAL_RETENTION_AUDIT_DAYS` (2557, seven years): audit records are removed after this. Set it to the term
    /// the municipality's selection list (selectielijst) gives for processing logs.
    public var auditDays = 2557
    /// `PORTAL_RETENTION_INTERVAL_SECONDS` (3600): how often retention runs.
    public var interval: Duration = .seconds(3600)
    /// Refused sync changes are kept this long for operators.
    public var syncRefusalDays = 90
    /// Skipped ZGW statuses are kept until reconciliation can no longer meet them: its lookback and a month.
    public var zgwSkippedDays = 120

    public init() {}

    public init(_ environment: EnvironmentReader, zgwLookbackDays: Int = 90) throws(ConfigurationError) {
        self.closedCaseMonths = try environment.integer("PORTAL_RETENTION_CLOSED_CASE_MONTHS", default: 12, in: 1...1200)
        self.deliveredDocumentDays = try environment.integer("PORTAL_RETENTION_DELIVERED_DOCUMENT_DAYS", default: 30, in: 0...36500)
        self.mailDays = try environment.integer("PORTAL_RETENTION_MAIL_DAYS", default: 90, in: 1...36500)
        self.auditDays = try environment.integer("PORTAL_RETENTION_AUDIT_DAYS", default: 2557, in: 30...36500)
        self.interval = try environment.seconds("PORTAL_RETENTION_INTERVAL_SECONDS", default: .seconds(3600), in: 60...86400)
        self.zgwSkippedDays = zgwLookbackDays + 30
    }
}

/// What one retention run removed, per kind.
public struct RetentionReport: Sendable, Equatable, Codable {
    public var closedCases = 0
    public var deliveredDocuments = 0
    public var notifications = 0
    public var mailDeliveries = 0
    public var auditRecords = 0
    public var syncRefusals = 0
    public var zgwSkipped = 0
    /// Whether everything due was removed; false when the run stopped at its time budget (it continues next run).
    public var complete = true

    public init() {}

    public var total: Int {
        self.closedCases + self.deliveredDocuments + self.notifications + self.mailDeliveries + self.auditRecords + self.syncRefusals
            + self.zgwSkipped
    }
}

/// Applies the retention terms: each kind in batches of short transactions (no long locks, safe beside the live
/// load and beside another replica doing the same), removing stored content from a shared folder after the rows are
/// gone (a crash in between leaves an orphan file, never a row without its content).
public struct Retention: Sendable {
    public let settings: RetentionSettings
    let client: PostgresClient
    let storages: [DocumentStorageKind: any DocumentStorage]
    let logger: Logger
    static let batch = 500

    public init(
        settings: RetentionSettings, client: PostgresClient, storages: [DocumentStorageKind: any DocumentStorage], logger: Logger
    ) {
        self.settings = settings
        self.client = client
        self.storages = storages
        self.logger = logger
    }

    /// Removes what is due, for at most `budget`.
    public func apply(budget: Duration = .seconds(120)) async throws -> RetentionReport {
        let deadline = ContinuousClock.now + budget
        var report = RetentionReport()
        func drain(_ step: () async throws -> Int) async throws -> Int {
            var total = 0
            while ContinuousClock.now < deadline {
                let removed = try await step()
                total += removed
                if removed < Self.batch { return total }
            }
            report.complete = false
            return total
        }
        report.deliveredDocuments = try await drain { try await self.removeDocuments(Self.deliveredDocuments) }
        report.closedCases = try await drain { try await self.removeClosedCases() }
        report.notifications = try await drain { try await self.delete(Self.notifications, self.settings.mailDays) }
        report.mailDeliveries = try await drain { try await self.delete(Self.mailDeliveries, self.settings.mailDays) }
        report.auditRecords = try await drain { try await self.delete(Self.auditRecords, self.settings.auditDays) }
        report.syncRefusals = try await drain { try await self.delete(Self.syncRefusals, self.settings.syncRefusalDays) }
        report.zgwSkipped = try await drain { try await self.delete(Self.zgwSkipped, self.settings.zgwSkippedDays) }
        return report
    }

    // Each statement deletes at most one batch of rows older than `$1` days. A notification goes with the mail that
    // carried it (then the mail, once no notification refers to it), or on its own age when it was skipped; one that
    // still waits for its mail stays.
    static let notifications = """
        DELETE FROM notifications WHERE id IN (
            SELECT n.id FROM notifications n LEFT JOIN mail_deliveries d ON d.id = n.delivery_id
            WHERE (n.skipped IS NOT NULL AND n.created_at < now() - make_interval(days => $1::int))
               OR (d.state <> 'sending' AND d.finished_at < now() - make_interval(days => $1::int))
            ORDER BY n.id LIMIT 500)
        """
    static let mailDeliveries = """
        DELETE FROM mail_deliveries WHERE id IN (
            SELECT d.id FROM mail_deliveries d
            WHERE d.state <> 'sending' AND d.finished_at < now() - make_interval(days => $1::int)
              AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.delivery_id = d.id)
            ORDER BY d.finished_at LIMIT 500)
        """
    static let auditRecords = """
        DELETE FROM audit_log WHERE id IN (
            SELECT id FROM audit_log WHERE occurred_at < now() - make_interval(days => $1::int) ORDER BY occurred_at LIMIT 500)
        """
    static let syncRefusals = """
        DELETE FROM sync_refusals WHERE id IN (
            SELECT id FROM sync_refusals WHERE refused_at < now() - make_interval(days => $1::int) ORDER BY id LIMIT 500)
        """
    static let zgwSkipped = """
        DELETE FROM zgw_skipped WHERE (department_id, status_url) IN (
            SELECT department_id, status_url FROM zgw_skipped WHERE skipped_at < now() - make_interval(days => $1::int) LIMIT 500)
        """
    static let deliveredDocuments = """
        DELETE FROM documents WHERE id IN (
            SELECT id FROM documents
            WHERE origin = 'resident' AND delivery = 'delivered' AND delivered_at < now() - make_interval(days => $1::int)
            ORDER BY delivered_at LIMIT 500 FOR UPDATE SKIP LOCKED)
        RETURNING id, storage
        """

    private func delete(_ statement: String, _ days: Int) async throws -> Int {
        var bindings = PostgresBindings()
        bindings.append(days)
        var removed = 0
        let rows = try await self.client.query(PostgresQuery(unsafeSQL: statement + " RETURNING 1", binds: bindings), logger: self.logger)
        for try await _ in rows { removed += 1 }
        return removed
    }

    private func removeDocuments(_ statement: String) async throws -> Int {
        var bindings = PostgresBindings()
        bindings.append(self.settings.deliveredDocumentDays)
        var removed: [(UUID, String)] = []
        let rows = try await self.client.query(PostgresQuery(unsafeSQL: statement, binds: bindings), logger: self.logger)
        for try await row in rows.decode((UUID, String).self) { removed.append(row) }
        try await self.deleteContent(removed)
        return removed.count
    }

    /// Removes one batch of closed cases past their term, skipping any with a resident's upload or message the
    /// department does not have yet. Their documents, messages, status history, feedback and notifications go with
    /// them (`ON DELETE CASCADE`).
    private func removeClosedCases() async throws -> Int {
        let months = self.settings.closedCaseMonths
        let (cases, files) = try await self.client.transaction(logger: self.logger) { connection in
            let rows = try await connection.query(
                """
                SELECT c.id FROM cases c
                WHERE c.status_final AND c.status_set_at < now() - make_interval(months => \(months)::int)
                  AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.case_id = c.id AND d.delivery = 'pending')
                  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.case_id = c.id AND m.delivery = 'pending')
                ORDER BY c.status_set_at LIMIT 500 FOR UPDATE OF c SKIP LOCKED
                """,
                logger: self.logger)
            var cases: [UUID] = []
            for try await id in rows.decode(UUID.self) { cases.append(id) }
            guard !cases.isEmpty else { return ([UUID](), [(UUID, String)]()) }
            var files: [(UUID, String)] = []
            let documents = try await connection.query(
                "SELECT id, storage FROM documents WHERE case_id = ANY(\(cases))", logger: self.logger)
            for try await row in documents.decode((UUID, String).self) { files.append(row) }
            try await connection.query("DELETE FROM cases WHERE id = ANY(\(cases))", logger: self.logger)
            return (cases, files)
        }
        try await self.deleteContent(files)
        return cases.count
    }

    /// Deletes the content of removed documents from the storage that held it (PostgreSQL chunks went with their rows).
    private func deleteContent(_ documents: [(UUID, String)]) async throws {
        for kind in DocumentStorageKind.allCases where kind != .postgres {
            let ids = documents.filter { $0.1 == kind.rawValue }.map(\.0)
            guard !ids.isEmpty else { continue }
            guard let storage = self.storages[kind] else {
                self.logger.error(
                    "removed documents whose content is in storage this process cannot reach; remove the files by hand",
                    metadata: ["portal.documents.count": "\(ids.count)", "portal.documents.storage": "\(kind.rawValue)"])
                continue
            }
            try await storage.delete(ids)
        }
    }
}

/// The maintenance queue's jobs, run by the sync worker.
public enum MaintenanceJobs {
    public struct Run: Codable, Sendable {
        public init() {}
    }

    /// Applies ``Retention`` and snoozes for its interval: one for the whole deployment (unique key `retention`),
    /// started by the sync worker's schedule repair when missing.
    public static let retention = JobKind<Run>("maintenance.retention", queue: Queues.maintenance, maxAttempts: 20)

    public static func retentionJob() throws -> NewJob {
        try NewJob(Self.retention, payload: Run(), uniqueKey: "retention")
    }
}
