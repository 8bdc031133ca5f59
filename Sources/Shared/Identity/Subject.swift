/// Whose data it is: a resident identified by their BSN (DigiD) or a business by its KvK number (eHerkenning).
///
/// A `Subject` can only be made from a number that passed validation, so code that holds one never has to check
/// again. Its description is masked: interpolating a subject into a log line or an error cannot leak the number.
public struct Subject: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// Burgerservicenummer: nine digits that pass the elfproef.
        case bsn
        /// Kamer van Koophandel number: eight digits.
        case kvk
    }

    public let kind: Kind
    /// The validated number, digits only. Never log it; use ``masked`` or a keyed hash.
    public let number: String

    /// Validates `value` as a number of the given kind.
    ///
    /// A BSN may carry the sector prefix some brokers send (`s00000000:`, the sector code for BSN); it is checked
    /// and stripped.
    public init(kind: Kind, validating value: String) throws(SubjectError) {
        switch kind {
        case .bsn:
            var digits = Substring(value)
            if let colon = digits.firstIndex(of: ":") {
                guard digits[..<colon] == Self.bsnSectorCode else { throw .unknownSector }
                digits = digits[digits.index(after: colon)...]
            }
            guard digits.count == 9, digits.allSatisfy(\.isASCIIDigit) else { throw .notNineDigits }
            guard digits != "000000000" else { throw .allZeros }
            guard Self.passesElfproef(digits) else { throw .failsElfproef }
            self.number = String(digits)
        case .kvk:
            guard value.count == 8, value.allSatisfy(\.isASCIIDigit) else { throw .notEightDigits }
            guard value != "00000000" else { throw .allZeros }
            self.number = value
        }
        self.kind = kind
    }

    /// The sector code for BSN in the Dutch sector-number notation (`s00000000:<bsn>`).
    static let bsnSectorCode = "s00000000"

    /// The elfproef for a BSN: the digits weighted 9, 8, ..., 2 and the last one -1 add up to a multiple of 11.
    public static func passesElfproef(_ digits: some StringProtocol) -> Bool {
        let values = digits.compactMap(\.wholeNumberValue)
        guard values.count == 9 else { return false }
        var sum = 0
        for (index, value) in values.enumerated() {
            sum += (index == 8 ? -1 : 9 - index) * value
        }
        return sum % 11 == 0
    }

    /// What a resident may see of their own number: a BSN shows only its last three digits. A KvK number is a public
    /// registration and is shown whole.
    public var masked: String {
        switch self.kind {
        case .bsn: String(repeating: "*", count: 6) + self.number.suffix(3)
        case .kvk: self.number
        }
    }

    public var description: String { "\(self.kind.rawValue):\(self.masked)" }
}

/// Why a number is not a valid BSN or KvK number. The messages never repeat the number.
public enum SubjectError: Error, Sendable, Equatable, CustomStringConvertible {
    case notNineDigits
    case notEightDigits
    case allZeros
    case failsElfproef
    case unknownSector

    public var description: String {
        switch self {
        case .notNineDigits: "a BSN has nine digits"
        case .notEightDigits: "a KvK number has eight digits"
        case .allZeros: "the number consists of zeros only"
        case .failsElfproef: "the number does not pass the elfproef"
        case .unknownSector: "the sector prefix is not the one for BSN (s00000000)"
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { self.isASCII && self.isNumber }
}
