import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import Testing

@testable import PortalAPI
@testable import Shared

/// The size limit against a real `PortalAPI serve` process and a client that keeps sending: the API answers 413 as
/// soon as the limit is passed, stops reading, keeps nothing, and its memory does not grow with the body.
@Suite("Upload limit")
struct UploadLimitTests {
    @Test("a 200 MB upload with a 25 MB limit is cut off at the limit, nothing is kept, and the process's memory stays flat")
    func cutOff() async throws {
        try await APIHarness.with { api in
            let fixture = try await DocumentFixture.make(api)
            let settings = api.database.settings
            let port = try freePort()
            let server = try ChildProcess(
                "PortalAPI",
                environment: [
                    "PORTAL_DATABASE_URL":
                        "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable",
                    "PORTAL_HTTP_PORT": "\(port)",
                    "PORTAL_AUDIT_KEY": APIHarness.auditKey,
                    "PORTAL_UPLOAD_MAX_BYTES": "\(25 * 1024 * 1024)",
                    "PORTAL_SMTP_URL": "smtp://localhost:2525",
                    "PORTAL_MAIL_FROM": "noreply@portal.test",
                ],
                arguments: ["serve"])
            let ready = try await eventually {
                (try? await Self.exchange(port: port, head: "GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n", bodyBytes: 0).status) == 200
            }
            try #require(ready, "the API never became ready: \(server.output)")
            // A first upload that is accepted, so the baseline includes everything an upload touches.
            let small = try await Self.exchange(
                port: port, head: Self.head(fixture, length: 100_000), bodyBytes: 100_000, firstBytes: Array("%PDF-1.4\n".utf8))
            #expect(small.status == 201, "\(small.response)")
            let baseline = try Self.peakMemory(pid: server.pid)

            let big = try await Self.exchange(
                port: port, head: Self.head(fixture, length: 200 * 1024 * 1024), bodyBytes: 200 * 1024 * 1024,
                firstBytes: Array("%PDF-1.4\n".utf8))
            #expect(big.status == 413, "\(big.response)")
            #expect(big.response.contains("too-large"))
            // Reading stopped at the limit (DocumentReceiverTests counts the pieces read); what the client sends after
            // the answer is dropped until the connection closes right after it, and none of it is kept or buffered:
            let peak = try Self.peakMemory(pid: server.pid)
            #expect(peak - baseline < 16 * 1024 * 1024, "peak memory grew from \(baseline) to \(peak) bytes")
            #expect(try await fixture.storedCounts().documents == 1)

            server.signal(SIGTERM)
            _ = await server.waitForExit()
        }
    }

    static func head(_ fixture: DocumentFixture, length: Int) -> String {
        "POST /api/v1/cases/\(fixture.caseID)/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: \(fixture.session.cookie)\r\n"
            + "X-CSRF-Token: \(fixture.session.csrfToken)\r\nContent-Type: application/pdf\r\n"
            + "Content-Disposition: attachment; filename=\"groot.pdf\"\r\nContent-Length: \(length)\r\n\r\n"
    }

    /// The peak resident memory of a process (VmHWM), in bytes.
    static func peakMemory(pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw TestSetupError("no VmHWM in /proc/\(pid)/status") }
        return kilobytes * 1024
    }

    /// Sends a request over a plain socket, streaming `bodyBytes` bytes in 1 MiB writes while reading the answer, and
    /// stops writing as soon as the answer is complete or the connection closes.
    static func exchange(
        port: Int, head: String, bodyBytes: Int, firstBytes: [UInt8] = []
    ) async throws -> (
        status: Int, response: String
    ) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let response = try await channel.executeThenClose { inbound, outbound in
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    try? await outbound.write(ByteBuffer(string: head))
                    var remaining = bodyBytes
                    var first = true
                    let block = ByteBuffer(repeating: 0x41, count: 1024 * 1024)
                    while remaining > 0, !Task.isCancelled {
                        var chunk = block.getSlice(at: 0, length: min(remaining, block.readableBytes))!
                        if first {
                            chunk = ByteBuffer(bytes: firstBytes + Array(chunk.readableBytesView.dropFirst(firstBytes.count)))
                            first = false
                        }
                        do { try await outbound.write(chunk) } catch { return }
                        remaining -= chunk.readableBytes
                    }
                }
                var answer = ByteBuffer()
                do {
                    for try await part in inbound {
                        answer.writeImmutableBuffer(part)
                        if Self.complete(String(buffer: answer)) { break }
                    }
                } catch {
                    // The connection closed: what came is the answer.
                }
                group.cancelAll()
                return String(buffer: answer)
            }
        }
        let status = response.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return (status, response)
    }

    /// Whether an HTTP answer has arrived whole (by its Content-Length).
    static func complete(_ text: String) -> Bool {
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<end.lowerBound].lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        else { return true }
        return text[end.upperBound...].utf8.count >= length
    }
}
