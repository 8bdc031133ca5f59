public import Hummingbird
import Logging
import NIOCore
import PostgresNIO
public import Prometheus

/// The endpoints every process serves for its operators: liveness, readiness and Prometheus metrics.
///
/// - `GET /health/live`: 200 while the process runs.
/// - `GET /health/ready`: 200 when PostgreSQL answers within two seconds and the schema is current; 503 otherwise,
///   with the reason (no connection details).
/// - `GET /metrics`: the Prometheus text format.
public struct OperationalRoutes: Sendable {
    private let migrator: Migrator
    private let prometheus: PrometheusCollectorRegistry

    public init(migrator: Migrator, prometheus: PrometheusCollectorRegistry) {
        self.migrator = migrator
        self.prometheus = prometheus
    }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/health/live") { _, _ in
            Self.json(.ok, #"{"status":"up"}"#)
        }
        router.get("/health/ready") { _, context in
            do {
                try await withTimeout(.seconds(2)) { try await self.migrator.requireCurrent() }
                return Self.json(.ok, #"{"status":"ready"}"#)
            } catch let error as SchemaError {
                context.logger.warning("not ready: schema", metadata: ["error": "\(error)"])
                return Self.json(.serviceUnavailable, #"{"status":"unavailable","reason":"the database schema is not current"}"#)
            } catch {
                context.logger.warning("not ready: database", metadata: ["error": "\(LoggableError.describe(error))"])
                return Self.json(.serviceUnavailable, #"{"status":"unavailable","reason":"the database does not answer"}"#)
            }
        }
        router.get("/metrics") { _, _ in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16 * 1024)
            self.prometheus.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer))
            )
        }
    }

    private static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

}
