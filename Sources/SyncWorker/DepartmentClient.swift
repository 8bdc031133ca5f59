import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Shared

/// Every request the sync worker sends to a department goes through here: only to URLs under the connector's own
/// roots (anything else is refused and logged as a security event: a notification or a feed cannot make us fetch
/// another host), admitted by the ``DepartmentGate``, with a timeout, no redirects, a size limit on the answer, and the
/// job's trace in a `traceparent` header.
struct DepartmentClient: Sendable {
    let http: HTTPClient
    let gate: DepartmentGate
    let timeout: Duration
    /// The largest answer read; a longer one fails the request.
    let bodyLimit: Int

    init(http: HTTPClient, gate: DepartmentGate, timeout: Duration = .seconds(30), bodyLimit: Int = 16 << 20) {
        self.http = http
        self.gate = gate
        self.timeout = timeout
        self.bodyLimit = bodyLimit
    }

    /// The HTTP client the sync worker uses: no redirects (a redirect could lead outside the allowed roots), and a
    /// connect timeout of its own.
    static func makeHTTPClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: .seconds(30))
        )
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    struct Answer: Sendable {
        let status: HTTPResponseStatus
        let body: ByteBuffer
    }

    /// GETs `url` from `connector`'s department. Throws ``SyncError`` for a refused URL, a transport failure, or an
    /// answer that is too large; any status comes back as an ``Answer``.
    func get(_ url: URL, from connector: Connector, headers: HTTPHeaders = [:], logger: Logger) async throws -> Answer {
        try await self.send(.GET, url, body: nil, from: connector, headers: headers, logger: logger)
    }

    /// Sends a request with `body` (when given) to `connector`'s department, under the same rules as ``get``.
    func send(
        _ method: HTTPMethod, _ url: URL, body: ByteBuffer?, from connector: Connector, headers: HTTPHeaders = [:], logger: Logger
    ) async throws -> Answer {
        guard connector.settings.roots.contains(where: { SyncURLs.isURL(url, under: $0) }) else {
            logger.warning(
                "security event",
                metadata: [
                    "portal.security.event": "url-refused",
                    "portal.security.reason": "not under the department's configured roots",
                    "portal.department.id": "\(connector.departmentID)",
                    "url.host": "\(url.host ?? "-")",
                ])
            Counter(label: "portal_security_events_total", dimensions: [("event", "url-refused")]).increment()
            throw SyncError.refusedURL(url.host ?? "-")
        }
        let permit = try await self.gate.admitWaiting(connector, lease: self.timeout + .seconds(5))
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        request.headers = headers
        if let body { request.body = .bytes(body) }
        request.headers.replaceOrAdd(name: "Accept", value: "application/json")
        if let traceID = logger.traceID {
            request.headers.replaceOrAdd(name: "traceparent", value: TraceContext.traceparent(traceID: traceID))
        }
        let started = ContinuousClock.now
        let result: Result<Answer, any Error>
        do {
            let response = try await self.http.execute(request, timeout: .seconds(Int64(self.timeout.seconds)), logger: logger)
            let body = try await response.body.collect(upTo: self.bodyLimit)
            Timer(label: "portal_sync_request_duration_seconds", dimensions: [("kind", connector.kind.rawValue)])
                .recordNanoseconds((ContinuousClock.now - started).nanoseconds)
            result = .success(Answer(status: response.status, body: body))
        } catch is NIOTooManyBytesError {
            result = .failure(SyncError.tooLarge(self.bodyLimit))
        } catch {
            // A stop (shutdown, a lost lease) is not the department's failure.
            result = .failure(Task.isCancelled || error is CancellationError ? error : SyncError.unreachable(LoggableError.describe(error)))
        }
        await self.gate.release(permit)
        return try result.get()
    }
}

/// Why a sync step failed.
enum SyncError: Error, CustomStringConvertible {
    case refusedURL(String)
    case unreachable(String)
    case tooLarge(Int)
    case status(HTTPResponseStatus, String)
    case malformed(String)

    /// Whether trying again later can help: a transport failure, a 5xx, 408 or 429. Anything else (another 4xx, a
    /// malformed answer, a refused URL) is about this one item, not the department's health.
    var isTransient: Bool {
        switch self {
        case .unreachable, .tooLarge: true
        case .status(let status, _): status.code >= 500 || status.code == 408 || status.code == 429
        case .refusedURL, .malformed: false
        }
    }

    var description: String {
        switch self {
        case .refusedURL(let host): "refused to fetch a URL outside the department's configured roots (host \(host))"
        case .unreachable(let reason): "the department's system did not answer: \(reason)"
        case .tooLarge(let limit): "the department's answer is larger than \(limit) bytes"
        case .status(let status, let url): "the department's system answered \(status.code) for \(url)"
        case .malformed(let reason): "the department's answer is malformed: \(reason)"
        }
    }
}
