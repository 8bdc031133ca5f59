import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Shared

/// Reads a request's JSON object body and its fields, collecting every field error before answering, so that one
/// 400 lists all of them (NL API Design Rules) instead of the first one a `Decodable` trips over.
///
/// ```swift
/// var body = try await JSONBody.read(request, context: context)
/// let locale = body.choice("locale", Resident.Locale.self)
/// try body.finish()  // throws a 400 listing every error, including unknown fields
/// ```
struct JSONBody {
    private let object: [String: JSONValue]
    private var errors: [FieldError] = []
    private var known: Set<String> = []

    init(object: [String: JSONValue]) {
        self.object = object
    }

    /// Checks the media type (415), reads at most `limit` bytes (413), and parses a JSON object (400).
    static func read(
        _ request: Request,
        context: some RequestContext,
        limit: Int = 64 * 1024,
        mediaTypes: Set<String> = ["application/json"]
    ) async throws -> JSONBody {
        guard let type = MediaRange.type(of: request.headers[.contentType]), mediaTypes.contains(type) else {
            throw Problem.unsupportedMediaType(mediaTypes.sorted().joined(separator: " or "))
        }
        let buffer = try await request.body.collect(upTo: limit)
        return try self.parse(buffer)
    }

    static func parse(_ buffer: ByteBuffer) throws -> JSONBody {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))
        } catch {
            throw Problem.badRequest("invalid-json", "The body is not valid JSON.")
        }
        guard case .object(let object) = value else {
            throw Problem.badRequest("invalid-json", "The body must be a JSON object, not \(value.typeName).")
        }
        return JSONBody(object: object)
    }

    var isEmpty: Bool { self.object.isEmpty }

    func contains(_ name: String) -> Bool { self.object[name] != nil }

    /// A string field; `nil` (and an error when `required`) when it is absent, null or not a valid string.
    mutating func string(_ name: String, required: Bool = false, maxLength: Int = 1000) -> String? {
        self.known.insert(name)
        switch self.object[name] {
        case nil, .null?:
            if required { self.fail(name, "required", "This field is required.") }
            return nil
        case .string(let value)?:
            if value.count > maxLength {
                self.fail(name, "too-long", "At most \(maxLength) characters.")
                return nil
            }
            return value
        case let other?:
            self.fail(name, "type", "Expected a string, got \(other.typeName).")
            return nil
        }
    }

    /// A field that may be set to a string or to null: `.none` when absent, `.some(nil)` when null.
    mutating func nullableString(_ name: String, maxLength: Int = 1000) -> String?? {
        guard let value = self.object[name] else {
            self.known.insert(name)
            return .none
        }
        if value == .null {
            self.known.insert(name)
            return .some(nil)
        }
        guard let string = self.string(name, maxLength: maxLength) else { return .none }
        return .some(string)
    }

    /// A string field with a fixed set of values.
    mutating func choice<T: RawRepresentable<String> & CaseIterable>(_ name: String, _ type: T.Type, required: Bool = false) -> T? {
        guard let raw = self.string(name, required: required) else { return nil }
        guard let value = T(rawValue: raw) else {
            let allowed = T.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            self.fail(name, "invalid", "Must be one of \(allowed).")
            return nil
        }
        return value
    }

    /// Records an error found while checking a field's value further.
    mutating func fail(_ name: String, _ code: String, _ reason: String) {
        self.errors.append(FieldError(name: name, code: code, reason: reason))
    }

    /// Throws a 400 listing every field error so far, including fields this endpoint does not know.
    func finish() throws {
        var errors = self.errors
        for name in self.object.keys.sorted() where !self.known.contains(name) {
            errors.append(FieldError(name: name, code: "unknown", reason: "This endpoint does not know this field."))
        }
        if !errors.isEmpty { throw Problem.invalidInput(errors) }
    }
}
