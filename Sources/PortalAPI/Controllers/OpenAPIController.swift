import Foundation
import Hummingbird
import NIOCore

/// `GET /api/v1/openapi.json`: the API's contract, without authentication (NL API Design Rules). The document is
/// a resource of this target; a test holds it against the registered routes, so it cannot drift from the code.
struct OpenAPIController {
    let document: ByteBuffer

    init() throws {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json") else {
            throw OpenAPIDocumentMissing()
        }
        self.document = ByteBuffer(bytes: try Data(contentsOf: url))
    }

    func register(on routes: APIRoutes) {
        let document = self.document
        routes.open(.get, "/api/v1/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: document))
        }
    }
}

struct OpenAPIDocumentMissing: Error, CustomStringConvertible {
    var description: String { "openapi.json is missing from the PortalAPI resources" }
}
