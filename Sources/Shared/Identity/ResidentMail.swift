public import Foundation
public import Logging
public import PostgresNIO

/// A resident's mail settings: the verified address that receives mail, the address waiting for its code, and the
/// kinds of mail switched off.
public struct ResidentMailSettings: Sendable, Equatable {
    /// Verified; the only address of the resident's own that receives mail.
    public var email: String?
    public var pendingEmail: String?
    public var switchedOff: Set<MailPreference>

    public init(email: String? = nil, pendingEmail: String? = nil, switchedOff: Set<MailPreference> = []) {
        self.email = email
        self.pendingEmail = pendingEmail
        self.switchedOff = switchedOff
    }
}

/// What checking a verification code found.
public enum EmailVerificationResult: Sendable, Equatable {
    /// The pending address is now the resident's address.
    case verified
    /// Wrong code; this many tries are left before the code stops working.
    case wrongCode(triesLeft: Int)
    /// No code is waiting: none was asked for, it expired, or it was tried too often.
    case noCode
}

extension ResidentStore {
    /// How long a code works, and how many wrong tries it survives (a six-digit code, so guessing is hopeless).
    public static let verificationCodeLifetime: Duration = .seconds(30 * 60)
    public static let verificationCodeTries = 5

    public func mailSettings(of id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> ResidentMailSettings {
        let rows = try await connection.query(
            "SELECT email, pending_email, mail_preferences::text FROM residents WHERE id = \(id)", logger: logger)
        for try await (email, pending, preferences) in rows.decode((String?, String?, String).self) {
            return ResidentMailSettings(email: email, pendingEmail: pending, switchedOff: Self.switchedOff(preferences))
        }
        throw StoreError.noRowReturned
    }

    /// Switches kinds of mail on (`true`) or off (`false`); kinds not named stay as they are.
    public func setMailPreferences(
        of id: UUID, _ preferences: [MailPreference: Bool], on connection: PostgresConnection, logger: Logger
    ) async throws {
        guard !preferences.isEmpty else { return }
        var object: [String: Bool] = [:]
        for (preference, on) in preferences { object[preference.rawValue] = on }
        let json = String(decoding: try JSONEncoder().encode(object), as: UTF8.self)
        // Stored as the kinds switched off; switching one on removes it.
        try await connection.query(
            """
            UPDATE residents
            SET mail_preferences = (
                SELECT coalesce(jsonb_object_agg(key, false), '{}'::jsonb)
                FROM jsonb_each(mail_preferences || \(json)::jsonb) WHERE value = 'false'::jsonb)
            WHERE id = \(id)
            """,
            logger: logger
        )
    }

    /// How often a resident can ask for a new code (each one is a mail to an address they typed).
    public static let verificationCodeInterval: Duration = .seconds(60)

    /// What asking for a verification code did.
    public enum VerificationRequest: Sendable, Equatable {
        /// The address is pending with this fresh code, to be mailed.
        case code(String)
        /// The resident's address (and any pending one) was removed.
        case removed
        /// A code was sent less than ``verificationCodeInterval`` ago: try again after this long.
        case tooSoon(retryAfter: Duration)
    }

    /// Starts verifying `address`: it becomes the pending address with a fresh code, which is returned to be mailed
    /// (only its hash is stored). `nil` removes the resident's address and any pending one.
    public func requestVerification(
        of id: UUID, address: String?, on connection: PostgresConnection, logger: Logger
    ) async throws -> VerificationRequest {
        guard let address else {
            try await connection.query(
                """
                UPDATE residents SET email = NULL, email_verified_at = NULL, pending_email = NULL, email_code_hash = NULL,
                    email_code_expires_at = NULL, email_code_attempts = 0
                WHERE id = \(id)
                """,
                logger: logger
            )
            return .removed
        }
        var generator = SystemRandomNumberGenerator()
        let code = String(format: "%06d", Int.random(in: 0..<1_000_000, using: &generator))
        let rows = try await connection.query(
            """
            WITH previous AS (
                SELECT email_code_sent_at,
                       email_code_sent_at + make_interval(secs => \(Self.verificationCodeInterval.seconds)) - now() AS wait
                FROM residents WHERE id = \(id) FOR UPDATE
            ), updated AS (
                UPDATE residents SET pending_email = \(address), email_code_hash = \(Self.codeHash(code, resident: id)),
                    email_code_expires_at = now() + make_interval(secs => \(Self.verificationCodeLifetime.seconds)),
                    email_code_attempts = 0, email_code_sent_at = now()
                FROM previous
                WHERE residents.id = \(id) AND (previous.wait IS NULL OR previous.wait <= interval '0')
                RETURNING residents.id
            )
            SELECT CASE WHEN EXISTS (SELECT 1 FROM updated) THEN 0 ELSE extract(epoch FROM previous.wait)::float8 END
            FROM previous
            """,
            logger: logger
        )
        let wait = try await rows.decode(Double.self).first { _ in true } ?? 0
        return wait > 0 ? .tooSoon(retryAfter: .seconds(wait.rounded(.up))) : .code(code)
    }

    /// Checks a code; the right one makes the pending address the resident's address.
    public func verify(
        _ id: UUID, code: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> EmailVerificationResult {
        let rows = try await connection.query(
            """
            SELECT email_code_hash, email_code_attempts FROM residents
            WHERE id = \(id) AND pending_email IS NOT NULL AND email_code_hash IS NOT NULL
              AND email_code_expires_at > now() AND email_code_attempts < \(Self.verificationCodeTries)
            FOR UPDATE
            """,
            logger: logger
        )
        guard let (hash, attempts) = try await rows.decode((Data, Int).self).first(where: { _ in true }) else { return .noCode }
        if Self.codeHash(code, resident: id) == hash {
            try await connection.query(
                """
                UPDATE residents SET email = pending_email, email_verified_at = now(), pending_email = NULL,
                    email_code_hash = NULL, email_code_expires_at = NULL, email_code_attempts = 0
                WHERE id = \(id)
                """,
                logger: logger
            )
            return .verified
        }
        try await connection.query("UPDATE residents SET email_code_attempts = email_code_attempts + 1 WHERE id = \(id)", logger: logger)
        let left = Self.verificationCodeTries - attempts - 1
        return left > 0 ? .wrongCode(triesLeft: left) : .noCode
    }

    /// Whether `code` is the code now waiting for the resident's pending address (the notifier mails only that one).
    public static func codeHash(_ code: String, resident: UUID) -> Data {
        SecretToken.hash("\(resident.uuidString.lowercased()):\(code)")
    }

    /// The kinds switched off in a `mail_preferences` object.
    public static func switchedOff(_ json: String) -> Set<MailPreference> {
        guard let object = try? JSONDecoder().decode([String: Bool].self, from: Data(json.utf8)) else { return [] }
        return Set(object.compactMap { $0.value ? nil : MailPreference(rawValue: $0.key) })
    }
}
