import Foundation
import Hummingbird
import Shared

/// `GET` and `PATCH /api/v1/me`: who is logged in (the BSN masked) and their settings.
struct MeController {
    let identity: IdentityServices

    struct MeView: Encodable {
        struct SubjectView: Encodable {
            /// `bsn` or `kvk`.
            let type: String
            /// A BSN shows only its last three digits.
            let number: String
        }

        let subject: SubjectView
        let locale: String
        let email: String?
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
    }

    func show(_ request: Request, context: ResidentRequestContext) async throws -> Response {
        try await self.identity.audit.record(
            self.auditRecord("resident.profile.read", context: context),
            logger: context.logger
        )
        return try JSONResponse.make(.ok, Self.view(context.resident, context.caller))
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
        try body.finish()
        let updated = try await self.identity.database.transaction(logger: context.logger) { connection in
            let resident = try await self.identity.residents.updateSettings(
                of: context.resident.id,
                locale: locale,
                email: email,
                on: connection,
                logger: context.logger
            )
            try await self.identity.audit.record(
                self.auditRecord("resident.profile.update", context: context),
                on: connection,
                logger: context.logger
            )
            return resident
        }
        return try JSONResponse.make(.ok, Self.view(updated, context.caller))
    }

    private func auditRecord(_ activity: String, context: ResidentRequestContext) -> AuditRecord {
        AuditRecord(
            activity: activity,
            actor: .resident(context.resident.id),
            subject: context.resident.subject,
            objectType: "resident",
            objectID: context.resident.id.uuidString.lowercased(),
            traceID: context.traceID
        )
    }

    static func view(_ resident: Resident, _ caller: ResidentCaller) -> MeView {
        var session: SessionView?
        if case .session(_, let active) = caller.credential {
            session = SessionView(csrfToken: active.csrfToken, expiresAt: active.expiresAt, method: active.method)
        }
        return MeView(
            subject: .init(type: resident.subject.kind.rawValue, number: resident.subject.masked),
            locale: resident.locale.rawValue,
            email: resident.email,
            session: session
        )
    }
}
