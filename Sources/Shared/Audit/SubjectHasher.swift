public import Crypto
public import Foundation

/// The keyed hash that stands in for a BSN or KvK number wherever we must say whose data it was without saying
/// the number: the audit log, above all.
///
/// A plain hash would not do: there are only a billion BSNs, so anyone could hash them all. HMAC-SHA256 under a
/// secret key (`PORTAL_AUDIT_KEY`) makes the hash useless without the key, while the same subject always gets the
/// same hash, so an auditor with the key can still answer "what was done with this person's data?".
public struct SubjectHasher: Sendable {
    private let key: SymmetricKey

    /// The key must be at least 32 characters, as required for `PORTAL_AUDIT_KEY`.
    public init(key: String) {
        self.key = SymmetricKey(data: Data(key.utf8))
    }

    /// Reads `PORTAL_AUDIT_KEY` (required; at least 32 characters).
    public init(environment: EnvironmentReader) throws(ConfigurationError) {
        let key = try environment.requiredString("PORTAL_AUDIT_KEY")
        guard key.utf8.count >= 32 else {
            throw ConfigurationError(variable: "PORTAL_AUDIT_KEY", problem: "must be at least 32 characters (a random secret)")
        }
        self.init(key: key)
    }

    /// 64 lowercase hexadecimal characters.
    public func hash(_ subject: Subject) -> String {
        let message = Data("\(subject.kind.rawValue):\(subject.number)".utf8)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: self.key)
        return Array(code).hexadecimal
    }

    /// The same keyed hash of anything else that identifies a person and must be kept without being readable, such as
    /// a client address in a rate limit's key: 32 bytes.
    public func hash(_ text: String) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: self.key))
    }
}
