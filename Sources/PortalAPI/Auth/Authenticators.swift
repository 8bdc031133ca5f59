import HTTPTypes
import Hummingbird
import Logging
import Shared

/// Lets through only residents and businesses: a browser session (cookie, with the CSRF token on state-changing
/// requests) or a broker access token (`Authorization: Bearer`). Anything else is a 401 and a security event.
struct ResidentAuthenticator: RouterMiddleware {
    typealias Context = APIRequestContext
    let identity: IdentityServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let authorization = request.headers[.authorization] {
            let token = try self.bearerToken(authorization, request: request, context: context)
            if token.hasPrefix(DepartmentStore.keyPrefix) {
                throw self.refuse("wrong-credential", "a department key on a resident endpoint", request, context)
            }
            guard let oidc = self.identity.oidc else {
                throw self.refuse("bearer-refused", "no broker is configured for bearer tokens", request, context)
            }
            let verified: VerifiedIdentity
            do {
                verified = try await oidc.verifyAccessToken(token)
            } catch let error as OIDCError {
                if case .brokerUnavailable = error {
                    // Not the caller's fault: a 503, so the frontend does not log the resident out.
                    context.logger.warning("cannot verify a bearer token", metadata: ["error": "\(error)"])
                    throw Problem(
                        status: .serviceUnavailable, code: "broker-unavailable", detail: "Tokens cannot be checked right now; try again.")
                }
                throw self.refuse("bearer-refused", error.description, request, context)
            }
            let resident = try await self.identity.residents.findOrCreate(
                verified.subject,
                client: self.identity.database,
                logger: context.logger
            )
            context.caller = .resident(ResidentCaller(resident: resident, credential: .bearerToken))
        } else if let token = request.cookies[IdentityServices.sessionCookie]?.value {
            guard
                let session = try await self.identity.sessions.resume(token: token, client: self.identity.database, logger: context.logger)
            else {
                throw self.refuse("session-refused", "an unknown or expired session", request, context)
            }
            if !Self.isSafe(request.method) {
                guard let presented = request.headers[.xCSRFToken], SecretToken.constantTimeEquals(presented, session.csrfToken) else {
                    self.identity.security.record(
                        "csrf-refused", reason: "missing or wrong X-CSRF-Token", traceID: context.traceID, request: request)
                    throw Problem(
                        status: .forbidden,
                        code: "csrf",
                        detail: "State-changing requests from a browser session must carry the session's X-CSRF-Token header."
                    )
                }
            }
            context.caller = .resident(ResidentCaller(resident: session.resident, credential: .session(token: token, session)))
        } else {
            throw Problem.unauthorized()
        }
        return try await next(request, context)
    }

    static func isSafe(_ method: HTTPRequest.Method) -> Bool {
        [.get, .head, .options].contains(method)
    }

    private func bearerToken(_ authorization: String, request: Request, context: Context) throws -> String {
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else {
            throw self.refuse("bad-authorization", "an Authorization header that is not a bearer token", request, context)
        }
        return String(parts[1])
    }

    private func refuse(_ event: String, _ reason: String, _ request: Request, _ context: Context) -> Problem {
        self.identity.security.record(event, reason: reason, traceID: context.traceID, request: request)
        return Problem.unauthorized()
    }
}

/// Lets through only departments, by their API key (`Authorization: Bearer portal_dk_...`).
struct DepartmentAuthenticator: RouterMiddleware {
    typealias Context = APIRequestContext
    let identity: IdentityServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let authorization = request.headers[.authorization] else {
            if request.cookies[IdentityServices.sessionCookie] != nil {
                self.identity.security.record(
                    "wrong-credential", reason: "a resident session on a department endpoint", traceID: context.traceID, request: request)
            }
            throw Problem.unauthorized()
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer",
            let department = try await self.identity.departments.authenticate(
                apiKey: String(parts[1]),
                client: self.identity.database,
                logger: context.logger
            )
        else {
            self.identity.security.record(
                "department-refused",
                reason: "no valid department key",
                traceID: context.traceID,
                request: request
            )
            throw Problem.unauthorized()
        }
        var context = context
        context.caller = .department(department)
        context.logger[metadataKey: "portal.department.id"] = "\(department.id)"
        try await self.identity.limits.department(department, request, context: context)
        return try await next(request, context)
    }
}

/// Lets through only Open Notificaties delivering to a ZGW department's abonnement: the `Authorization` value is
/// the abonnement's `auth`, which `department connect-zgw` issued (`Bearer portal_zgw_...`).
struct ZGWSubscriptionAuthenticator: RouterMiddleware {
    typealias Context = APIRequestContext
    let identity: IdentityServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let authorization = request.headers[.authorization] else { throw Problem.unauthorized() }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        let credential = parts.count == 2 && ["bearer", "token"].contains(parts[0].lowercased()) ? String(parts[1]) : authorization
        guard
            let department = try await ConnectorStore().department(
                callbackCredential: credential, client: self.identity.database, logger: context.logger)
        else {
            self.identity.security.record(
                "subscription-refused", reason: "no valid ZGW subscription credential", traceID: context.traceID, request: request)
            throw Problem.unauthorized()
        }
        var context = context
        context.caller = .department(department)
        context.logger[metadataKey: "portal.department.id"] = "\(department.id)"
        try await self.identity.limits.department(department, request, context: context)
        return try await next(request, context)
    }
}
