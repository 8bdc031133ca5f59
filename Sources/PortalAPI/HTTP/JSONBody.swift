import Foundation
import Hummingbird
import NIOCore
import Shared

/// A request body's JSON fields (``JSONFields``, shared with the sync worker), with the HTTP side: the media type,
/// the size limit, and the 400 that lists every field error.
typealias JSONBody = JSONFields

extension JSONFields {
    /// The largest JSON body an endpoint reads (the batch endpoint excepted), and so the largest that
    /// ``ResponseDeadlineResponder`` reads ahead of the handler.
    static let bodyLimit = 64 * 1024

    /// Checks the media type (415), reads at most `limit` bytes (413), and parses a JSON object (400).
    static func read(
        _ request: Request,
        context: some RequestContext,
        limit: Int = Self.bodyLimit,
        mediaTypes: Set<String> = ["application/json"]
    ) async throws -> JSONFields {
        guard let type = MediaRange.type(of: request.headers[.contentType]), mediaTypes.contains(type) else {
            throw Problem.unsupportedMediaType(mediaTypes.sorted().joined(separator: " or "))
        }
        let buffer = try await request.body.collect(upTo: limit)
        return try self.parse(buffer)
    }

    static func parse(_ buffer: ByteBuffer) throws -> JSONFields {
        do {
            return try JSONFields.parse(Data(buffer.readableBytesView))
        } catch .notJSON {
            throw Problem.badRequest("invalid-json", "The body is not valid JSON.")
        } catch .notAnObject(let type) {
            throw Problem.badRequest("invalid-json", "The body must be a JSON object, not \(type).")
        } catch .overLimit(let violation) {
            throw Problem.badRequest("too-complex", "The body is \(JSONFields.ParseError.overLimit(violation)): split it up.")
        }
    }

    /// Throws a 400 listing every field error so far, including fields this endpoint does not know.
    func finish() throws {
        let errors = self.allErrors
        if !errors.isEmpty { throw Problem.invalidInput(errors) }
    }

}
