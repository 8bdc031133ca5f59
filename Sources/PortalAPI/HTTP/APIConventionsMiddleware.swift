import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Shared

/// The NL API Design Rules conventions, applied to every response in one place:
///
/// - an `API-Version` header;
/// - the security headers (`Cache-Control: no-store`, HSTS, `nosniff`, frame denial, a strict content security
///   policy, no referrer), unless a handler set its own value;
/// - `application/problem+json` for every error, including Hummingbird's own (an unknown route is a 404 problem),
///   and a 500 that shows the client nothing but the trace id while the log gets the real error;
/// - a 503 `database-unavailable` with `Retry-After` when PostgreSQL could not be used at all (``DatabaseOutage``:
///   restarting, out of reach), since nothing was done and the request may be tried again;
/// - 405 with `Allow` for a method that no route has at a path that exists (the router alone would say 404);
/// - 406 when the client accepts nothing we can send for an `/api/` endpoint;
/// - a 400 for a token in the query string (tokens end up in proxy logs and browser history).
///
/// It also picks up the trace id from `traceparent` and puts it on the request's logger.
struct APIConventionsMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    /// The version of the API contract, as in `openapi.json`'s `info.version`.
    static let apiVersion = "1.0.0"

    /// Query parameters that carry a credential in some clients; refused everywhere.
    static let credentialParameters: Set<String> = ["access_token", "id_token", "api_key", "apikey", "token"]

    /// The registered routes, for the 405's `Allow`.
    let catalog: RouteCatalog

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let traceparent = request.headers[.traceparent], let traceID = TraceContext.traceID(fromTraceparent: traceparent) {
            context.traceID = traceID
        }
        context.logger[metadataKey: TraceContext.metadataKey] = "\(context.traceID)"
        var response: Response
        do {
            try Self.checkQuery(request)
            try Self.checkAccept(request)
            response = try await next(request, context)
        } catch let problem as Problem {
            response = problem.response(traceID: context.traceID)
        } catch let error as any HTTPResponseError {
            let allowed = error.status == .notFound ? self.catalog.methods(at: request.uri.path) : []
            if !allowed.isEmpty && !allowed.contains(request.method) {
                let allow = allowed.map(\.rawValue).sorted().joined(separator: ", ")
                response = Problem(
                    status: .methodNotAllowed, code: "method-not-allowed", detail: "This address takes \(allow).", headers: [.allow: allow]
                ).response(traceID: context.traceID)
            } else {
                response = Problem(error).response(traceID: context.traceID)
            }
        } catch let error where DatabaseOutage.caused(error) {
            // PostgreSQL restarting or out of reach: nothing was done, and the client may try again in a moment.
            context.logger.warning(
                "the database could not be used: answered 503", metadata: ["error": "\(LoggableError.describe(error))"])
            response = Problem(
                status: .serviceUnavailable, code: "database-unavailable",
                detail: "The portal cannot reach its database at the moment; nothing was changed. Try again shortly.",
                headers: [.retryAfter: "5"]
            ).response(traceID: context.traceID)
        } catch {
            // The only place an unexpected error is described: in the log, with the trace id the client got.
            context.logger.error("request failed", metadata: ["error": "\(LoggableError.describe(error))"])
            response = Problem.internalError(traceID: context.traceID).response(traceID: context.traceID)
        }
        Self.addHeaders(to: &response)
        return response
    }

    static func checkQuery(_ request: Request) throws {
        let names = request.uri.queryParameters.map { String($0.key).lowercased() }
        if names.contains(where: self.credentialParameters.contains) {
            throw Problem.badRequest(
                "credential-in-query",
                "Credentials are not accepted in the query string; send them in the Authorization header."
            )
        }
    }

    /// JSON endpoints answer 406 when the `Accept` header rules out JSON and problem+json alike.
    static func checkAccept(_ request: Request) throws {
        guard request.uri.path.hasPrefix("/api/"), let accept = request.headers[.accept] else { return }
        if !MediaRange.accepts(accept, any: ["application/json", "application/problem+json"]) {
            throw Problem.notAcceptable("application/json")
        }
    }

    static func addHeaders(to response: inout Response) {
        response.headers[.apiVersion] = self.apiVersion
        let defaults: [(HTTPField.Name, String)] = [
            (.cacheControl, "no-store"),
            (.strictTransportSecurity, "max-age=31536000; includeSubDomains"),
            (.xContentTypeOptions, "nosniff"),
            (.xFrameOptions, "DENY"),
            (.contentSecurityPolicy, "default-src 'none'; frame-ancestors 'none'"),
            (.referrerPolicy, "no-referrer"),
        ]
        for (name, value) in defaults where response.headers[name] == nil {
            response.headers[name] = value
        }
    }
}

/// The media ranges of an `Accept` or the type of a `Content-Type` header, compared without parameters.
enum MediaRange {
    /// Whether an `Accept` header admits any of `types` (exact, `type/*` or `*/*`, with a non-zero q).
    static func accepts(_ accept: String, any types: [String]) -> Bool {
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let pattern = parts.first, !pattern.isEmpty else { continue }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            guard quality > 0 else { continue }
            for type in types {
                let major = type.split(separator: "/").first.map(String.init) ?? type
                if pattern == "*/*" || pattern == type || pattern == "\(major)/*" { return true }
            }
        }
        return false
    }

    /// The type of a `Content-Type` header without its parameters, lowercased.
    static func type(of contentType: String?) -> String? {
        guard let contentType else { return nil }
        return contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }
}

extension HTTPField.Name {
    static let apiVersion = Self("API-Version")!
    static let xFrameOptions = Self("X-Frame-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xCSRFToken = Self("X-CSRF-Token")!
}
