import Hummingbird
import Shared

/// A request's query parameters, read with every error collected, so that one 400 lists them all (like
/// ``JSONFields`` for bodies).
struct QueryReader {
    private let request: Request
    private(set) var errors: [FieldError] = []

    init(_ request: Request) {
        self.request = request
    }

    func string(_ name: String) -> String? {
        self.request.uri.queryParameters[Substring(name)].map(String.init)
    }

    /// `limit`: a whole number from 1 to `maximum`, or `defaultValue` when absent.
    mutating func limit(default defaultValue: Int, maximum: Int) -> Int {
        guard let text = self.string("limit") else { return defaultValue }
        guard let value = Int(text), (1...maximum).contains(value) else {
            self.errors.append(FieldError(name: "limit", code: "invalid", reason: "Must be a whole number from 1 to \(maximum)."))
            return defaultValue
        }
        return value
    }

    /// `cursor`: the `next` of a previous page.
    mutating func cursor() -> PageCursor? {
        guard let text = self.string("cursor") else { return nil }
        guard let cursor = PageCursor(token: text) else {
            self.errors.append(FieldError(name: "cursor", code: "invalid", reason: "Use the 'next' value of the previous page."))
            return nil
        }
        return cursor
    }

    /// A position from a previous page (`after`), 0 when absent.
    mutating func position(_ name: String) -> Int64 {
        guard let text = self.string(name) else { return 0 }
        guard let value = Int64(text), value >= 0 else {
            self.errors.append(FieldError(name: name, code: "invalid", reason: "Use the 'next' value of the previous page."))
            return 0
        }
        return value
    }

    /// One of a fixed set of values.
    mutating func choice<T: RawRepresentable<String> & CaseIterable>(_ name: String, _ type: T.Type) -> T? {
        guard let text = self.string(name) else { return nil }
        guard let value = T(rawValue: text) else {
            let allowed = T.allCases.map { "'\($0.rawValue)'" }.joined(separator: " or ")
            self.errors.append(FieldError(name: name, code: "invalid", reason: "Must be \(allowed)."))
            return nil
        }
        return value
    }

    /// Throws a 400 listing every error so far.
    func finish() throws {
        if !self.errors.isEmpty { throw Problem.invalidInput(self.errors) }
    }
}
