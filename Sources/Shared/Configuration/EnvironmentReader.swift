public import Foundation

/// Reads settings from environment variables, one key at a time, each with its default.
///
/// Every accessor throws a ``ConfigurationError`` naming the variable when a value is present but malformed, so a
/// process can stop at start with one clear line instead of running with a half-understood setting.
public struct EnvironmentReader: Sendable {
    private let values: [String: String]

    /// - Parameter values: the environment, usually `ProcessInfo.processInfo.environment`.
    public init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    /// The trimmed value, or `nil` when the variable is unset or empty.
    public func string(_ name: String) -> String? {
        guard let raw = self.values[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !raw.isEmpty else {
            return nil
        }
        return raw
    }

    public func string(_ name: String, default defaultValue: String) -> String {
        self.string(name) ?? defaultValue
    }

    public func requiredString(_ name: String) throws(ConfigurationError) -> String {
        guard let value = self.string(name) else {
            throw ConfigurationError(variable: name, problem: "is required but not set")
        }
        return value
    }

    public func integer(_ name: String, default defaultValue: Int, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let raw = self.string(name) else { return defaultValue }
        guard let value = Int(raw), range.contains(value) else {
            throw ConfigurationError(
                variable: name,
                problem: "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \"\(raw)\""
            )
        }
        return value
    }

    /// A duration given in (possibly fractional) seconds.
    public func seconds(
        _ name: String, default defaultValue: Duration, in range: ClosedRange<Double>
    ) throws(ConfigurationError) -> Duration {
        guard let raw = self.string(name) else { return defaultValue }
        guard let value = Double(raw), value.isFinite, range.contains(value) else {
            throw ConfigurationError(
                variable: name,
                problem: "must be a number of seconds from \(range.lowerBound) to \(range.upperBound), got \"\(raw)\""
            )
        }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    public func boolean(_ name: String, default defaultValue: Bool) throws(ConfigurationError) -> Bool {
        guard let raw = self.string(name) else { return defaultValue }
        switch raw.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(variable: name, problem: "must be true or false, got \"\(raw)\"")
        }
    }

    /// One of a fixed set of words.
    public func choice<T: RawRepresentable & CaseIterable>(_ name: String, default defaultValue: T) throws(ConfigurationError) -> T
    where T.RawValue == String {
        guard let raw = self.string(name) else { return defaultValue }
        guard let value = T(rawValue: raw.lowercased()) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError(variable: name, problem: "must be one of \(allowed), got \"\(raw)\"")
        }
        return value
    }

    public func url(_ name: String, default defaultValue: String) throws(ConfigurationError) -> URL {
        let raw = self.string(name) ?? defaultValue
        guard let url = URL(string: raw), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw ConfigurationError(variable: name, problem: "must be an absolute http(s) URL, got \"\(raw)\"")
        }
        return url
    }
}
