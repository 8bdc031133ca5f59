public import Foundation
public import Logging
public import PostgresNIO

/// The sync worker's job kinds, declared here so that whoever starts them (connecting a department, the ZGW
/// notification callback) and the sync worker that runs them agree on names, payloads and unique keys.
public enum SyncJobs {
    public struct Department: Codable, Sendable {
        public let department: UUID
        public init(department: UUID) { self.department = department }
    }

    /// Pulls a department's change feed, then snoozes for the connector's interval: one per department, for as long
    /// as the connector exists (unique key `feed:<department>`).
    public static let feedPull = JobKind<Department>("sync.feed.pull", queue: Queues.sync, maxAttempts: 20)

    /// The schedule job of `connector`'s kind: the feed pull (for ZGW, the reconciliation).
    public static func schedule(for connector: Connector) throws -> NewJob {
        let key = connector.departmentID.uuidString.lowercased()
        switch connector.kind {
        case .feed: return try NewJob(Self.feedPull, payload: Department(department: connector.departmentID), uniqueKey: "feed:\(key)")
        case .zgw:
            return try NewJob(Self.zgwReconcile, payload: Department(department: connector.departmentID), uniqueKey: "zgw-reconcile:\(key)")
        }
    }

    /// Re-reads a ZGW department's recent statuses, then snoozes for the connector's interval (unique key
    /// `zgw-reconcile:<department>`).
    public static let zgwReconcile = JobKind<Department>("sync.zgw.reconcile", queue: Queues.sync, maxAttempts: 20)

    public struct ZGWStatus: Codable, Sendable {
        public let department: UUID
        /// The status's URL (the notification's `resourceUrl`).
        public let status: URL
        /// When Open Notificaties made the notification (`aanmaakdatum`), for the lag metric.
        public let notifiedAt: Date?

        public init(department: UUID, status: URL, notifiedAt: Date?) {
            self.department = department
            self.status = status
            self.notifiedAt = notifiedAt
        }
    }

    /// Fetches one ZGW status with its case and applies it (unique key `zgw:<status URL>:<actie>`).
    public static let zgwStatus = JobKind<ZGWStatus>("sync.zgw.status", queue: Queues.sync, maxAttempts: 20)

    public struct Delivery: Codable, Sendable {
        public let department: UUID
        public let document: UUID

        public init(department: UUID, document: UUID) {
            self.department = department
            self.document = document
        }
    }

    /// Delivers a resident's upload to the department's Documenten API and links it to the zaak (unique key
    /// `deliver:document:<id>`). Many attempts: a department that is down backs off without spending any.
    public static let deliverDocument = JobKind<Delivery>("sync.deliver.document", queue: Queues.sync, maxAttempts: 20)

    /// Enqueues the delivery of a resident's upload, in the transaction that stores it: to the department's
    /// Documenten API when it has one (`connect-zgw --documenten`), else to its webhook when it has one; otherwise the
    /// department fetches it.
    public static func deliver(
        document id: UUID, department: UUID, jobs: JobQueue, traceID: String?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let rows = try await connection.query(
            """
            SELECT 1 FROM department_connectors
            WHERE department_id = \(department) AND kind = 'zgw' AND settings ? 'documenten' AND settings ? 'informatieobjecttype'
            """,
            logger: logger
        )
        guard try await rows.decode(Int.self).first(where: { _ in true }) != nil else {
            return try await self.enqueueWebhook(
                WebhookItem(department: department, kind: .document, id: id), jobs: jobs, traceID: traceID, on: connection, logger: logger)
        }
        _ = try await jobs.enqueue(
            [
                try NewJob(
                    Self.deliverDocument, payload: Delivery(department: department, document: id),
                    uniqueKey: "deliver:document:\(id.uuidString.lowercased())", traceID: traceID)
            ], on: connection)
    }

    /// The status job for `status`, a notification's `resourceUrl` or a status reconciliation found missing; one
    /// per status at a time (unique key `zgw:<status URL>:create`).
    public static func zgwStatusJob(department: UUID, status: URL, notifiedAt: Date?, traceID: String?) throws -> NewJob {
        try NewJob(
            Self.zgwStatus, payload: ZGWStatus(department: department, status: status, notifiedAt: notifiedAt),
            uniqueKey: "zgw:\(status.absoluteString):create", traceID: traceID)
    }
}
