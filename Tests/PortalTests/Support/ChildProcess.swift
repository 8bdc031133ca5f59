import Foundation
import Synchronization

/// One of the package's executables started as a real child process, with its output captured in files, so a
/// test can kill it like an operator or a crash would.
///
/// Standard error (the process's log) is kept in the test log folder for the scan of everything the suite logged;
/// standard output (what a command prints for its operator, such as a new API key) is not a log and is not kept.
final class ChildProcess: Sendable {
    let name: String
    /// Standard error: the log.
    let outputFile: URL
    private let standardOutputFile: URL
    private let keepLog: Bool
    private let process: Process
    private let exit = ExitState()

    /// Starts `.build/<configuration>/<name>` (next to the test bundle) with `environment` added to ours, and `input`
    /// (when given) on its standard input.
    init(_ name: String, environment: [String: String], arguments: [String] = [], input: String? = nil) throws {
        self.name = name
        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let executable = binaries.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw TestSetupError("\(executable.path) is missing: build every product first (swift build --build-tests)")
        }
        let folder = TestLog.folder ?? FileManager.default.temporaryDirectory
        self.keepLog = TestLog.folder != nil
        let id = UUID().uuidString
        self.outputFile = folder.appendingPathComponent("\(name)-\(id).log")
        self.standardOutputFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(id).out")
        _ = FileManager.default.createFile(atPath: self.outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: self.standardOutputFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: self.outputFile)
        let output = try FileHandle(forWritingTo: self.standardOutputFile)
        self.process = Process()
        self.process.executableURL = executable
        self.process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        merged["PORTAL_LOG_FORMAT"] = "json"
        merged.merge(environment) { _, new in new }
        self.process.environment = merged
        self.process.standardOutput = output
        self.process.standardError = log
        if let input {
            let pipe = Pipe()
            self.process.standardInput = pipe
            try pipe.fileHandleForWriting.write(contentsOf: Data(input.utf8))
            try pipe.fileHandleForWriting.close()
        } else {
            self.process.standardInput = FileHandle.nullDevice
        }
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

    /// Standard output: what a command printed for its operator.
    var printed: String { (try? String(contentsOf: self.standardOutputFile, encoding: .utf8)) ?? "" }

    /// Standard output, then standard error.
    var output: String { self.printed + ((try? String(contentsOf: self.outputFile, encoding: .utf8)) ?? "") }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        if !self.keepLog { try? FileManager.default.removeItem(at: self.outputFile) }
        try? FileManager.default.removeItem(at: self.standardOutputFile)
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
