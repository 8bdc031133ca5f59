import AsyncHTTPClient
import Hummingbird
import Logging
import Shared

/// The API's router, with what tests need to look at besides it.
struct APIRouter {
    let router: Router<APIRequestContext>
    /// Every API endpoint with its access level (the operational endpoints are not in it).
    let catalog: RouteCatalog
    let identity: IdentityServices
    let documents: DocumentServices
}

extension APIRouter {
    /// What the server answers with: the router, with the response deadline around it. Tests run the same.
    func responder(settings: APISettings) -> some HTTPResponder<APIRequestContext> {
        ResponseDeadlineResponder(inner: self.router.buildResponder(), deadline: settings.responseDeadline)
    }
}

/// Builds the router: the conventions middleware around everything, the operational endpoints, then the API.
/// Tests call this with the same arguments as the server.
func buildRouter(_ process: PortalProcess, settings: APISettings, http: HTTPClient = .shared) throws -> APIRouter {
    let router = Router(context: APIRequestContext.self)
    router.add(middleware: MetricsMiddleware())
    let catalog = RouteCatalog()
    router.add(middleware: APIConventionsMiddleware(catalog: catalog))
    OperationalRoutes(migrator: process.migrator, prometheus: process.prometheus).register(on: router)

    var oidcLogger = process.logger
    oidcLogger[metadataKey: "portal.component"] = "oidc"
    let oidc = settings.oidc.map { OIDCClient(settings: $0, http: http, logger: oidcLogger) }
    let identity = IdentityServices(database: process.database, settings: settings, oidc: oidc, logger: process.logger)
    let routes = APIRoutes(router: router, identity: identity, catalog: catalog)
    try OpenAPIController().register(on: routes)
    AuthController(identity: identity).register(on: routes)
    MeController(identity: identity, jobs: process.jobs).register(on: routes)
    DepartmentController(identity: identity).register(on: routes)
    let departmentCases = DepartmentCasesController(identity: identity, jobs: process.jobs)
    departmentCases.register(on: routes)
    DepartmentBatchController(cases: departmentCases).register(on: routes)
    CasesController(identity: identity).register(on: routes)
    ZGWNotificationsController(identity: identity, jobs: process.jobs).register(on: routes)
    let documents = DocumentServices(settings: settings.documents, database: process.database, logger: process.logger)
    DocumentsController(identity: identity, services: documents, jobs: process.jobs).register(on: routes)
    MessagesController(identity: identity, services: documents, jobs: process.jobs).register(on: routes)
    DepartmentMessagesController(identity: identity, services: documents, jobs: process.jobs).register(on: routes)
    return APIRouter(router: router, catalog: routes.catalog, identity: identity, documents: documents)
}

/// Builds the API application. The server starts only when the schema is current.
///
/// Services run in this order and stop in reverse: the database client, the session pruner, then the HTTP server.
func buildApplication(_ process: PortalProcess, settings: APISettings) throws -> some ApplicationProtocol {
    let api = try buildRouter(process, settings: settings)
    var application = Application(
        responder: api.responder(settings: settings),
        server: process.httpServer,
        configuration: process.httpConfiguration,
        services: [
            process.database,
            process.databaseGauges,
            SessionPruner(
                sessions: api.identity.sessions, limiter: api.identity.limits.limiter, database: process.database,
                logger: process.logger),
            UploadJanitor(services: api.documents, logger: process.logger),
        ],
        logger: process.logger
    )
    application.beforeServerStarts {
        try await process.requireCurrentSchema()
        try await settings.documents.checkStorage()
        if settings.documents.clamd == nil {
            process.logger.notice("PORTAL_CLAMD_ADDRESS is not set: uploads are stored without a virus scan")
        }
        if settings.devLogin {
            process.logger.critical(
                "PORTAL_DEV_LOGIN is on: anyone can log in as any BSN at /auth/dev-login. Never run this in production."
            )
        }
        if settings.oidc == nil {
            process.logger.notice("PORTAL_OIDC_ISSUER is not set: no broker login and no bearer tokens")
        }
    }
    return application
}
