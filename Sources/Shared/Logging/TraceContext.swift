public import Logging

/// W3C Trace Context (https://www.w3.org/TR/trace-context/): the trace id that ties a request, the jobs it starts,
/// the calls they make, their log lines and their audit records together. The portal does not record spans; it keeps
/// the caller's trace id, or starts one, and passes it on.
public enum TraceContext {
    /// The logger metadata key that carries the trace id on every log line of a request or job.
    public static let metadataKey = "portal.trace.id"

    /// 16 random bytes as 32 lowercase hexadecimal characters, the trace-id format.
    public static func newTraceID() -> String {
        var generator = SystemRandomNumberGenerator()
        let (high, low) = (generator.next() as UInt64, generator.next() as UInt64)
        return withUnsafeBytes(of: (high, low)) { $0.hexadecimal }
    }

    /// The trace id of a valid `traceparent` header (version 00, lowercase, not all zeros), or nil.
    public static func traceID(fromTraceparent header: String) -> String? {
        let parts = header.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "00", Self.isHex(parts[1], count: 32), Self.isHex(parts[2], count: 16),
            Self.isHex(parts[3], count: 2), parts[1] != String(repeating: "0", count: 32)
        else { return nil }
        return String(parts[1])
    }

    /// A `traceparent` header for an outgoing call in trace `traceID`: a new parent id per call, sampled.
    public static func traceparent(traceID: String) -> String {
        var generator = SystemRandomNumberGenerator()
        var parent = 0 as UInt64
        while parent == 0 { parent = generator.next() }
        return "00-\(traceID)-\(withUnsafeBytes(of: parent) { $0.hexadecimal })-01"
    }

    private static func isHex(_ part: Substring, count: Int) -> Bool {
        part.utf8.count == count && part.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

extension Logger {
    /// The trace id this logger's lines carry, if any.
    public var traceID: String? {
        guard case .string(let value) = self[metadataKey: TraceContext.metadataKey] else { return nil }
        return value
    }
}
