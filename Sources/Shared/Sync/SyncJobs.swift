public import Foundation

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

    /// The status job for `status`, a notification's `resourceUrl` or a status reconciliation found missing; one
    /// per status at a time (unique key `zgw:<status URL>:create`).
    public static func zgwStatusJob(department: UUID, status: URL, notifiedAt: Date?, traceID: String?) throws -> NewJob {
        try NewJob(
            Self.zgwStatus, payload: ZGWStatus(department: department, status: status, notifiedAt: notifiedAt),
            uniqueKey: "zgw:\(status.absoluteString):create", traceID: traceID)
    }
}
