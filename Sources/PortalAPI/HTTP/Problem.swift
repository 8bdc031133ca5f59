import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Shared

/// Every error the API answers with, as `application/problem+json` (RFC 9457, as the NL API Design Rules ask).
///
/// Handlers throw these; the conventions middleware renders anything else as a 500 whose detail is only the trace
/// id, and logs the real error. So internal detail never reaches a client.
struct Problem: Error, Sendable {
    let status: HTTPResponse.Status
    /// Stable and machine-readable, e.g. `invalid-input`, `not-found`, `unauthorized`.
    let code: String
    let detail: String
    var invalidParams: [FieldError] = []
    var headers: HTTPFields = [:]

    static func invalidInput(_ errors: [FieldError]) -> Problem {
        let count = errors.count
        return Problem(
            status: .badRequest,
            code: "invalid-input",
            detail: count == 1 ? "One field is invalid: see invalidParams." : "\(count) fields are invalid: see invalidParams.",
            invalidParams: errors
        )
    }

    static func badRequest(_ code: String, _ detail: String) -> Problem {
        Problem(status: .badRequest, code: code, detail: detail)
    }

    /// No or no valid credentials. The detail stays generic: it must not help anyone guess what was wrong.
    static func unauthorized(_ detail: String = "Log in, or present a valid credential for this endpoint.") -> Problem {
        Problem(status: .unauthorized, code: "unauthorized", detail: detail, headers: [.wwwAuthenticate: "Bearer"])
    }

    static let notFound = Problem(status: .notFound, code: "not-found", detail: "There is nothing at this address.")

    static func notAcceptable(_ offered: String) -> Problem {
        Problem(status: .notAcceptable, code: "not-acceptable", detail: "This endpoint can only answer with \(offered).")
    }

    static func unsupportedMediaType(_ accepted: String) -> Problem {
        Problem(status: .unsupportedMediaType, code: "unsupported-media-type", detail: "Send the body as \(accepted).")
    }

    /// Over a rate limit: `Retry-After` says in how many seconds (rounded up) the window ends.
    static func tooManyRequests(retryAfter: Duration) -> Problem {
        let seconds = max(1, Int(retryAfter.seconds.rounded(.up)))
        return Problem(
            status: .tooManyRequests, code: "rate-limited", detail: "Too many requests: try again in \(seconds) s.",
            headers: [.retryAfter: "\(seconds)"])
    }

    static func internalError(traceID: String) -> Problem {
        Problem(
            status: .internalServerError,
            code: "internal-error",
            detail: "Something went wrong on our side. Quote trace id \(traceID) when you report it."
        )
    }

    /// The problem+json body.
    func body(traceID: String) -> ByteBuffer {
        struct Body: Encodable {
            let type = "about:blank"
            let title: String
            let status: Int
            let detail: String
            let code: String
            let traceId: String
            let invalidParams: [FieldError]?
        }
        let body = Body(
            title: self.status.reasonPhrase,
            status: self.status.code,
            detail: self.detail,
            code: self.code,
            traceId: traceID,
            invalidParams: self.invalidParams.isEmpty ? nil : self.invalidParams
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(body) else { return ByteBuffer(string: #"{"status":500}"#) }
        return ByteBuffer(bytes: data)
    }

    func response(traceID: String) -> Response {
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        // RFC 9110: a 401 names the scheme that would work.
        if self.status == .unauthorized && headers[.wwwAuthenticate] == nil { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: self.body(traceID: traceID)))
    }
}

extension Problem {
    /// The problem for an error Hummingbird itself throws (an unknown route, a body over the limit, ...).
    init(_ error: any HTTPResponseError) {
        switch error.status {
        case .notFound: self = .notFound
        case .contentTooLarge:
            self = Problem(status: .contentTooLarge, code: "too-large", detail: "The request body is larger than this endpoint accepts.")
        default:
            self = Problem(status: error.status, code: "http-\(error.status.code)", detail: error.status.reasonPhrase)
        }
    }
}
