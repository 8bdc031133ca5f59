public import Logging
public import ServiceLifecycle
import Synchronization

/// Sessions to one relay, shared by every sender in a process, so throughput is not bound by connection set-up and
/// TLS handshakes: at most `size` sessions, each carrying message after message. A session is opened when a message
/// waits and none is free, and closed after `idleTimeout` without work (well before relays drop idle clients).
///
/// Run it as a service; ``send(_:)`` works while it runs. A message that cannot be sent because the relay cannot be
/// reached fails with a transient ``SMTPFailure``, so its job is retried later; nothing waits for the relay forever.
public final class SMTPSessionPool: Service, Sendable {
    private typealias Reply = CheckedContinuation<SMTPReply, any Error>
    private typealias Waiter = CheckedContinuation<Request?, Never>

    private struct Request: Sendable {
        let envelope: SMTPEnvelope
        let reply: Reply
    }

    private struct State {
        var queue: [Request] = []
        /// Sessions waiting for work, by id.
        var idle: [(id: Int, waiter: Waiter)] = []
        var open = 0
        var nextID = 0
        var closed = false
    }

    private let relay: SMTPRelay
    private let size: Int
    private let idleTimeout: Duration
    private let logger: Logger
    private let state = Mutex(State())
    private let starts = AsyncStream<Void>.makeStream()

    public init(relay: SMTPRelay, size: Int, idleTimeout: Duration = .seconds(30), logger: Logger) {
        precondition(size > 0, "a pool holds at least one session")
        self.relay = relay
        self.size = size
        self.idleTimeout = idleTimeout
        self.logger = logger
    }

    /// Sends one message on a pooled session; returns the relay's final reply or throws its ``SMTPFailure``.
    public func send(_ envelope: SMTPEnvelope) async throws -> SMTPReply {
        try await withCheckedThrowingContinuation { (reply: Reply) in
            let request = Request(envelope: envelope, reply: reply)
            enum Next {
                case give(Waiter)
                case start
                case wait
                case refuse
            }
            let next = self.state.withLock { state -> Next in
                if state.closed { return .refuse }
                if let idle = state.idle.popLast() { return .give(idle.waiter) }
                state.queue.append(request)
                guard state.open < self.size else { return .wait }
                state.open += 1
                return .start
            }
            switch next {
            case .give(let waiter): waiter.resume(returning: request)
            case .start: self.starts.continuation.yield()
            case .wait: break
            case .refuse: reply.resume(throwing: SMTPFailure(.transient, "the mail sender is shutting down"))
            }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await _ in self.starts.stream {
                    group.addTask { await self.session() }
                }
            }
        } onGracefulShutdown: {
            self.close()
        }
    }

    /// One session: opened, then fed requests until it idles out, breaks, or the pool closes.
    private func session() async {
        var inHand: Request?
        do {
            try await SMTPConnection.withConnection(to: self.relay, logger: self.logger) { connection in
                while let request = await self.nextRequest() {
                    inHand = request
                    do {
                        let reply = try await connection.send(request.envelope)
                        inHand = nil
                        request.reply.resume(returning: reply)
                    } catch let failure as SMTPFailure where connection.isReady {
                        // The relay refused this message; the session goes on.
                        inHand = nil
                        request.reply.resume(throwing: failure)
                    }
                }
            }
        } catch {
            // Could not open, or broke: the message in hand fails (transient: it is retried later); when the session
            // never opened, one queued message fails in its place, so an unreachable relay fails messages one by
            // one instead of holding them all.
            let victim = inHand ?? self.state.withLock { state in state.queue.isEmpty ? nil : state.queue.removeFirst() }
            let failure = (error as? SMTPFailure) ?? SMTPFailure(.transient, "the session with the relay failed (\(error))")
            victim?.reply.resume(throwing: failure)
            self.logger.notice(
                "SMTP session ended",
                metadata: ["portal.smtp.relay": "\(self.relay)", "error": "\(MailAddress.redacted(failure.description))"])
        }
        // Another session takes over the queue if it is not empty.
        let restart = self.state.withLock { state -> Bool in
            state.open -= 1
            guard !state.closed, !state.queue.isEmpty, state.open < self.size else { return false }
            state.open += 1
            return true
        }
        if restart { self.starts.continuation.yield() }
    }

    /// The next message for a session, or nil after `idleTimeout` without one, or when the pool closes.
    private func nextRequest() async -> Request? {
        let id = self.state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskGroup(of: Void.self) { timer in
            timer.addTask {
                // Only expires the wait; the request (or nil) always comes through the waiter below.
                guard (try? await Task.sleep(for: self.idleTimeout)) != nil else { return }
                let expired = self.state.withLock { state -> Waiter? in
                    guard let index = state.idle.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.idle.remove(at: index).waiter
                }
                expired?.resume(returning: nil)
            }
            let request = await withCheckedContinuation { (waiter: Waiter) in
                let now = self.state.withLock { state -> Request?? in
                    if !state.queue.isEmpty { return .some(state.queue.removeFirst()) }
                    if state.closed { return .some(nil) }
                    state.idle.append((id, waiter))
                    return nil
                }
                if let now { waiter.resume(returning: now) }
            }
            timer.cancelAll()
            return request
        }
    }

    private func close() {
        let (queued, idle) = self.state.withLock { state -> ([Request], [Waiter]) in
            state.closed = true
            defer {
                state.queue = []
                state.idle = []
            }
            return (state.queue, state.idle.map(\.waiter))
        }
        self.starts.continuation.finish()
        for waiter in idle { waiter.resume(returning: nil) }
        for request in queued { request.reply.resume(throwing: SMTPFailure(.transient, "the mail sender is shutting down")) }
    }
}
