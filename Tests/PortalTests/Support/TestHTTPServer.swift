import Hummingbird
import Logging

/// Runs `router` on a free loopback port for the duration of `body`, which gets the port; the simulated outside
/// parties (the OIDC broker, a department's system) are served this way.
func withTestServer<T: Sendable>(
    _ router: Router<BasicRequestContext>, logger: Logger, _ body: (Int) async throws -> T
) async throws -> T {
    let ports = AsyncStream.makeStream(of: Int.self)
    let application = Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            ports.continuation.yield(channel.localAddress?.port ?? 0)
            ports.continuation.finish()
        },
        logger: logger
    )
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await application.runService(gracefulShutdownSignals: []) }
        defer { group.cancelAll() }
        var iterator = ports.stream.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw TestSetupError("a test server did not start") }
        return try await body(port)
    }
}
