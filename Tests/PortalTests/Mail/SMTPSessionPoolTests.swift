import Foundation
import Logging
import ServiceLifecycle
import Shared
import Testing

@Suite("SMTP session pool against a real server")
struct SMTPSessionPoolTests {
    let logger = Logger(label: "test")

    /// Runs `pool` as a service while `body` runs, then shuts it down gracefully, as a process would.
    func running<T: Sendable>(_ pool: SMTPSessionPool, _ body: () async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: [pool], gracefulShutdownSignals: [], logger: self.logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            let result = try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        }
    }

    @Test("thirty messages sent at once go over at most three sessions, and every one arrives")
    func reuse() async throws {
        let server = try await SMTPTestServer(.plain)
        defer { server.stop() }
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, security: .none, heloDomain: "portal.test")
        let pool = SMTPSessionPool(relay: relay, size: 3, logger: self.logger)
        let codes = try await self.running(pool) {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for id in 1...30 {
                    group.addTask { try await pool.send(try SMTPConnectionTests.envelope(id: id)).code }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(codes.count == 30 && codes.allSatisfy { $0 == 250 })
        let messages = try server.messages()
        #expect(messages.count == 30)
        let ids = Set(
            messages.compactMap { message in
                message.message.range(of: "<status-event-[0-9]+@portal.test>", options: .regularExpression).map {
                    String(message.message[$0])
                }
            })
        #expect(ids.count == 30)
        let sessions = Set(messages.compactMap { $0.envelope["peer"]?.stringValue })
        #expect((1...3).contains(sessions.count), "\(sessions.count) sessions")
    }

    @Test("with the relay unreachable, every message fails promptly as transient, none hangs")
    func unreachable() async throws {
        let port = try freePort()  // nothing listens here
        let relay = SMTPRelay(host: "127.0.0.1", port: port, security: .none, heloDomain: "portal.test", connectTimeout: .seconds(2))
        let pool = SMTPSessionPool(relay: relay, size: 2, logger: self.logger)
        let kinds = try await self.running(pool) {
            try await withThrowingTaskGroup(of: SMTPFailure.Kind?.self) { group in
                for id in 1...5 {
                    group.addTask {
                        do {
                            _ = try await pool.send(try SMTPConnectionTests.envelope(id: id))
                            return nil
                        } catch let failure as SMTPFailure {
                            return failure.kind
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(kinds == Array(repeating: .transient, count: 5))
    }

    @Test("a session without work closes itself with QUIT after the idle timeout; the next message opens a new one")
    func idleSessionsClose() async throws {
        let server = try await SMTPTestServer(.plain)
        defer { server.stop() }
        let relay = SMTPRelay(host: "127.0.0.1", port: server.port, security: .none, heloDomain: "portal.test")
        let pool = SMTPSessionPool(relay: relay, size: 1, idleTimeout: .milliseconds(200), logger: self.logger)
        try await self.running(pool) {
            _ = try await pool.send(try SMTPConnectionTests.envelope(id: 1))
            // Waiting for the server to see the QUIT, with a deadline far above the idle timeout.
            let deadline = ContinuousClock.now + .seconds(10)
            while server.quits().isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(server.quits().count == 1)
            _ = try await pool.send(try SMTPConnectionTests.envelope(id: 2))
        }
        let peers = try server.messages().compactMap { $0.envelope["peer"]?.stringValue }
        #expect(peers.count == 2 && Set(peers).count == 2)
    }
}
