import Foundation
import Logging
import Synchronization

/// Log capture for tests: a logger whose lines a test can read back (to check that a security event was logged),
/// and which are also written to the folder that `scripts/test` scans after the suite for anything that looks like
/// a BSN or a token (`PORTAL_TEST_LOG_DIR`).
final class TestLog: Sendable {
    /// The folder `scripts/test` scans; nil when the tests run without it.
    static let folder: URL? = ProcessInfo.processInfo.environment["PORTAL_TEST_LOG_DIR"].map { URL(fileURLWithPath: $0) }

    private static let file: FileHandle? = {
        guard let folder else { return nil }
        let url = folder.appendingPathComponent("in-process-\(getpid()).log")
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        return try? FileHandle(forWritingTo: url)
    }()
    private static let fileLock = Mutex(())

    private let lines = Mutex<[String]>([])

    /// A logger at `level` whose lines end up in ``lines``.
    func logger(_ label: String, level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: label) { label in Handler(label: label, log: self) }
        logger.logLevel = level
        return logger
    }

    var captured: [String] { self.lines.withLock { $0 } }

    /// The captured lines that mention `text`.
    func lines(containing text: String) -> [String] { self.captured.filter { $0.contains(text) } }

    fileprivate func append(_ line: String) {
        self.lines.withLock { $0.append(line) }
        if let file = Self.file {
            Self.fileLock.withLock { _ in file.write(Data((line + "\n").utf8)) }
        }
    }

    private struct Handler: LogHandler {
        let label: String
        let log: TestLog
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = self.metadata
            if let extra = event.metadata { all.merge(extra) { _, new in new } }
            let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            self.log.append("\(event.level) \(self.label): \(event.message) \(rendered)")
        }
    }
}
