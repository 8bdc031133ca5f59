import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Shared

/// Answers 503 for a request without a body that the API has not answered within `deadline`, instead of letting
/// the client wait for as long as the handler hangs.
///
/// Why: PostgresNIO 1.33 writes a query to its channel without a promise, so a query given to a connection whose
/// channel closed a moment before (PostgreSQL restarting) is never answered, and its caller waits forever; the
/// fault run saw this (docs/RELIABILITY.md). The handler is then cancelled and abandoned, as ``withDeadline`` does;
/// it holds no more than a closed connection. The same happens at once when the server cancels the request (its
/// shutdown), so a hung handler cannot hold the shutdown up either.
///
/// Only requests without a body: the server reads whatever of a body the handler left once the answer is written,
/// and an abandoned handler may still be reading it. Those requests are bounded by the client's or the proxy's
/// timeout. The deadline covers the handler, not the writing of a streamed response body.
struct ResponseDeadlineResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == APIRequestContext {
    typealias Context = APIRequestContext

    let inner: Inner
    /// `PORTAL_HTTP_RESPONSE_SECONDS`.
    let deadline: Duration

    func respond(to request: Request, context: Context) async throws -> Response {
        guard !Self.hasBody(request) else { return try await self.inner.respond(to: request, context: context) }
        let inner = self.inner
        do {
            return try await withDeadline(self.deadline, abandonOnCancellation: true) {
                try await inner.respond(to: request, context: context)
            }
        } catch is DeadlineExceeded {
            Counter(label: "portal_http_requests_abandoned_total").increment()
            let traceID = request.headers[.traceparent].flatMap(TraceContext.traceID(fromTraceparent:)) ?? context.traceID
            var logger = context.logger
            logger[metadataKey: TraceContext.metadataKey] = "\(traceID)"
            logger.error(
                "no answer in time: the request is given up and answered 503",
                metadata: ["portal.http.method": "\(request.method)", "portal.http.path": "\(request.uri.path)"])
            let seconds = Int(self.deadline.seconds.rounded(.up))
            var response = Problem(
                status: .serviceUnavailable, code: "no-answer-in-time",
                detail: "No answer within \(seconds) s; try again in a moment.", headers: [.retryAfter: "5"]
            ).response(traceID: traceID)
            APIConventionsMiddleware.addHeaders(to: &response)
            return response
        }
    }

    /// Whether the request says it has a body: a `Content-Length` other than 0, or a `Transfer-Encoding`.
    static func hasBody(_ request: Request) -> Bool {
        if request.headers[.transferEncoding] != nil { return true }
        guard let length = request.headers[.contentLength] else { return false }
        return length.trimmingCharacters(in: .whitespaces) != "0"
    }
}
