import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// JSON responses, all encoded the same way: RFC 3339 UTC times, sorted keys.
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status = .ok, _ value: some Encodable, headers: HTTPFields = [:]) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try self.encoder.encode(value))))
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
