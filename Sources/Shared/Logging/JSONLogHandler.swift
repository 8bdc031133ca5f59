public import Foundation
public import Logging
import Synchronization

/// Writes each log record as one JSON object on one line (JSON Lines), for log collectors.
///
/// Fields: `time` (RFC 3339, UTC, milliseconds), `level`, `label`, `message`, then the metadata keys
/// (`hb.request.id`, `portal.job.id`, ...). Nested metadata is flattened with dots.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable (String) -> Void

    public init(label: String, level: Logger.Level, output: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = self.metadata
        if let provided = self.metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }

        var line = "{\"time\":\"\(Self.timestamp(Date()))\",\"level\":\"\(event.level)\",\"label\":"
        Self.appendString(self.label, to: &line)
        line += ",\"message\":"
        Self.appendString(event.message.description, to: &line)
        var flat: [(String, String)] = []
        Self.flatten(fields, prefix: "", into: &flat)
        for (key, value) in flat.sorted(by: { $0.0 < $1.0 }) where !["time", "level", "label", "message"].contains(key) {
            line += ","
            Self.appendString(key, to: &line)
            line += ":"
            Self.appendString(value, to: &line)
        }
        line += "}\n"
        self.output(line)
    }

    /// Writes a whole line to standard error in one call, so lines of concurrent tasks never interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
    }

    private static func flatten(_ metadata: Logger.Metadata, prefix: String, into result: inout [(String, String)]) {
        for (key, value) in metadata {
            let name = prefix.isEmpty ? key : "\(prefix).\(key)"
            switch value {
            case .string(let string): result.append((name, string))
            case .stringConvertible(let convertible): result.append((name, convertible.description))
            case .array(let values): result.append((name, "[" + values.map(\.description).joined(separator: ", ") + "]"))
            case .dictionary(let nested): flatten(nested, prefix: name, into: &result)
            }
        }
    }

    static func appendString(_ string: String, to line: inout String) {
        line += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}":
                line += String(format: "\\u%04x", scalar.value)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
