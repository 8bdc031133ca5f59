import Foundation
import Synchronization

/// One of the package's executables started as a real child process, with its output captured in files, so a
/// test can kill it like an operator or a crash would.
final class ChildProcess: Sendable {
    let name: String
    let outputFile: URL
    private let keepOutput: Bool
    private let process: Process
    private let exit = ExitState()

    /// Starts `.build/<configuration>/<name>` (next to the test bundle) with `environment` added to ours.
    init(_ name: String, environment: [String: String], arguments: [String] = []) throws {
        self.name = name
        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let executable = binaries.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw TestSetupError("\(executable.path) is missing: build every product first (swift build --build-tests)")
        }
        // Kept in the test log folder when there is one, for the scan of everything the suite logged.
        let folder = TestLog.folder ?? FileManager.default.temporaryDirectory
        self.keepOutput = TestLog.folder != nil
        self.outputFile = folder.appendingPathComponent("\(name)-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: self.outputFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: self.outputFile)
        self.process = Process()
        self.process.executableURL = executable
        self.process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        merged["PORTAL_LOG_FORMAT"] = "json"
        merged.merge(environment) { _, new in new }
        self.process.environment = merged
        self.process.standardOutput = output
        self.process.standardError = output
        self.process.standardInput = FileHandle.nullDevice
        self.process.terminationHandler = { [exit] process in
            let waiters = exit.state.withLock { state in
                state.status = process.terminationStatus
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: process.terminationStatus) }
        }
        try self.process.run()
    }

    var pid: Int32 { self.process.processIdentifier }

    func signal(_ signal: Int32) { kill(self.process.processIdentifier, signal) }

    /// The exit status, once the process has exited. (For a signal, Foundation reports the signal number.)
    func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = self.exit.state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    var output: String { (try? String(contentsOf: self.outputFile, encoding: .utf8)) ?? "" }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        if !self.keepOutput { try? FileManager.default.removeItem(at: self.outputFile) }
    }
}

/// How a child process ended, and who waits for it.
private final class ExitState: Sendable {
    let state = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
}

/// A TCP port that was free a moment ago, for a child process to listen on.
func freePort() throws -> Int {
    let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestSetupError("socket() failed") }
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
    }
    guard bound else { throw TestSetupError("bind() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}
