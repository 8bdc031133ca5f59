import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

@testable import Shared

/// A department's own case system, as the sync worker meets it: a change feed (docs/FEED.md) on a free loopback
/// port, which a test fills with changes and can make slow, failing, or answer with garbage. It records every
/// request it gets, so a test can check what the sync worker asked for and with which credentials.
final class DepartmentSimulator: Sendable {
    enum Behaviour: Sendable, Equatable {
        case normal
        /// Every request answers 500.
        case failing
        /// Every request answers 200 with a body that is not JSON.
        case garbage
        /// Every request waits this long before it answers.
        case slow(Duration)
    }

    struct Request: Sendable {
        let path: String
        let query: [String: String]
        let authorization: String?
    }

    private struct State {
        var changes: [String] = []
        var behaviour: Behaviour = .normal
        var requests: [Request] = []
    }

    let port: Int
    private let state = Mutex(State())

    /// The feed's base URL, as an operator configures it.
    var feedURL: URL { URL(string: "http://127.0.0.1:\(self.port)/feed")! }

    private init(port: Int) { self.port = port }

    /// Runs a simulator on a free loopback port for the duration of `body`.
    static func with<T: Sendable>(logger: Logger, _ body: (DepartmentSimulator) async throws -> T) async throws -> T {
        let ports = AsyncStream.makeStream(of: Int.self)
        let holder = Mutex<DepartmentSimulator?>(nil)
        let router = Router()
        router.get("/feed/changes") { request, _ in try await holder.withLock { $0! }.changes(request) }
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
            guard let port = await iterator.next(), port > 0 else { throw TestSetupError("the department simulator did not start") }
            let simulator = DepartmentSimulator(port: port)
            holder.withLock { $0 = simulator }
            return try await body(simulator)
        }
    }

    // MARK: Controls

    /// Appends changes to the feed, each a JSON object as the feed contract shapes it.
    func append(_ changes: [String]) { self.state.withLock { $0.changes += changes } }

    func setBehaviour(_ behaviour: Behaviour) { self.state.withLock { $0.behaviour = behaviour } }

    var requests: [Request] { self.state.withLock { $0.requests } }

    // MARK: The feed

    /// `GET /feed/changes?after=<cursor>&limit=<n>`: the cursor is the number of changes before the page.
    private func changes(_ request: Hummingbird.Request) async throws -> Response {
        let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { $1 })
        let (behaviour, changes) = self.state.withLock { state in
            state.requests.append(Request(path: request.uri.path, query: query, authorization: request.headers[.authorization]))
            return (state.behaviour, state.changes)
        }
        switch behaviour {
        case .normal: break
        case .failing: return Response(status: .internalServerError)
        case .garbage: return Self.json("<html>maintenance</html>")
        case .slow(let delay): try await Task.sleep(for: delay)
        }
        let after = Int(query["after"] ?? "0") ?? 0
        let limit = Int(query["limit"] ?? "100") ?? 100
        let page = changes.dropFirst(after).prefix(limit)
        return Self.json(#"{"changes": [\#(page.joined(separator: ","))], "next": "\#(after + page.count)"}"#)
    }

    private static func json(_ text: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
