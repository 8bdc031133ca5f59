import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Shared

/// Answers 503 for a request that the API has not answered within `deadline`, instead of letting the client wait for
/// as long as the handler hangs.
///
/// Why: PostgresNIO 1.33 writes a query to its channel without a promise, so a query given to a connection whose
/// channel closed a moment before (PostgreSQL restarting) is never answered, and its caller waits forever; the
/// fault run saw this (docs/RELIABILITY.md). The handler is then cancelled and abandoned, as ``withDeadline`` does;
/// it holds no more than a closed connection. The same happens at once when the server cancels the request (its
/// shutdown), so a hung handler cannot hold the shutdown up either.
///
/// A handler may be abandoned only once the request's body has been read: the server reads whatever of a body the
/// handler left once the answer is written, from the same connection an abandoned handler would still be reading.
/// So a body of at most ``JSONFields/bodyLimit`` bytes, as its `Content-Length` declares (every JSON request but a
/// batch), is read here first, and the handler gets it from memory: no more memory than the handler would spend,
/// though it is read before any authentication. A larger or chunked body (an upload, a batch) is left to stream to
/// its handler without a deadline: those requests are bounded by the client's or the proxy's timeout. The deadline
/// covers the handler, not the reading of the body nor the writing of a streamed response.
struct ResponseDeadlineResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == APIRequestContext {
    typealias Context = APIRequestContext

    let inner: Inner
    /// `PORTAL_HTTP_RESPONSE_SECONDS`.
    let deadline: Duration

    func respond(to request: Request, context: Context) async throws -> Response {
        var read = request
        switch Self.body(of: request) {
        case .none: break
        case .buffered: _ = try await read.collectBody(upTo: JSONBody.bodyLimit)
        case .streamed: return try await self.inner.respond(to: request, context: context)
        }
        let (inner, request) = (self.inner, read)
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

    /// What the request's head says of its body.
    enum Body: Equatable {
        /// No `Content-Length` or `Transfer-Encoding`, or a length of 0.
        case none
        /// A `Content-Length` of at most ``JSONFields/bodyLimit``: read before the handler runs.
        case buffered
        /// Longer, or of a length not declared: streamed to the handler.
        case streamed
    }

    static func body(of request: Request) -> Body {
        if request.headers[.transferEncoding] != nil { return .streamed }
        guard let declared = request.headers[.contentLength] else { return .none }
        guard let length = Int(declared.trimmingCharacters(in: .whitespaces)) else { return .streamed }
        if length == 0 { return .none }
        return length <= JSONBody.bodyLimit ? .buffered : .streamed
    }
}
