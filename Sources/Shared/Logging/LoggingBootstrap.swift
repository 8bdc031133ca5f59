import Foundation
public import Logging

extension PortalConfiguration {
    /// Bootstraps swift-log for a process: JSON lines when standard error is not a terminal (or when
    /// `PORTAL_LOG_FORMAT=json`), readable text otherwise. Call once, from an executable's entry point only: tests
    /// and builders receive their loggers and never bootstrap.
    public func bootstrapLogging() {
        let level = self.logLevel
        let json: Bool
        switch self.logFormat {
        case .json: json = true
        case .text: json = false
        case .auto: json = isatty(2) == 0
        }
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
