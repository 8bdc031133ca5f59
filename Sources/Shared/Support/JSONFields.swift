public import Foundation

/// One invalid field, as listed in a problem's `invalidParams` (the ZGW and NL API convention).
public struct FieldError: Sendable, Equatable, Encodable, CustomStringConvertible {
    /// The field's name; nested fields as `a.b`, array items as `a[0]`.
    public let name: String
    /// A stable, machine-readable reason: `required`, `invalid`, `type`, `unknown`, `too-long`.
    public let code: String
    /// What is wrong, for the integrator, in English.
    public let reason: String

    public init(name: String, code: String, reason: String) {
        self.name = name
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(self.name): \(self.reason)" }
}

/// Reads a JSON object and its fields, collecting every field error before answering, so that one
/// 400 lists all of them (NL API Design Rules) instead of the first one a `Decodable` trips over.
///
/// The API reads request bodies with it (`JSONBody`, which adds the HTTP side: media type, size limit, the 400);
/// the sync worker reads departmental feeds with it, so a change arriving either way is checked by the same code.
///
/// ```swift
/// var body = try await JSONBody.read(request, context: context)
/// let locale = body.choice("locale", Resident.Locale.self)
/// try body.finish()  // throws a 400 listing every error, including unknown fields
/// ```
public struct JSONFields: Sendable {
    private let object: [String: JSONValue]
    /// For nested objects: the path in front of every field name, like `handler.` or `statusTypes[2].`.
    private let prefix: String
    private var errors: [FieldError] = []
    private var known: Set<String> = []

    public init(object: [String: JSONValue], prefix: String = "") {
        self.object = object
        self.prefix = prefix
    }

    /// Why bytes are not a JSON object.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notJSON
        /// Valid JSON of another type, named as ``JSONValue/typeName`` does.
        case notAnObject(String)
        /// Deeper or bigger than the limits allow; not parsed at all.
        case overLimit(JSONLimits.Violation)

        public var description: String {
            switch self {
            case .notJSON: "not JSON"
            case .notAnObject(let type): "not a JSON object but \(type)"
            case .overLimit(.tooDeep(let limit)): "nested more than \(limit) levels deep"
            case .overLimit(.tooManyValues(let limit)): "more than \(limit) values"
            }
        }
    }

    /// The fields of a JSON object, after ``JSONLimits/check(_:)`` found the document within `limits`.
    public static func parse(_ data: Data, limits: JSONLimits = .standard) throws(ParseError) -> JSONFields {
        if let violation = limits.check(data) { throw .overLimit(violation) }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: data) else { throw .notJSON }
        guard case .object(let object) = value else { throw .notAnObject(value.typeName) }
        return JSONFields(object: object)
    }

    public var isEmpty: Bool { self.object.isEmpty }

    public func contains(_ name: String) -> Bool { self.object[name] != nil }

    /// A string field; `nil` (and an error when `required`) when it is absent, null or not a valid string.
    public mutating func string(_ name: String, required: Bool = false, maxLength: Int = 1000) -> String? {
        self.known.insert(name)
        switch self.object[name] {
        case nil, .null?:
            if required { self.fail(name, "required", "This field is required.") }
            return nil
        case .string(let value)?:
            // Counted as PostgreSQL counts: in code points, not in Swift's grapheme clusters.
            if value.unicodeScalars.count > maxLength {
                self.fail(name, "too-long", "At most \(maxLength) characters.")
                return nil
            }
            if value.unicodeScalars.contains(where: { $0.value < 0x20 && !["\t", "\n", "\r"].contains($0) }) {
                self.fail(name, "invalid", "Control characters are not allowed.")
                return nil
            }
            return value
        case let other?:
            self.fail(name, "type", "Expected a string, got \(other.typeName).")
            return nil
        }
    }

    /// An array of UUIDs (ids of other things), at most `maxCount` of them.
    public mutating func uuids(_ name: String, maxCount: Int) -> [UUID]? {
        self.known.insert(name)
        switch self.object[name] {
        case nil, .null?: return nil
        case .array(let values)?:
            guard values.count <= maxCount else {
                self.fail(name, "too-long", "At most \(maxCount) ids.")
                return nil
            }
            let ids = values.compactMap { value -> UUID? in
                guard case .string(let text) = value else { return nil }
                return UUID(uuidString: text)
            }
            guard ids.count == values.count else {
                self.fail(name, "invalid", "Every item must be an id (a UUID).")
                return nil
            }
            return ids
        case let other?:
            self.fail(name, "type", "Expected an array of ids, got \(other.typeName).")
            return nil
        }
    }

    /// A string field with a fixed set of values.
    public mutating func choice<T: RawRepresentable<String> & CaseIterable>(_ name: String, _ type: T.Type, required: Bool = false) -> T? {
        guard let raw = self.string(name, required: required) else { return nil }
        guard let value = T(rawValue: raw) else {
            let allowed = T.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            self.fail(name, "invalid", "Must be one of \(allowed).")
            return nil
        }
        return value
    }

    /// An e-mail address: one `@`, something on both sides, a dot in the domain, no spaces. Enough to catch typing
    /// mistakes; whether the address works is for the mail server to say.
    public mutating func email(_ name: String) -> String? {
        guard let value = self.string(name, maxLength: 254) else { return nil }
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !value.contains(where: { $0.isWhitespace || $0.isNewline })
        else {
            self.fail(name, "invalid", "Not an e-mail address.")
            return nil
        }
        return value
    }

    /// A field that may be set to an e-mail address or to null: `.none` when absent, `.some(nil)` when null.
    public mutating func nullableEmail(_ name: String) -> String?? {
        guard let value = self.object[name] else {
            self.known.insert(name)
            return .none
        }
        if value == .null {
            self.known.insert(name)
            return .some(nil)
        }
        guard let address = self.email(name) else { return .none }
        return .some(address)
    }

    /// `bsn` or `kvk` (exactly one), validated: the subject of a case or of a development login.
    public mutating func subjectFields() -> Subject? {
        let bsn = self.string("bsn", maxLength: 20)
        let kvk = self.string("kvk", maxLength: 20)
        switch (bsn, kvk) {
        case (let bsn?, nil):
            do { return try Subject(kind: .bsn, validating: bsn) } catch { self.fail("bsn", "invalid", "\(error)") }
        case (nil, let kvk?):
            do { return try Subject(kind: .kvk, validating: kvk) } catch { self.fail("kvk", "invalid", "\(error)") }
        case (nil, nil): self.fail("bsn", "required", "Give a bsn or a kvk number.")
        case (_?, _?): self.fail("kvk", "invalid", "Give a bsn or a kvk number, not both.")
        }
        return nil
    }

    /// A nested `{"bsn": ...}` or `{"kvk": ...}`.
    public mutating func subject(_ name: String, required: Bool) -> Subject? {
        self.nested(name, required: required) { $0.subjectFields() }
    }

    /// A boolean field.
    public mutating func bool(_ name: String) -> Bool? {
        self.known.insert(name)
        switch self.object[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case let other?:
            self.fail(name, "type", "Expected true or false, got \(other.typeName).")
            return nil
        }
    }

    /// A whole-number field within `range`.
    public mutating func integer(_ name: String, required: Bool = false, in range: ClosedRange<Int>) -> Int? {
        self.known.insert(name)
        switch self.object[name] {
        case nil, .null?:
            if required { self.fail(name, "required", "This field is required.") }
            return nil
        case .number(let value)?:
            guard value == value.rounded(), let whole = Int(exactly: value), range.contains(whole) else {
                self.fail(name, "invalid", "Must be a whole number from \(range.lowerBound) to \(range.upperBound).")
                return nil
            }
            return whole
        case let other?:
            self.fail(name, "type", "Expected a number, got \(other.typeName).")
            return nil
        }
    }

    /// An RFC 3339 time with a zone, like `2026-11-20T09:12:00Z`.
    public mutating func timestamp(_ name: String, required: Bool = false) -> Date? {
        guard let text = self.string(name, required: required, maxLength: 40) else { return nil }
        guard let date = Self.parseTimestamp(text) else {
            self.fail(name, "invalid", "Must be an RFC 3339 time with a zone, like 2026-11-20T09:12:00Z.")
            return nil
        }
        return date
    }

    /// A calendar date `YYYY-MM-DD`.
    public mutating func date(_ name: String, required: Bool = false) -> String? {
        guard let text = self.string(name, required: required, maxLength: 10) else { return nil }
        var components = DateComponents()
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
        {
            components.year = year
            components.month = month
            components.day = day
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            if components.isValidDate(in: calendar) { return text }
        }
        self.fail(name, "invalid", "Must be a date like 2027-01-15.")
        return nil
    }

    /// A nested object, read by `read` with field names prefixed by this one's; its errors become ours.
    public mutating func nested<T>(_ name: String, required: Bool = false, _ read: (inout JSONFields) -> T?) -> T? {
        self.known.insert(name)
        switch self.object[name] {
        case nil, .null?:
            if required { self.fail(name, "required", "This field is required.") }
            return nil
        case .object(let object)?:
            var child = JSONFields(object: object, prefix: self.prefix + name + ".")
            let value = read(&child)
            self.errors += child.allErrors
            return child.allErrors.isEmpty ? value : nil
        case let other?:
            self.fail(name, "type", "Expected an object, got \(other.typeName).")
            return nil
        }
    }

    /// An array of objects, each read by `read`; nil when any item has an error.
    public mutating func objects<T>(
        _ name: String, required: Bool = false, count: ClosedRange<Int>, _ read: (inout JSONFields) -> T?
    ) -> [T]? {
        self.known.insert(name)
        switch self.object[name] {
        case nil, .null?:
            if required { self.fail(name, "required", "This field is required.") }
            return nil
        case .array(let items)?:
            guard count.contains(items.count) else {
                self.fail(name, "invalid", "Must have \(count.lowerBound) to \(count.upperBound) items.")
                return nil
            }
            var values: [T] = []
            var failed = false
            for (index, item) in items.enumerated() {
                guard case .object(let object) = item else {
                    self.fail("\(name)[\(index)]", "type", "Expected an object, got \(item.typeName).")
                    failed = true
                    continue
                }
                var child = JSONFields(object: object, prefix: self.prefix + "\(name)[\(index)].")
                let value = read(&child)
                self.errors += child.allErrors
                if let value, child.allErrors.isEmpty { values.append(value) } else { failed = true }
            }
            return failed ? nil : values
        case let other?:
            self.fail(name, "type", "Expected an array, got \(other.typeName).")
            return nil
        }
    }

    /// An array of objects whose errors the caller handles one by one (a batch: one bad item does not fail the
    /// others). Each item's field names are prefixed with `name[index].` like any nested field.
    public mutating func independentObjects(_ name: String, count: ClosedRange<Int>) -> [JSONFields]? {
        self.known.insert(name)
        guard case .array(let items)? = self.object[name] else {
            self.fail(name, self.object[name] == nil ? "required" : "type", "Expected an array of objects.")
            return nil
        }
        guard count.contains(items.count) else {
            self.fail(name, "invalid", "Must have \(count.lowerBound) to \(count.upperBound) items.")
            return nil
        }
        return items.enumerated().map { index, item in
            guard case .object(let object) = item else {
                var invalid = JSONFields(object: [:], prefix: self.prefix + "\(name)[\(index)].")
                invalid.errors.append(FieldError(name: self.prefix + "\(name)[\(index)]", code: "type", reason: "Expected an object."))
                return invalid
            }
            return JSONFields(object: object, prefix: self.prefix + "\(name)[\(index)].")
        }
    }

    /// A text in Dutch and optionally English: `{"nl": "...", "en": "..."}`.
    public mutating func localized(_ name: String, required: Bool = false, maxLength: Int = 1000) -> LocalizedText? {
        self.nested(name, required: required) { text in
            let nl = text.string("nl", required: true, maxLength: maxLength)
            let en = text.string("en", maxLength: maxLength)
            return nl.map { LocalizedText(nl: $0, en: en) }
        }
    }

    /// Accepts fields this reader does not ask for, for bodies a third party shapes (a ZGW notification), where a
    /// field added by a newer version must not make us refuse the rest.
    public mutating func ignoreUnknownFields() {
        self.known.formUnion(self.object.keys)
    }

    /// An absolute `http` or `https` URL.
    public mutating func url(_ name: String, required: Bool = false) -> URL? {
        guard let text = self.string(name, required: required, maxLength: 2000) else { return nil }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil else {
            self.fail(name, "invalid", "Must be an absolute http or https URL.")
            return nil
        }
        return url
    }

    /// Records an error found while checking a field's value further.
    public mutating func fail(_ name: String, _ code: String, _ reason: String) {
        self.errors.append(FieldError(name: self.prefix + name, code: code, reason: reason))
    }

    /// The errors so far, and the fields this endpoint does not know.
    public var allErrors: [FieldError] {
        var errors = self.errors
        for name in self.object.keys.sorted() where !self.known.contains(name) {
            errors.append(FieldError(name: self.prefix + name, code: "unknown", reason: "This endpoint does not know this field."))
        }
        return errors
    }

    /// An RFC 3339 time with a zone. Fractions of a second are kept to the microsecond (PostgreSQL's precision);
    /// the system parser would keep milliseconds only.
    public static func parseTimestamp(_ text: String) -> Date? {
        var whole = text
        var fraction = 0.0
        if let dot = text.firstIndex(of: ".") {
            // Only right after the seconds: YYYY-MM-DDTHH:MM:SS.fff…
            guard text.distance(from: text.startIndex, to: dot) == 19 else { return nil }
            let digits = text[text.index(after: dot)...].prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Double("0." + digits.prefix(9)) else { return nil }
            fraction = value
            whole = String(text[..<dot]) + text[digits.endIndex...]
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: whole).map { $0.addingTimeInterval(fraction) }
    }
}
