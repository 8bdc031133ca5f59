public import Foundation

/// A resident or business that has logged in, with their settings.
public struct Resident: Sendable, Equatable {
    public enum Locale: String, Sendable, CaseIterable, Codable {
        case nl
        case en
    }

    public let id: UUID
    public let subject: Subject
    public var locale: Locale
    /// Where notification e-mails go: the address the resident verified; nil until then.
    public var email: String?

    public init(id: UUID, subject: Subject, locale: Locale, email: String?) {
        self.id = id
        self.subject = subject
        self.locale = locale
        self.email = email
    }
}
