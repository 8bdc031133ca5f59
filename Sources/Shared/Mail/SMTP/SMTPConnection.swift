import Foundation
public import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Where and how to reach the mail relay.
public struct SMTPRelay: Sendable {
    public var host: String
    public var port: Int
    public var security: SMTPTransportSecurity
    public var user: String?
    public var password: String?
    /// PEM file of the certificate authorities to trust instead of the system's (a municipality's own relay).
    public var certificateAuthorityFile: String?
    /// The name this portal gives in EHLO.
    public var heloDomain: String
    public var connectTimeout: Duration
    /// How long to wait for each reply before giving the connection up.
    public var replyTimeout: Duration
    /// How long one message may take from MAIL FROM to the final reply, however the relay trickles its replies.
    public var messageTimeout: Duration

    public init(
        host: String,
        port: Int,
        security: SMTPTransportSecurity,
        user: String? = nil,
        password: String? = nil,
        certificateAuthorityFile: String? = nil,
        heloDomain: String,
        connectTimeout: Duration = .seconds(10),
        replyTimeout: Duration = .seconds(60),
        messageTimeout: Duration = .seconds(300)
    ) {
        self.host = host
        self.port = port
        self.security = security
        self.user = user
        self.password = password
        self.certificateAuthorityFile = certificateAuthorityFile
        self.heloDomain = heloDomain
        self.connectTimeout = connectTimeout
        self.replyTimeout = replyTimeout
        self.messageTimeout = messageTimeout
    }
}

extension SMTPRelay: CustomStringConvertible, CustomReflectable {
    /// Where the relay is and how it is reached; never the password.
    public var description: String { "\(self.host):\(self.port) (\(self.security))" }
    public var customMirror: Mirror {
        Mirror(self, children: ["host": self.host, "port": self.port, "security": self.security, "user": self.user as Any])
    }
}

/// One session with the relay: connects, secures and authenticates (``SMTPClientStateMachine`` decides, this type
/// only carries out), then sends messages one after the other on the same connection. Used by one task at a time.
public final class SMTPConnection {
    private var machine: SMTPClientStateMachine
    private var parser = SMTPReplyParser()
    /// How many buffers this connection took from the channel (compared with ``InboundBufferCounter`` at STARTTLS).
    private var buffersTaken = 0
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let channel: any Channel
    private let relay: SMTPRelay

    private init(
        relay: SMTPRelay,
        channel: any Channel,
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.relay = relay
        self.machine = SMTPClientStateMachine(
            .init(security: relay.security, heloDomain: relay.heloDomain, user: relay.user, password: relay.password))
        self.channel = channel
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
    }

    /// Opens a session, runs `body` with it, and ends it with QUIT. A failure to connect, secure or authenticate is an
    /// ``SMTPFailure``: `.transient` for network trouble and 4xx, `.configuration` when the relay cannot be used as
    /// configured.
    public static func withConnection<Result>(
        to relay: SMTPRelay,
        logger: Logger,
        _ body: (SMTPConnection) async throws -> Result
    ) async throws -> Result {
        let tls = try Self.tlsContext(relay)
        let asyncChannel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            asyncChannel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(Int64(relay.connectTimeout.seconds * 1e9)))
                .connect(host: relay.host, port: relay.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handlers = channel.pipeline.syncOperations
                        try handlers.addHandler(
                            IdleStateHandler(readTimeout: .nanoseconds(Int64(relay.replyTimeout.seconds * 1e9))))
                        try handlers.addHandler(ReplyTimeoutHandler())
                        if relay.security == .implicitTLS {
                            guard let tls else { throw SMTPFailure(.configuration, "implicit TLS without a TLS configuration") }
                            try handlers.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: Self.serverName(relay.host)))
                        }
                        try handlers.addHandler(InboundBufferCounter())
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw SMTPFailure(.transient, "cannot connect to the relay (\(error))")
        }
        return try await asyncChannel.executeThenClose { inbound, outbound in
            let connection = SMTPConnection(relay: relay, channel: asyncChannel.channel, inbound: inbound, outbound: outbound)
            try await connection.open(tls: tls)
            let result = try await body(connection)
            try? await connection.quit()
            logger.debug("SMTP session ended", metadata: ["portal.smtp.relay": "\(relay.host):\(relay.port)"])
            return result
        }
    }

    /// Whether the session can take a message: false once it failed.
    public var isReady: Bool { self.machine.isReady }

    /// Sends one message; returns the relay's final reply. A refusal throws an ``SMTPFailure`` (`.transient` for 4xx,
    /// `.permanent` for 5xx) and leaves the session usable; a broken session throws and ends it.
    public func send(_ envelope: SMTPEnvelope) async throws -> SMTPReply {
        let deadline = self.deadline()
        defer { deadline.cancel() }
        switch try await self.drive(self.machine.send(envelope)) {
        case .delivered(let reply): return reply
        case .messageFailed(let failure): throw failure
        case .fail(let failure): throw failure
        default: throw SMTPFailure(.configuration, "the session ended in an unexpected state")
        }
    }

    /// Past ``SMTPRelay/messageTimeout`` the connection is closed, which ends any wait for a reply with a failure,
    /// however slowly the relay trickles its bytes.
    private func deadline() -> Scheduled<Void> {
        let channel = self.channel
        return channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(self.relay.messageTimeout.seconds * 1e9))) {
            channel.close(promise: nil)
        }
    }

    private func open(tls: NIOSSLContext?) async throws {
        let deadline = self.deadline()
        defer { deadline.cancel() }
        switch try await self.drive(self.machine.received(try await self.nextReply()), tls: tls) {
        case .ready: return
        case .fail(let failure): throw failure
        default: throw SMTPFailure(.configuration, "the session did not become ready")
        }
    }

    private func quit() async throws {
        _ = self.machine.quit()
        try await self.outbound.write(ByteBuffer(bytes: SMTPCommand.quit.bytes))
        _ = try? await self.nextReply()
    }

    /// Carries out actions until one is for the caller.
    private func drive(_ first: SMTPClientStateMachine.Action, tls: NIOSSLContext? = nil) async throws -> SMTPClientStateMachine.Action {
        var action = first
        while true {
            switch action {
            case .send(let command):
                try await self.outbound.write(ByteBuffer(bytes: command.bytes))
                action = self.machine.received(try await self.nextReply())
            case .sendData(let data):
                try await self.outbound.write(ByteBuffer(bytes: data))
                action = self.machine.received(try await self.nextReply())
            case .startTLS:
                // Anything the server sent after its 220 would be read as if it came through TLS: refuse it.
                guard !self.parser.hasUnreadInput else {
                    throw SMTPFailure(.configuration, "the relay sent data after agreeing to STARTTLS")
                }
                guard let tls else { throw SMTPFailure(.configuration, "STARTTLS without a TLS configuration") }
                try await self.startTLS(tls)
                action = self.machine.tlsEstablished()
            case .ready, .delivered, .messageFailed, .fail:
                return action
            }
        }
    }

    private func startTLS(_ context: NIOSSLContext) async throws {
        let handshake = self.channel.eventLoop.makePromise(of: Void.self)
        let channel = self.channel
        let serverName = Self.serverName(self.relay.host)
        let taken = self.buffersTaken
        try await channel.eventLoop.submit {
            let handlers = channel.pipeline.syncOperations
            // On the event loop no read can come in between this check and the TLS handler taking over: every buffer
            // that passed so far must have been read, or plain text is waiting to be taken for protected data.
            guard try handlers.handler(type: InboundBufferCounter.self).count == taken else {
                throw SMTPFailure(.configuration, "the relay sent data after agreeing to STARTTLS")
            }
            // After the reply-timeout handlers, before the counter and the handler that feeds this connection.
            let tls = try NIOSSLClientHandler(context: context, serverHostname: serverName)
            try handlers.addHandler(tls, position: .after(try handlers.handler(type: ReplyTimeoutHandler.self)))
            try handlers.addHandler(HandshakeWaiter(promise: handshake), position: .after(tls))
        }.get()
        do {
            try await handshake.futureResult.get()
        } catch {
            throw SMTPFailure(.configuration, "the TLS handshake with the relay failed (\(error))")
        }
    }

    private func nextReply() async throws -> SMTPReply {
        while true {
            if let reply = self.parser.next() { return reply }
            let buffer: ByteBuffer?
            do {
                buffer = try await self.inbound.next()
            } catch {
                throw SMTPFailure(.transient, "the connection to the relay failed (\(error))")
            }
            guard let buffer else { throw SMTPFailure(.transient, "the relay closed the connection") }
            self.buffersTaken += 1
            do {
                try self.parser.append(buffer.readableBytesView)
            } catch {
                throw SMTPFailure(.configuration, "the relay sent an unreadable reply (\(error))")
            }
        }
    }

    private static func tlsContext(_ relay: SMTPRelay) throws -> NIOSSLContext? {
        guard relay.security != .none else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let file = relay.certificateAuthorityFile {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(file))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Host names go in SNI and are checked against the certificate. An IP address may not be sent in SNI; NIOSSL
    /// then checks the certificate against the address connected to.
    private static func serverName(_ host: String) -> String? {
        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        return isAddress ? nil : host
    }
}

/// Counts the buffers passed on to the connection, so STARTTLS can tell whether unread plain text is waiting.
private final class InboundBufferCounter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private(set) var count = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.count += 1
        context.fireChannelRead(data)
    }
}

/// Closes the connection when no reply came within the reply timeout.
private final class ReplyTimeoutHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .read? = event as? IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Completes when the TLS handshake after STARTTLS is done, or fails with the reason it failed. Lives on the
/// channel's event loop, like every handler.
private final class HandshakeWaiter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private var promise: EventLoopPromise<Void>?

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { self.complete(nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.complete(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.complete(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    private func complete(_ error: (any Error)?) {
        guard let promise else { return }
        self.promise = nil
        if let error { promise.fail(error) } else { promise.succeed() }
    }
}
