import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A client on a plain TCP connection that misbehaves on purpose: it dribbles, stalls or overflows, while everything
/// the server sends is collected until the server closes the connection.
enum MisbehavingClient {
    struct Outcome: Sendable {
        /// What the server sent before closing.
        var answer: String
        /// How long after connecting the server closed the connection; nil when it was still open after the limit.
        var closedAfter: Duration?
    }

    /// Connects to `port` on loopback, runs `send` (which may pause between writes: that is the misbehaviour) and
    /// waits at most `limit` for the server to close the connection.
    static func run(
        port: Int, limit: Duration, _ send: @escaping @Sendable (NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void
    ) async throws -> Outcome {
        let started = ContinuousClock.now
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let outcome = Mutex(Outcome(answer: "", closedAfter: nil))
        do {
            try await channel.executeThenClose { inbound, outbound in
                let result = try await Self.exchange(inbound: inbound, outbound: outbound, started: started, limit: limit, send)
                outcome.withLock { $0 = result }
            }
        } catch ChannelError.ioOnClosedChannel {
            // Closing a connection the server already closed.
        }
        return outcome.withLock { $0 }
    }

    private static func exchange(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        started: ContinuousClock.Instant, limit: Duration,
        _ send: @escaping @Sendable (NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void
    ) async throws -> Outcome {
        try await withThrowingTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                // Writing fails once the server has closed: that is an outcome, not an error.
                try? await send(outbound)
                return nil
            }
            group.addTask {
                var answer = ByteBuffer()
                do {
                    for try await part in inbound { answer.writeImmutableBuffer(part) }
                } catch {
                    // A reset: closed all the same.
                }
                return Outcome(answer: String(buffer: answer), closedAfter: ContinuousClock.now - started)
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return Outcome(answer: "", closedAfter: nil)
            }
            while let result = try await group.next() {
                if let result {
                    group.cancelAll()
                    return result
                }
            }
            return Outcome(answer: "", closedAfter: nil)
        }
    }
}
