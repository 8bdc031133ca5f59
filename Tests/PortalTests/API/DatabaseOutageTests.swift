import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// A request that meets PostgreSQL restarting or out of reach is answered 503 with `Retry-After` (it did nothing and
/// may be tried again); one whose statement failed stays a 500. The errors are real ones, from the test server.
@Suite("Database outage")
struct DatabaseOutageTests {
    /// The error of a statement whose session the server ended (57P01, as at a fast shutdown).
    static func terminated() async throws -> any Error {
        let server = try TestDatabase.serverSettings()
        do {
            _ = try await TestDatabase.admin(server) { connection in
                try await connection.query("SELECT pg_terminate_backend(pg_backend_pid())", logger: TestDatabase.logger).collect()
            }
        } catch {
            return error
        }
        throw TestSetupError("the server did not end the session")
    }

    /// The error of a statement that failed on its own (division by zero).
    static func failedStatement() async throws -> any Error {
        do {
            _ = try await TestDatabase.admin(try TestDatabase.serverSettings()) { connection in
                try await connection.query("SELECT 1 / (SELECT 0)", logger: TestDatabase.logger).collect()
            }
        } catch {
            return error
        }
        throw TestSetupError("division by zero succeeded")
    }

    @Test("a session ended by the server, or a server that cannot be reached, is an outage; a failed statement is not")
    func classifies() async throws {
        #expect(DatabaseOutage.caused(try await Self.terminated()))

        // A port with nothing listening: taken, then given back.
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(channel.localAddress?.port)
        try await channel.close()
        let server = try TestDatabase.serverSettings()
        await #expect {
            _ = try await PostgresConnection.connect(
                configuration: .init(
                    host: "127.0.0.1", port: port, username: server.username, password: server.password, database: server.database,
                    tls: .disable),
                id: 1, logger: TestDatabase.logger)
        } throws: { DatabaseOutage.caused($0) }

        #expect(!DatabaseOutage.caused(try await Self.failedStatement()))
        // A statement cancelled by its timeout (57014, in the same class as a shutdown) is not an outage either.
        do {
            _ = try await TestDatabase.admin(server) { connection in
                _ = try await connection.query("SET statement_timeout = 1", logger: TestDatabase.logger).collect()
                return try await connection.query("SELECT pg_sleep(5)", logger: TestDatabase.logger).collect()
            }
            Issue.record("pg_sleep(5) outlived a statement timeout of 1 ms")
        } catch {
            #expect((error as? PSQLError)?.serverInfo?[.sqlState] == "57014")
            #expect(!DatabaseOutage.caused(error))
        }
        #expect(!DatabaseOutage.caused(CancellationError()))
    }

    @Test("the API answers an outage 503 database-unavailable with Retry-After, and a failed statement 500")
    func answers() async throws {
        let (outage, failure) = (try await Self.terminated(), try await Self.failedStatement())
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: APIConventionsMiddleware(catalog: RouteCatalog()))
        router.get("/outage") { _, _ -> Response in throw outage }
        router.get("/failure") { _, _ -> Response in throw failure }
        try await Application(router: router).test(.router) { client in
            let unavailable = try await client.execute(uri: "/outage", method: .get)
            #expect(unavailable.status == .serviceUnavailable)
            #expect(unavailable.headers[.retryAfter] == "5")
            #expect(unavailable.headers[.contentType] == "application/problem+json")
            #expect(try APIHarness.object(unavailable)["code"] == .string("database-unavailable"))
            let failed = try await client.execute(uri: "/failure", method: .get)
            #expect(failed.status == .internalServerError)
            #expect(failed.headers[.retryAfter] == nil)
        }
    }
}
