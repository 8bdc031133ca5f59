public import NIOCore
import NIOPosix

/// Where clamd listens: `PORTAL_CLAMD_ADDRESS` as `tcp://host:port`, `host:port`, or `unix:/path/to/clamd.ctl`.
public enum ClamdAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            var path = String(text.dropFirst("unix:".count))
            while path.hasPrefix("//") { path.removeFirst() }
            guard path.hasPrefix("/") else { return nil }
            self = .unix(path: path)
            return
        }
        let rest = text.hasPrefix("tcp://") ? text.dropFirst("tcp://".count) : Substring(text)
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = String(rest[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/") else { return nil }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): "tcp://\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// What clamd said about a stream.
public enum ClamdVerdict: Sendable, Equatable {
    case clean
    /// The signature's name, e.g. `Eicar-Test-Signature`.
    case infected(signature: String)
}

/// Why a scan did not give a verdict. Every one of these means the file is refused (fail closed).
public enum ClamdError: Error, Sendable, CustomStringConvertible {
    case unreachable(String)
    case connectionLost(String)
    /// clamd answered with an error, e.g. `INSTREAM size limit exceeded. ERROR`.
    case scannerError(String)
    case timedOut

    public var description: String {
        switch self {
        case .unreachable(let reason): "clamd cannot be reached: \(reason)"
        case .connectionLost(let reason): "the connection to clamd was lost: \(reason)"
        case .scannerError(let reply): "clamd answered: \(reply)"
        case .timedOut: "clamd gave no verdict in time"
        }
    }
}

/// A client of clamd's `INSTREAM` command (clamd(8)): the file goes to clamd in length-prefixed chunks while it is
/// being stored, so scanning adds no second pass over the file, and the verdict comes after the last chunk.
///
/// clamd refuses a stream longer than its `StreamMaxLength` (25 MB by default): set it at least as high as
/// `PORTAL_UPLOAD_MAX_BYTES`, or larger uploads are refused as unscannable.
public struct ClamdScanner: Sendable {
    public let address: ClamdAddress
    /// How long to wait for the connection, and for the verdict after the last chunk.
    public let timeout: Duration

    public init(address: ClamdAddress, timeout: Duration = .seconds(60)) {
        self.address = address
        self.timeout = timeout
    }

    /// Writes the chunks of one stream to clamd.
    public struct Stream: Sendable {
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

        public func send(_ chunk: ByteBuffer) async throws(ClamdError) {
            var framed = ByteBuffer()
            framed.reserveCapacity(4 + chunk.readableBytes)
            framed.writeInteger(UInt32(chunk.readableBytes), endianness: .big)
            framed.writeImmutableBuffer(chunk)
            do {
                try await self.outbound.write(framed)
            } catch {
                throw .connectionLost("\(error)")
            }
        }
    }

    /// Opens an `INSTREAM` session, runs `body` with it, ends the stream and returns `body`'s result with the verdict.
    public func scan<Result>(_ body: (Stream) async throws -> Result) async throws -> (Result, ClamdVerdict) {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await self.connect()
        } catch {
            throw ClamdError.unreachable("\(error)")
        }
        let timeout = self.timeout
        return try await channel.executeThenClose { inbound, outbound in
            do {
                // `z`: the command ends with a NUL byte, and so does the reply.
                try await outbound.write(ByteBuffer(string: "zINSTREAM\0"))
            } catch {
                throw ClamdError.connectionLost("\(error)")
            }
            let result = try await body(Stream(outbound: outbound))
            do {
                try await outbound.write(ByteBuffer(bytes: [0, 0, 0, 0]))
            } catch {
                throw ClamdError.connectionLost("\(error)")
            }
            // A verdict that does not come in time closes the connection, which ends the read below.
            let deadline = channel.channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
                channel.channel.close(promise: nil)
            }
            defer { deadline.cancel() }
            var reply = ByteBuffer()
            do {
                for try await part in inbound {
                    reply.writeImmutableBuffer(part)
                    if reply.readableBytesView.contains(0) || reply.readableBytes > 4096 { break }
                }
            } catch {
                throw ClamdError.connectionLost("\(error)")
            }
            guard let end = reply.readableBytesView.firstIndex(of: 0) else {
                throw reply.readableBytes == 0 ? ClamdError.timedOut : ClamdError.scannerError("an unterminated reply")
            }
            let text = String(decoding: reply.readableBytesView[..<end], as: UTF8.self)
            return (result, try Self.verdict(text))
        }
    }

    /// Reads `stream: OK`, `stream: <signature> FOUND` or `... ERROR`.
    static func verdict(_ reply: String) throws(ClamdError) -> ClamdVerdict {
        let text = reply.hasPrefix("stream: ") ? String(reply.dropFirst("stream: ".count)) : reply
        if text == "OK" { return .clean }
        if text.hasSuffix(" FOUND") { return .infected(signature: String(text.dropLast(" FOUND".count))) }
        throw .scannerError(String(reply.prefix(200)))
    }

    private func connect() async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(self.timeout.nanoseconds))
        let wrap: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        switch self.address {
        case .tcp(let host, let port): return try await bootstrap.connect(host: host, port: port, channelInitializer: wrap)
        case .unix(let path): return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: wrap)
        }
    }
}
