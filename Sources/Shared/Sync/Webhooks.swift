import Crypto
public import Foundation
public import Logging
public import PostgresNIO

/// A department's own webhook for residents' messages and uploads (docs/SYNC.md, "Webhook").
public struct Webhook: Sendable, Equatable {
    public var departmentID: UUID
    public var url: URL
    /// The HMAC key the department verifies our signatures with. Never printed or logged.
    public var secret: String

    public init(departmentID: UUID, url: URL, secret: String) {
        self.departmentID = departmentID
        self.url = url
        self.secret = secret
    }

    /// The signature header's value for `body` sent at `timestamp` (whole seconds since 1970):
    /// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. The department computes the same and compares in
    /// constant time, and refuses a timestamp more than five minutes old (a replay).
    public static func signature(secret: String, timestamp: Int, body: Data) -> String {
        var message = Data("\(timestamp).".utf8)
        message.append(body)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
        return "v1=" + Data(code).hexadecimal
    }
}

/// The `department_webhooks` table (migration 0009).
public struct WebhookStore: Sendable {
    public init() {}

    /// Sets (or replaces) a department's webhook.
    public func set(_ webhook: Webhook, client: PostgresClient, logger: Logger) async throws {
        try await client.query(
            """
            INSERT INTO department_webhooks (department_id, url, secret)
            VALUES (\(webhook.departmentID), \(webhook.url.absoluteString), \(webhook.secret))
            ON CONFLICT (department_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = now()
            """,
            logger: logger
        )
    }

    public func find(departmentID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Webhook? {
        let rows = try await connection.query(
            "SELECT url, secret FROM department_webhooks WHERE department_id = \(departmentID)", logger: logger)
        for try await (url, secret) in rows.decode((String, String).self) {
            guard let url = URL(string: url) else { throw StoreError.unexpectedValue("department_webhooks url") }
            return Webhook(departmentID: departmentID, url: url, secret: secret)
        }
        return nil
    }
}

extension SyncJobs {
    public struct WebhookItem: Codable, Sendable {
        public enum Kind: String, Codable, Sendable {
            case message
            case document
        }

        public let department: UUID
        public let kind: Kind
        public let id: UUID

        public init(department: UUID, kind: Kind, id: UUID) {
            self.department = department
            self.kind = kind
            self.id = id
        }
    }

    /// Posts one resident's message or upload to the department's webhook (unique key `webhook:<kind>:<id>`);
    /// retried with backoff while the webhook fails.
    public static let webhook = JobKind<WebhookItem>("sync.deliver.webhook", queue: Queues.sync, maxAttempts: 20)

    /// Enqueues the delivery of a resident's message, in the transaction that stores it, when its department has a
    /// webhook; otherwise the department fetches it.
    public static func deliver(
        message id: UUID, department: UUID, jobs: JobQueue, traceID: String?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await self.enqueueWebhook(
            WebhookItem(department: department, kind: .message, id: id), jobs: jobs, traceID: traceID, on: connection, logger: logger)
    }

    static func enqueueWebhook(
        _ item: WebhookItem, jobs: JobQueue, traceID: String?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        guard try await WebhookStore().find(departmentID: item.department, on: connection, logger: logger) != nil else { return }
        _ = try await jobs.enqueue(
            [
                try NewJob(
                    Self.webhook, payload: item, uniqueKey: "webhook:\(item.kind.rawValue):\(item.id.uuidString.lowercased())",
                    traceID: traceID)
            ],
            on: connection)
    }
}
