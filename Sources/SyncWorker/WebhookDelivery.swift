import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import PostgresNIO
import Shared

/// Posts residents' messages and uploads to a department's own webhook (docs/SYNC.md, "Webhook"): JSON describing
/// the item (an upload's content is fetched by the department with its API key from `href`), signed with
/// `Portal-Signature: v1=<HMAC-SHA256(secret, "<Portal-Timestamp>.<body>")>`. A 2xx marks the item delivered; a
/// failure that can pass (no answer, 5xx, 408, 429) is retried with backoff by the job; any other answer is recorded
/// for operators and leaves the item for the department to fetch.
struct WebhookDelivery: Sendable {
    let http: HTTPClient
    let database: PostgresClient
    let publicURL: URL
    let timeout: Duration

    func register(in registry: inout JobRegistry) {
        registry.register(SyncJobs.webhook) { payload, context in try await self.deliver(payload, context: context) }
    }

    /// What the webhook receives.
    struct Payload: Encodable {
        struct Document: Encodable {
            let id: String
            let fileName: String
            let contentType: String
            let size: Int64
            let sha256: String
            let href: String
        }

        /// `message` or `document`.
        let type: String
        let id: String
        let caseReference: String?
        let body: String?
        let documents: [Document]
        let sentAt: Date
    }

    func deliver(_ item: SyncJobs.WebhookItem, context: JobContext) async throws {
        var logger = context.logger
        logger[metadataKey: "portal.department.id"] = "\(item.department)"
        logger[metadataKey: "portal.webhook.item"] = "\(item.kind.rawValue):\(item.id.uuidString.lowercased())"
        let prepared = try await self.database.withConnection { connection -> (Webhook, Payload)? in
            // A paused department gets no requests from us, webhook posts included.
            let paused = try await connection.query(
                "SELECT 1 FROM department_connectors WHERE department_id = \(item.department) AND paused_at IS NOT NULL", logger: logger)
            if try await paused.decode(Int.self).first(where: { _ in true }) != nil { throw JobSnooze(for: .seconds(30)) }
            guard let webhook = try await WebhookStore().find(departmentID: item.department, on: connection, logger: logger),
                let payload = try await self.payload(item, on: connection, logger: logger)
            else { return nil }
            return (webhook, payload)
        }
        guard let (webhook, payload) = prepared else { return }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = try encoder.encode(payload)
        let timestamp = Int(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: webhook.url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Portal-Timestamp", value: "\(timestamp)")
        request.headers.add(name: "Portal-Signature", value: Webhook.signature(secret: webhook.secret, timestamp: timestamp, body: body))
        request.headers.add(name: "Portal-Delivery", value: "\(item.kind.rawValue):\(item.id.uuidString.lowercased())")
        request.headers.add(name: "traceparent", value: TraceContext.traceparent(traceID: context.job.traceID))
        request.body = .bytes(ByteBuffer(bytes: body))
        let status: HTTPResponseStatus
        do {
            let response = try await self.http.execute(request, timeout: .seconds(Int64(self.timeout.seconds)), logger: logger)
            status = response.status
            // The answer's body means nothing to us; a large or broken one does not undo the status.
            _ = try? await response.body.collect(upTo: 64 * 1024)
        } catch {
            if Task.isCancelled || error is CancellationError { throw error }
            logger.warning(
                "the department's webhook did not answer; the job tries again later",
                metadata: ["error": "\(LoggableError.describe(error))"])
            throw SyncError.unreachable(LoggableError.describe(error))
        }
        let department = SyncGauges.label(item.department)
        if (200..<300).contains(status.code) {
            try await self.database.withConnection { connection in
                switch item.kind {
                case .message: try await MessageStore().markDelivered(item.id, on: connection, logger: logger)
                case .document: try await DocumentStore().markDelivered(item.id, on: connection, logger: logger)
                }
            }
            Counter(label: "portal_sync_webhook_deliveries_total", dimensions: [department, ("outcome", "delivered")]).increment()
            return
        }
        let error = SyncError.status(status, "POST to the webhook")
        if error.isTransient {
            logger.warning("the department's webhook failed; the job tries again later", metadata: ["error": "\(error)"])
            throw error
        }
        Counter(label: "portal_sync_webhook_deliveries_total", dimensions: [department, ("outcome", "refused")]).increment()
        logger.warning("the department's webhook refused an item; the department can still fetch it", metadata: ["error": "\(error)"])
        try await self.database.query(
            """
            INSERT INTO sync_refusals (department_id, reference, reason)
            VALUES (\(item.department), \(payload.caseReference), \("webhook: " + error.description))
            """,
            logger: logger
        )
    }

    private func payload(_ item: SyncJobs.WebhookItem, on connection: PostgresConnection, logger: Logger) async throws -> Payload? {
        let documents = DocumentStore()
        switch item.kind {
        case .message:
            guard let message = try await MessageStore().find(item.id, department: item.department, on: connection, logger: logger),
                message.direction == .fromResident, message.deliveredAt == nil
            else { return nil }
            let attached = try await documents.find(ids: message.documentIDs, on: connection, logger: logger)
            return Payload(
                type: "message", id: message.id.uuidString.lowercased(),
                caseReference: try await self.reference(message.caseID, on: connection, logger: logger), body: message.body,
                documents: attached.map(self.view), sentAt: message.sentAt)
        case .document:
            guard let document = try await documents.find(item.id, department: item.department, on: connection, logger: logger),
                document.origin == .resident, document.deliveredAt == nil
            else { return nil }
            return Payload(
                type: "document", id: document.id.uuidString.lowercased(),
                caseReference: try await self.reference(document.caseID, on: connection, logger: logger), body: nil,
                documents: [self.view(document)], sentAt: document.storedAt)
        }
    }

    private func view(_ document: DocumentRecord) -> Payload.Document {
        let id = document.id.uuidString.lowercased()
        return Payload.Document(
            id: id, fileName: document.fileName, contentType: document.contentType, size: document.size,
            sha256: document.sha256.hexadecimal,
            href: self.publicURL.appendingPathComponent("api/v1/department/documents/\(id)/content").absoluteString)
    }

    private func reference(_ caseID: UUID?, on connection: PostgresConnection, logger: Logger) async throws -> String? {
        guard let caseID else { return nil }
        let rows = try await connection.query("SELECT reference FROM cases WHERE id = \(caseID)", logger: logger)
        return try await rows.decode(String.self).first { _ in true }
    }
}
