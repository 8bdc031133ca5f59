import Hummingbird
import Shared

/// Builds the API application. Tests call this same builder.
///
/// Services run in this order and stop in reverse: the database client, then the HTTP server. The server starts
/// only when the schema is current.
func buildApplication(_ process: PortalProcess) -> some ApplicationProtocol {
    let router = process.makeRouter()
    router.middlewares.add(MetricsMiddleware())
    var application = Application(
        router: router,
        configuration: process.httpConfiguration,
        services: [process.database],
        logger: process.logger
    )
    application.beforeServerStarts { try await process.requireCurrentSchema() }
    return application
}
