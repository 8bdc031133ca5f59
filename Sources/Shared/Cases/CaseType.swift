public import Foundation

/// A text in Dutch, and optionally in English (plain language, B1). A resident reading in English gets the Dutch text
/// when there is no English one.
public struct LocalizedText: Sendable, Equatable, Codable {
    public var nl: String
    public var en: String?

    public init(nl: String, en: String? = nil) {
        self.nl = nl
        self.en = en
    }

    public func text(for locale: Resident.Locale) -> String {
        switch locale {
        case .nl: self.nl
        case .en: self.en ?? self.nl
        }
    }
}

/// One step of a case type, in order.
public struct StatusType: Sendable, Equatable, Codable {
    public var code: String
    public var name: LocalizedText
    /// Whether reaching this status is announced to the resident (ZGW `statustype.informeren`).
    public var informs: Bool
    public var final: Bool
    public var uploadsAllowed: Bool

    public init(code: String, name: LocalizedText, informs: Bool = true, final: Bool = false, uploadsAllowed: Bool = false) {
        self.code = code
        self.name = name
        self.informs = informs
        self.final = final
        self.uploadsAllowed = uploadsAllowed
    }
}

/// A kind of case (zaaktype) of one department, with its ordered steps.
public struct CaseType: Sendable, Equatable {
    public var id: UUID
    public var departmentID: UUID
    public var code: String
    public var name: LocalizedText
    /// The statutory term in days, if any.
    public var termDays: Int?
    public var statusTypes: [StatusType]

    public init(id: UUID, departmentID: UUID, code: String, name: LocalizedText, termDays: Int?, statusTypes: [StatusType]) {
        self.id = id
        self.departmentID = departmentID
        self.code = code
        self.name = name
        self.termDays = termDays
        self.statusTypes = statusTypes
    }

    public func statusType(_ code: String) -> StatusType? { self.statusTypes.first { $0.code == code } }
}
