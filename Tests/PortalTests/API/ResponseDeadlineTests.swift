import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import PortalAPI
@testable import Shared

/// A handler that hangs like a query PostgresNIO never answers: it ignores cancellation, until the test lets it go.
private final class Hang: Sendable {
    private let waiting = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let entered = Mutex(0)

    var count: Int { self.entered.withLock { $0 } }

    func wait() async {
        await withCheckedContinuation { continuation in
            self.waiting.withLock { $0.append(continuation) }
            self.entered.withLock { $0 += 1 }
        }
    }

    func release() {
        for continuation in self.waiting.withLock({ waiting in
            defer { waiting = [] }; return waiting
        }) {
            continuation.resume()
        }
    }
}

@Suite("Response deadline", .timeLimit(.minutes(1)))
struct ResponseDeadlineTests {
    @Test("a request without a body that hangs is answered 503 at the deadline, and the server goes on answering")
    func hungRead() async throws {
        let hang = Hang()
        let inner = CallbackResponder<APIRequestContext> { request, _ in
            if request.uri.path == "/hang" { await hang.wait() }
            return Response(status: .ok)
        }
        let application = Application(responder: ResponseDeadlineResponder(inner: inner, deadline: .milliseconds(500)))
        try await application.test(.live) { client in
            let started = ContinuousClock.now
            let response = try await client.execute(uri: "/hang", method: .get)
            let waited = ContinuousClock.now - started
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.contentType] == "application/problem+json")
            #expect(response.headers[.retryAfter] == "5")
            #expect(response.headers[.cacheControl] == "no-store")
            #expect(try APIHarness.object(response)["code"] == .string("no-answer-in-time"))
            #expect(waited >= .milliseconds(500) && waited < .seconds(10))
            #expect(hang.count == 1)
            // The handler still hangs; the server answers the next request on the same connection.
            let next = try await client.execute(uri: "/ok", method: .get)
            #expect(next.status == .ok)
        }
        hang.release()
    }

    @Test("a request that is in time is answered by its handler")
    func inTime() async throws {
        let inner = CallbackResponder<APIRequestContext> { _, _ in Response(status: .created) }
        let application = Application(responder: ResponseDeadlineResponder(inner: inner, deadline: .seconds(5)))
        try await application.test(.router) { client in
            let response = try await client.execute(uri: "/x", method: .get)
            #expect(response.status == .created)
        }
    }

    @Test("a request with a small body is read first and then given up like one without; its handler gets the body")
    func hungWrite() async throws {
        let hang = Hang()
        let inner = CallbackResponder<APIRequestContext> { request, _ in
            let body = try await request.body.collect(upTo: 1024)
            if request.uri.path == "/hang" { await hang.wait() }
            return Response(status: .ok, body: .init(byteBuffer: body))
        }
        let application = Application(responder: ResponseDeadlineResponder(inner: inner, deadline: .milliseconds(500)))
        try await application.test(.live) { client in
            let response = try await client.execute(
                uri: "/hang", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"a": 1}"#))
            #expect(response.status == .serviceUnavailable)
            #expect(try APIHarness.object(response)["code"] == .string("no-answer-in-time"))
            #expect(hang.count == 1)
            // The abandoned handler had its body from memory: the connection goes on with the next request.
            let next = try await client.execute(uri: "/echo", method: .post, body: ByteBuffer(string: "the next body"))
            #expect(next.status == .ok)
            #expect(String(buffer: next.body) == "the next body")
        }
        hang.release()
    }

    @Test("bodies up to 64 KiB by Content-Length are read first; longer or chunked ones stream to a handler without a deadline")
    func whichRequests() {
        typealias Deadline = ResponseDeadlineResponder<CallbackResponder<APIRequestContext>>
        func body(_ fields: HTTPFields) -> Deadline.Body {
            Deadline.body(
                of: Request(
                    head: HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/", headerFields: fields),
                    body: .init(buffer: .init())))
        }
        #expect(body([:]) == .none)
        #expect(body([.contentLength: "0"]) == .none)
        #expect(body([.contentLength: "12"]) == .buffered)
        #expect(body([.contentLength: "65536"]) == .buffered)
        #expect(body([.contentLength: "65537"]) == .streamed)
        #expect(body([.contentLength: "x"]) == .streamed)
        #expect(body([.transferEncoding: "chunked"]) == .streamed)
    }
}

@Suite("Deadlines", .timeLimit(.minutes(1)))
struct DeadlineTests {
    @Test("an operation that never comes back is given up at the deadline, and cancelled")
    func hung() async throws {
        let hang = Hang()
        // Whether the operation was cancelled, once it has ended.
        let ended = Mutex<Bool?>(nil)
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(200)) {
                await hang.wait()
                ended.withLock { $0 = Task.isCancelled }
            }
        }
        hang.release()
        while ended.withLock({ $0 }) == nil { await Task.yield() }
        #expect(ended.withLock { $0 } == true)
    }

    @Test("a cancelled caller that abandons is released at once, though the operation ignores cancellation")
    func abandonedOnCancellation() async throws {
        let hang = Hang()
        let caller = Task {
            try await withDeadline(.seconds(600), abandonOnCancellation: true) { await hang.wait() }
        }
        while hang.count == 0 { await Task.yield() }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        hang.release()
    }

    @Test("a caller cancelled before it begins, abandoning, does not start the operation")
    func cancelledBeforeStart() async throws {
        let started = Mutex(false)
        let caller = Task {
            while !Task.isCancelled { await Task.yield() }
            return try await withDeadline(.seconds(600), abandonOnCancellation: true) { started.withLock { $0 = true } }
        }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        #expect(!started.withLock { $0 })
    }

    @Test("a cancelled caller that does not abandon waits for the operation's own outcome")
    func waitsWhenCancelled() async throws {
        let hang = Hang()
        let caller = Task {
            try await withDeadline(.seconds(600)) {
                await hang.wait(); return 7
            }
        }
        while hang.count == 0 { await Task.yield() }
        caller.cancel()
        hang.release()
        #expect(try await caller.value == 7)
    }

    @Test("withDeadline returns the operation's result or error when it is in time")
    func inTime() async throws {
        #expect(try await withDeadline(.seconds(5)) { 42 } == 42)
        struct Failure: Error {}
        await #expect(throws: Failure.self) { try await withDeadline(.seconds(5)) { throw Failure() } }
    }
}
