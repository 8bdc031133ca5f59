import Foundation
import Hummingbird
import PostgresNIO
import Shared

/// `GET` and `PATCH /api/v1/me`: who is logged in (the BSN masked) and their settings; `POST
/// /api/v1/me/email-verification`: the code that makes a new address the one that receives mail.
///
/// An address given in `PATCH` does not receive mail until the resident types the code mailed to it, so a typing
/// error cannot send a resident's mail to a stranger. Until then the verified address (if any) keeps receiving mail.
struct MeController {
    let identity: IdentityServices
    let jobs: JobQueue

    struct MeView: Encodable {
        struct SubjectView: Encodable {
            /// `bsn` or `kvk`.
            let type: String
            /// A BSN shows only its last three digits.
            let number: String
        }

        let subject: SubjectView
        let locale: String
        /// The verified address that receives mail.
        let email: String?
        /// An address waiting for its code.
        let pendingEmail: String?
        /// Which kinds of mail the resident receives; messages from the municipality always arrive.
        let mailPreferences: [String: Bool]
        /// Only for a browser session: what the frontend needs to make state-changing calls.
        let session: SessionView?
    }

    struct SessionView: Encodable {
        let csrfToken: String
        let expiresAt: Date
        let method: String
    }

    func register(on routes: APIRoutes) {
        routes.resident(.get, "/api/v1/me", self.show)
        routes.resident(.patch, "/api/v1/me", self.update)
        routes.resident(.post, "/api/v1/me/email-verification", self.verify)
    }

    func show(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        let mail = try await self.identity.database.withConnection { connection in
            try await self.identity.residents.mailSettings(of: context.resident.id, on: connection, logger: context.logger)
        }
        try await self.identity.audit.record(
            self.auditRecord("resident.profile.read", context: context),
            logger: context.logger
        )
        return try JSONResponse.make(.ok, Self.view(context.resident, mail, context.caller))
    }

    func update(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        var body = try await JSONBody.read(
            request,
            context: context,
            limit: 16 * 1024,
            mediaTypes: ["application/json", "application/merge-patch+json"]
        )
        let locale = body.choice("locale", Resident.Locale.self)
        let email = body.nullableEmail("email")
        let preferences = body.nested("mailPreferences") { preferences -> [MailPreference: Bool] in
            var chosen: [MailPreference: Bool] = [:]
            for preference in MailPreference.allCases {
                if let on = preferences.bool(preference.rawValue) { chosen[preference] = on }
            }
            if preferences.contains("message"), preferences.bool("message") == false {
                preferences.fail("message", "invalid", "Messages from the municipality cannot be switched off: they may ask you to act.")
            }
            return chosen
        }
        try body.finish()
        let residentID = context.resident.id
        let (updated, mail) = try await self.identity.database.transaction(logger: context.logger) { connection in
            let resident = try await self.identity.residents.updateSettings(
                of: residentID, locale: locale, on: connection, logger: context.logger)
            if let preferences {
                try await self.identity.residents.setMailPreferences(of: residentID, preferences, on: connection, logger: context.logger)
            }
            if let email {
                switch try await self.identity.residents.requestVerification(
                    of: residentID, address: email, on: connection, logger: context.logger)
                {
                case .code(let code):
                    // The code goes out in this transaction or not at all.
                    _ = try await self.jobs.enqueue(
                        try NewJob(
                            VerificationMailJob.kind, payload: VerificationMailJob(resident: residentID, code: code),
                            traceID: context.traceID),
                        on: connection
                    )
                case .removed:
                    break
                case .tooSoon(let wait):
                    // Nothing of this request is kept: every change in it waits for the next try.
                    throw Problem(
                        status: .tooManyRequests, code: "too-soon",
                        detail: "A code was sent less than a minute ago. Check your mail, or ask again in \(Int(wait.seconds)) seconds.",
                        headers: [.retryAfter: "\(Int(wait.seconds))"])
                }
            }
            try await self.identity.audit.record(
                self.auditRecord("resident.profile.update", context: context),
                on: connection,
                logger: context.logger
            )
            let mail = try await self.identity.residents.mailSettings(of: residentID, on: connection, logger: context.logger)
            return (resident, mail)
        }
        return try JSONResponse.make(.ok, Self.view(updated, mail, context.caller))
    }

    func verify(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context, limit: 1024)
        let code = body.string("code", required: true, maxLength: 20)
        try body.finish()
        guard let code else { return Response(status: .badRequest) }  // finish() has thrown for a missing code
        let residentID = context.resident.id
        let (result, mail) = try await self.identity.database.transaction(logger: context.logger) { connection in
            let result = try await self.identity.residents.verify(residentID, code: code, on: connection, logger: context.logger)
            try await self.identity.audit.record(
                self.auditRecord("resident.email.verify", context: context, result: result == .verified ? .success : .refused),
                on: connection,
                logger: context.logger
            )
            return (result, try await self.identity.residents.mailSettings(of: residentID, on: connection, logger: context.logger))
        }
        switch result {
        case .verified:
            var resident = context.resident
            resident.email = mail.email
            return try JSONResponse.make(.ok, Self.view(resident, mail, context.caller))
        case .wrongCode(let left):
            throw Problem.invalidInput([
                FieldError(name: "code", code: "invalid", reason: "This is not the code we sent. \(left) tries left.")
            ])
        case .noCode:
            throw Problem(
                status: .conflict, code: "no-code",
                detail: "No code is waiting: it expired, was tried too often, or none was asked for. Set the address again for a new code.")
        }
    }

    private func auditRecord(_ activity: String, context: ResidentRequestContext, result: AuditRecord.Result = .success) -> AuditRecord {
        AuditRecord(
            activity: activity,
            actor: .resident(context.resident.id),
            subject: context.resident.subject,
            objectType: "resident",
            objectID: context.resident.id.uuidString.lowercased(),
            result: result,
            traceID: context.traceID
        )
    }

    static func view(_ resident: Resident, _ mail: ResidentMailSettings, _ caller: ResidentCaller) -> MeView {
        var session: SessionView?
        if case .session(_, let active) = caller.credential {
            session = SessionView(csrfToken: active.csrfToken, expiresAt: active.expiresAt, method: active.method)
        }
        var preferences: [String: Bool] = [:]
        for preference in MailPreference.allCases { preferences[preference.rawValue] = !mail.switchedOff.contains(preference) }
        return MeView(
            subject: .init(type: resident.subject.kind.rawValue, number: resident.subject.masked),
            locale: resident.locale.rawValue,
            email: mail.email,
            pendingEmail: mail.pendingEmail,
            mailPreferences: preferences,
            session: session
        )
    }
}
