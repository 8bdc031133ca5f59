import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Shared

/// Login and logout for residents and businesses, as a backend-for-frontend: the browser only ever holds an opaque
/// session cookie; the broker's tokens stay on the server.
///
/// - `GET /auth/login?returnTo=/path`: starts the authorization code flow with PKCE (S256), `state` and `nonce`.
/// - `GET /auth/callback`: checks `state` against the browser's login cookie, exchanges the code, verifies the ID
///   token, starts a session and sends the resident back to `returnTo`.
/// - `POST /auth/logout`: ends the session on the server.
/// - `GET` and `POST /auth/dev-login`: only with `PORTAL_DEV_LOGIN=true`.
struct AuthController {
    let identity: IdentityServices

    func register(on routes: APIRoutes) {
        routes.open(.get, "/auth/login", self.login)
        routes.open(.get, "/auth/callback", self.callback)
        routes.resident(.post, "/auth/logout", self.logout)
        if self.identity.devLogin {
            routes.open(.get, "/auth/dev-login", self.devLoginForm)
            routes.open(.post, "/auth/dev-login", self.devLogin)
        }
    }

    // MARK: Broker login

    func login(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await self.identity.limits.login(request, context: context)
        guard let oidc = self.identity.oidc else {
            throw Problem(status: .serviceUnavailable, code: "login-unavailable", detail: "No login broker is configured.")
        }
        let returnTo = try Self.returnTo(request.uri.queryParameters["returnTo"].map(String.init))
        let state = SecretToken.generate()
        let nonce = SecretToken.generate()
        let codeVerifier = SecretToken.generate()
        let location: String
        do {
            location = try await oidc.authorizationURL(state: state, nonce: nonce, codeVerifier: codeVerifier)
        } catch let error as OIDCError {
            throw Self.brokerProblem(error)
        }
        try await self.identity.sessions.beginLogin(
            state: state,
            nonce: nonce,
            codeVerifier: codeVerifier,
            returnTo: returnTo,
            client: self.identity.database,
            logger: context.logger
        )
        var response = Response(status: .found, headers: [.location: location])
        response.setCookie(Self.cookie(IdentityServices.loginCookie, state, maxAge: 600))
        return response
    }

    func callback(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await self.identity.limits.login(request, context: context)
        guard let oidc = self.identity.oidc else {
            throw Problem(status: .serviceUnavailable, code: "login-unavailable", detail: "No login broker is configured.")
        }
        let query = request.uri.queryParameters
        guard let state = query["state"].map(String.init), !state.isEmpty else {
            throw self.refuse("missing state", context: context, status: .badRequest)
        }
        guard let bound = request.cookies[IdentityServices.loginCookie]?.value, SecretToken.constantTimeEquals(bound, state) else {
            throw self.refuse("the state does not belong to this browser", context: context, status: .badRequest)
        }
        guard
            let attempt = try await self.identity.sessions.finishLogin(state: state, client: self.identity.database, logger: context.logger)
        else {
            throw self.refuse("the state is unknown, expired or was used before", context: context, status: .badRequest)
        }
        if let error = query["error"] {
            // The resident cancelled at the broker, or the broker could not log them in: back to where they were.
            context.logger.info("login ended at the broker", metadata: ["portal.oidc.error": "\(Self.safeErrorCode(error))"])
            var response = Response(status: .seeOther, headers: [.location: attempt.returnTo])
            response.setCookie(Self.expired(IdentityServices.loginCookie))
            return response
        }
        guard let code = query["code"].map(String.init), !code.isEmpty else {
            throw self.refuse("the callback carries no code", context: context, status: .badRequest)
        }
        let verified: VerifiedIdentity
        do {
            verified = try await oidc.completeLogin(code: code, codeVerifier: attempt.codeVerifier, nonce: attempt.nonce)
        } catch let error as OIDCError {
            switch error {
            case .brokerUnavailable, .tokenRequestRefused:
                self.identity.security.record("login-failed", reason: error.description, traceID: context.traceID)
                self.identity.security.countLogin(method: "oidc", succeeded: false)
                throw Self.brokerProblem(error)
            default:
                throw self.refuse(error.description, context: context, status: .unauthorized)
            }
        }
        let (session, _) = try await self.startSession(for: verified.subject, method: "oidc", acr: verified.acr, context: context)
        var response = Response(status: .seeOther, headers: [.location: attempt.returnTo])
        response.setCookie(Self.expired(IdentityServices.loginCookie))
        response.setCookie(Self.cookie(IdentityServices.sessionCookie, session.token, maxAge: nil))
        return response
    }

    func logout(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        if case .session(let token, _) = context.caller.credential {
            try await self.identity.database.transaction(logger: context.logger) { connection in
                _ = try await self.identity.sessions.end(token: token, on: connection, logger: context.logger)
                try await self.identity.audit.record(
                    AuditRecord(
                        activity: "resident.logout",
                        actor: .resident(context.resident.id),
                        subject: context.resident.subject,
                        objectType: "session",
                        traceID: context.traceID
                    ),
                    on: connection,
                    logger: context.logger
                )
            }
        }
        var response = Response(status: .noContent)
        response.setCookie(Self.expired(IdentityServices.sessionCookie))
        return response
    }

    // MARK: Development login

    func devLoginForm(_ request: Request, context: APIRequestContext) async throws -> Response {
        let returnTo = try Self.returnTo(request.uri.queryParameters["returnTo"].map(String.init))
        let html = """
            <!doctype html>
            <html lang="en">
            <head><meta charset="utf-8"><title>Development login</title></head>
            <body>
            <h1>Development login</h1>
            <p><strong>For local runs and tests only.</strong> Anyone can log in here as anyone.</p>
            <form method="post" action="/auth/dev-login">
            <input type="hidden" name="returnTo" value="\(Self.htmlEscape(returnTo))">
            <p><label>BSN <input name="bsn" inputmode="numeric" autocomplete="off"></label></p>
            <p><label>or KvK number <input name="kvk" inputmode="numeric" autocomplete="off"></label></p>
            <p><button type="submit">Log in</button></p>
            </form>
            </body>
            </html>
            """
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8",
                .contentSecurityPolicy: "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            ],
            body: .init(byteBuffer: ByteBuffer(string: html))
        )
    }

    func devLogin(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await self.identity.limits.login(request, context: context)
        let type = MediaRange.type(of: request.headers[.contentType])
        let isForm = type == "application/x-www-form-urlencoded"
        var body: JSONBody
        if isForm {
            let form = try await request.body.collect(upTo: 16 * 1024)
            var object: [String: JSONValue] = [:]
            for (name, value) in URI("/?" + String(buffer: form)).queryParameters where !value.isEmpty {
                object[String(name)] = .string(String(value))
            }
            body = JSONBody(object: object)
        } else {
            body = try await JSONBody.read(request, context: context, limit: 16 * 1024)
        }
        let subject = body.subjectFields()
        let returnTo = body.string("returnTo", maxLength: 2000)
        var target = "/"
        if let returnTo {
            do { target = try Self.returnTo(returnTo) } catch { body.fail("returnTo", "invalid", "Must be a path on this site.") }
        }
        try body.finish()
        guard let subject else { throw Problem.invalidInput([]) }
        let (session, resident) = try await self.startSession(for: subject, method: "dev", acr: nil, context: context)
        var response: Response
        if isForm {
            response = Response(status: .seeOther, headers: [.location: target])
        } else {
            response = try JSONResponse.make(
                .ok,
                MeController.SessionView(csrfToken: session.csrfToken, expiresAt: session.expiresAt, method: "dev")
            )
        }
        response.setCookie(Self.cookie(IdentityServices.sessionCookie, session.token, maxAge: nil))
        context.logger.notice("development login", metadata: ["portal.resident.id": "\(resident.id)"])
        return response
    }

    // MARK: Helpers

    /// Finds or creates the resident and starts a new session, with its audit record, in one transaction.
    private func startSession(
        for subject: Subject,
        method: String,
        acr: String?,
        context: APIRequestContext
    ) async throws -> (NewSession, Resident) {
        let result = try await self.identity.database.transaction(logger: context.logger) { connection in
            let resident = try await self.identity.residents.upsert(subject, on: connection, logger: context.logger)
            let session = try await self.identity.sessions.start(
                for: resident.id,
                method: method,
                acr: acr,
                on: connection,
                logger: context.logger
            )
            try await self.identity.audit.record(
                AuditRecord(
                    activity: "resident.login",
                    actor: .resident(resident.id),
                    subject: subject,
                    objectType: "session",
                    traceID: context.traceID
                ),
                on: connection,
                logger: context.logger
            )
            return (session, resident)
        }
        self.identity.security.countLogin(method: method, succeeded: true)
        return result
    }

    /// A path on this site to go back to after login; anything else (another host, a scheme, `//host`, a
    /// backslash) is refused, so the login cannot be used as an open redirect.
    static func returnTo(_ value: String?) throws -> String {
        guard let value, !value.isEmpty else { return "/" }
        let isLocalPath =
            value.hasPrefix("/") && !value.hasPrefix("//") && !value.contains("\\") && value.count <= 2000
            && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f }
        guard isLocalPath else {
            throw Problem.invalidInput([FieldError(name: "returnTo", code: "invalid", reason: "Must be a path on this site, like /zaken.")])
        }
        return value
    }

    private func refuse(_ reason: String, context: APIRequestContext, status: HTTPResponse.Status) -> Problem {
        self.identity.security.record("login-refused", reason: reason, traceID: context.traceID)
        self.identity.security.countLogin(method: "oidc", succeeded: false)
        return Problem(status: status, code: "login-refused", detail: "The login was refused: \(reason). Please log in again.")
    }

    private static func brokerProblem(_ error: OIDCError) -> Problem {
        Problem(status: .badGateway, code: "broker-unavailable", detail: "The login service is not available right now (\(error)).")
    }

    /// An OAuth error code is a short token; anything else is not repeated.
    private static func safeErrorCode(_ value: Substring) -> String {
        value.count <= 40 && value.allSatisfy({ $0.isLetter || $0 == "_" }) ? String(value) : "other"
    }

    static func cookie(_ name: String, _ value: String, maxAge: Int?) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: true, httpOnly: true, sameSite: .lax)
    }

    static func expired(_ name: String) -> Cookie {
        Cookie(name: name, value: "", maxAge: 0, path: "/", secure: true, httpOnly: true, sameSite: .lax)
    }

    private static func htmlEscape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
