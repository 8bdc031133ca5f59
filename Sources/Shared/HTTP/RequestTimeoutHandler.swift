public import NIOCore
public import NIOHTTPTypes

/// Closes a connection whose client takes longer than `timeout` to send one request, from its head to the end of its
/// body: an upload that dribbles a byte now and then keeps the idle timeout from firing, but not this one.
///
/// It sits in the HTTP pipeline after the decoder, so it sees a request only once its head is complete; a client
/// that dribbles its headers is the idle timeout's to cut off (`PORTAL_HTTP_IDLE_SECONDS`). The response is not
/// timed: a slow handler (a virus scan) is not the client's doing.
public final class RequestTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    public init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head:
            self.deadline?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            self.deadline = context.eventLoop.scheduleTask(in: self.timeout) {
                loopBound.value.close(promise: nil)
            }
        case .body:
            break
        case .end:
            self.deadline?.cancel()
            self.deadline = nil
        }
        context.fireChannelRead(data)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.deadline?.cancel()
        self.deadline = nil
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline?.cancel()
        self.deadline = nil
    }
}

@available(*, unavailable)
extension RequestTimeoutHandler: Sendable {}
