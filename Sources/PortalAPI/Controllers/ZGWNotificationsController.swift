import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Shared

/// `POST /api/v1/zgw/notifications`: the callback of a ZGW department's Open Notificaties abonnement (docs/SYNC.md).
///
/// It checks the subscription credential (the authenticator) and the body, starts a `sync.zgw.status` job for a new
/// status with a unique key built from the resource URL and the action, and answers 204 at once: the sync worker
/// fetches the rest. A notification delivered twice (Open Notificaties delivers at least once) meets the unique key
/// while its job waits, and is a replay in the case store after that. Open Notificaties' test message (`kanaal`
/// `test`) and notifications about anything but a new status are answered 204 and otherwise ignored.
struct ZGWNotificationsController {
    let identity: IdentityServices
    let jobs: JobQueue

    func register(on routes: APIRoutes) {
        routes.zgwSubscription(.post, "/api/v1/zgw/notifications", self.notification)
    }

    func notification(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context)
        let channel = body.string("kanaal", required: true, maxLength: 50)
        _ = body.url("hoofdObject", required: channel != "test")
        let resource = body.string("resource", required: true, maxLength: 100)
        let resourceURL = body.url("resourceUrl", required: channel != "test")
        let action = body.string("actie", required: true, maxLength: 50)
        let createdAt = body.timestamp("aanmaakdatum", required: true)
        _ = body.nested("kenmerken") { kenmerken -> Bool in
            kenmerken.ignoreUnknownFields()
            return true
        }
        body.ignoreUnknownFields()
        try body.finish()
        let department = context.department.id
        guard channel == "zaken", resource == "status", action == "create", let resourceURL else {
            return Response(status: .noContent)
        }
        let connector = try await self.identity.database.withConnection { connection in
            try await ConnectorStore().find(departmentID: department, on: connection, logger: context.logger)
        }
        guard let zaken = connector?.settings.zaken, SyncURLs.isURL(resourceURL, under: zaken) else {
            self.identity.security.record(
                "url-refused", reason: "a notification's resourceUrl outside the department's Zaken API", traceID: context.traceID,
                request: request)
            throw Problem.invalidInput([
                FieldError(name: "resourceUrl", code: "invalid", reason: "Must be a status of this department's Zaken API.")
            ])
        }
        _ = try await self.jobs.enqueue(
            try SyncJobs.zgwStatusJob(department: department, status: resourceURL, notifiedAt: createdAt, traceID: context.traceID))
        return Response(status: .noContent)
    }
}
