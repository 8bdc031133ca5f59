import Foundation
import NIOCore
import NIOPosix
import Shared

/// A real clamd (Debian's clamav-daemon) as a child process, with a signature database made here by
/// `sigtool --md5` from the EICAR test file: signatures cannot be downloaded in the test environment, and this one
/// matches exactly the file every virus scanner is meant to find.
final class ClamdTestServer: Sendable {
    /// The EICAR anti-virus test file (harmless; every scanner reports it).
    static let eicar = Array(#"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"#.utf8)
    /// The EICAR string behind a PDF header: it passes the type check, so only the scanner can stop it.
    static let infectedPDF = Array("%PDF-1.4\n".utf8) + eicar

    let port: Int
    let folder: URL
    private let process: Process

    var address: ClamdAddress { .tcp(host: "127.0.0.1", port: self.port) }

    /// Starts clamd and returns once it answers `PING`.
    init() async throws {
        self.port = try freePort()
        self.folder = FileManager.default.temporaryDirectory.appendingPathComponent("portal-clamd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.folder, withIntermediateDirectories: true)
        // An MD5 signature matches a whole file: one for the EICAR file, one for it behind a PDF header.
        let sample = self.folder.appendingPathComponent("eicar.com")
        let samplePDF = self.folder.appendingPathComponent("eicar.pdf")
        try Data(Self.eicar).write(to: sample)
        try Data(Self.infectedPDF).write(to: samplePDF)
        let sigtool = Process()
        sigtool.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sigtool.arguments = ["sigtool", "--md5", sample.path, samplePDF.path]
        let signatures = Pipe()
        sigtool.standardOutput = signatures
        try sigtool.run()
        let database = signatures.fileHandleForReading.readDataToEndOfFile()
        sigtool.waitUntilExit()
        guard sigtool.terminationStatus == 0, !database.isEmpty else { throw TestSetupError("sigtool --md5 failed") }
        try FileManager.default.removeItem(at: sample)
        try FileManager.default.removeItem(at: samplePDF)
        try database.write(to: self.folder.appendingPathComponent("portal-test.hdb"))
        let configuration = self.folder.appendingPathComponent("clamd.conf")
        try """
        Foreground yes
        DatabaseDirectory \(self.folder.path)
        TCPSocket \(self.port)
        TCPAddr 127.0.0.1
        StreamMaxLength 300M
        LogFile \(self.folder.path)/clamd.log

        """.write(to: configuration, atomically: true, encoding: .utf8)
        self.process = Process()
        let clamd = ["/usr/sbin/clamd", "/usr/bin/clamd"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let clamd else { throw TestSetupError("clamd is missing: scripts/test installs clamav-daemon") }
        self.process.executableURL = URL(fileURLWithPath: clamd)
        self.process.arguments = ["-c", configuration.path]
        self.process.standardOutput = FileHandle.nullDevice
        self.process.standardError = FileHandle.nullDevice
        try self.process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while !(await Self.answersPing(port: self.port)) {
            guard self.process.isRunning, ContinuousClock.now < deadline else {
                throw TestSetupError(
                    "clamd did not start: \((try? String(contentsOf: self.folder.appendingPathComponent("clamd.log"), encoding: .utf8)) ?? "")"
                )
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops clamd and waits until it is gone (its port then refuses connections).
    func stop() async {
        guard self.process.isRunning else { return }
        self.process.terminate()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.process.waitUntilExit()
                continuation.resume()
            }
        }
    }

    /// Runs `body` with a clamd, stopped afterwards.
    static func with<T>(_ body: (ClamdTestServer) async throws -> T) async throws -> T {
        let server = try await ClamdTestServer()
        do {
            let result = try await body(server)
            await server.stop()
            try? FileManager.default.removeItem(at: server.folder)
            return result
        } catch {
            await server.stop()
            try? FileManager.default.removeItem(at: server.folder)
            throw error
        }
    }

    private static func answersPing(port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "zPING\0"))
                var reply = ByteBuffer()
                for try await part in inbound {
                    reply.writeImmutableBuffer(part)
                    if reply.readableBytesView.contains(0) { break }
                }
                return String(buffer: reply).hasPrefix("PONG")
            }
        } catch {
            return false
        }
    }
}
