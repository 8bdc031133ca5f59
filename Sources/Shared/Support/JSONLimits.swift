public import Foundation

/// How deep and how big a JSON document may be before it is parsed.
///
/// A body nested ten thousand levels deep, or with a million keys, costs the parser far more than its bytes suggest
/// (a recursion per level, a dictionary entry per key). ``check(_:)`` refuses such a document in one pass over its
/// bytes, without allocating, before anything is built from it. Everything the portal reads as JSON (request bodies,
/// departmental feeds) passes through it in ``JSONFields/parse(_:limits:)``.
public struct JSONLimits: Sendable, Equatable {
    /// The most arrays and objects inside one another.
    public var depth: Int
    /// The most values in all: every object member and every array element counts once.
    public var values: Int

    public init(depth: Int, values: Int) {
        self.depth = depth
        self.values = values
    }

    /// Deep and big enough for every body the API takes and every feed page it reads: the deepest is 4 levels, and a
    /// batch of 1,000 cases with their statuses stays well under 200,000 values.
    public static let standard = JSONLimits(depth: 32, values: 200_000)

    /// What is over a limit.
    public enum Violation: Error, Equatable, Sendable {
        case tooDeep(limit: Int)
        case tooManyValues(limit: Int)
    }

    /// Scans `data` once and answers the first limit it passes, or nil. Malformed JSON is not this check's business
    /// (the parser says so afterwards); brackets and commas inside strings are skipped, escapes included.
    public func check(_ data: Data) -> Violation? {
        data.withUnsafeBytes { bytes in self.check(bytes) }
    }

    public func check(_ bytes: UnsafeRawBufferPointer) -> Violation? {
        var depth = 0
        var values = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > self.depth { return .tooDeep(limit: self.depth) }
                // The container's first value; every further one follows a comma.
                values += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                values += 1
            default:
                continue
            }
            if values > self.values { return .tooManyValues(limit: self.values) }
        }
        return nil
    }
}
