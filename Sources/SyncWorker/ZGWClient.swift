import Foundation
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Shared

/// Reading a ZGW zaaksysteem (the VNG Zaken and Catalogi APIs) for one connector: every request with a fresh
/// HS256 JWT, `Accept-Crs` where the Zaken API wants it, pagination followed (under the connector's roots only,
/// like every URL), answers decoded into the few fields we use.
struct ZGWClient: Sendable {
    let client: DepartmentClient
    let connector: Connector
    let logger: Logger

    /// Who we are in the zaaksysteem's audit trail: a pseudonym for the portal, never a resident or a BSN.
    static let userID = "mijn-gemeente-portaal"
    static let userRepresentation = "Mijn Gemeente (portaal, synchronisatie)"

    struct Claims: JWTPayload {
        let iss: String
        let iat: Int
        let client_id: String
        let user_id: String
        let user_representation: String

        func verify(using algorithm: some JWTAlgorithm) throws {}
    }

    /// `Authorization: Bearer <JWT>`, made per request: Open Zaak accepts a token for a limited time after `iat`.
    func authorization() async throws -> String {
        guard let clientID = self.connector.clientID, let secret = self.connector.secret, secret.utf8.count >= 32 else {
            throw SyncError.malformed("the ZGW connector has no client id or a secret shorter than 32 bytes: connect it again")
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        let claims = Claims(
            // A few seconds back: Open Zaak refuses an `iat` in its future, without leeway, and clocks differ a little.
            iss: clientID, iat: Int(Date().timeIntervalSince1970) - 5, client_id: clientID, user_id: Self.userID,
            user_representation: Self.userRepresentation)
        return "Bearer " + (try await keys.sign(claims))
    }

    /// GETs and decodes one resource. `crs`: send `Accept-Crs: EPSG:4326` (the Zaken API's `/zaken` endpoints
    /// answer 412 without it).
    func get<T: Decodable>(_ type: T.Type, _ url: URL, crs: Bool = false) async throws -> T {
        var headers = HTTPHeaders()
        headers.add(name: "Authorization", value: try await self.authorization())
        if crs { headers.add(name: "Accept-Crs", value: "EPSG:4326") }
        let answer = try await self.client.get(url, from: self.connector, headers: headers, logger: self.logger)
        guard answer.status == .ok else { throw SyncError.status(answer.status, "GET \(url.path)") }
        return try Self.decode(T.self, answer.body, what: "at \(url.path)")
    }

    /// Decodes a ZGW API's JSON body, after ``JSONLimits`` found it within the standard limits: a department's
    /// server is not trusted to send sane nesting or sizes either.
    static func decode<T: Decodable>(_ type: T.Type, _ body: ByteBuffer, what: String) throws(SyncError) -> T {
        let data = Data(body.readableBytesView)
        if let violation = JSONLimits.standard.check(data) {
            throw SyncError.malformed("\(T.self) \(what): \(JSONFields.ParseError.overLimit(violation))")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw SyncError.malformed("\(T.self) \(what): \(Self.describe(error))")
        }
    }

    /// Sends `body` (JSON, or the given content type) with a fresh JWT; the answer whatever its status.
    func send(
        _ method: HTTPMethod, _ url: URL, json: some Encodable, crs: Bool = false
    ) async throws -> DepartmentClient.Answer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return try await self.send(
            method, url, body: ByteBuffer(bytes: try encoder.encode(json)), contentType: "application/json", crs: crs)
    }

    func send(
        _ method: HTTPMethod, _ url: URL, body: ByteBuffer, contentType: String, crs: Bool = false
    ) async throws -> DepartmentClient.Answer {
        var headers = HTTPHeaders()
        headers.add(name: "Authorization", value: try await self.authorization())
        headers.add(name: "Content-Type", value: contentType)
        if crs {
            headers.add(name: "Accept-Crs", value: "EPSG:4326")
            headers.add(name: "Content-Crs", value: "EPSG:4326")
        }
        return try await self.client.send(method, url, body: body, from: self.connector, headers: headers, logger: self.logger)
    }

    /// Decodes an answer that must have `status`.
    func decode<T: Decodable>(
        _ type: T.Type, _ answer: DepartmentClient.Answer, expecting status: HTTPResponseStatus, what: String
    ) throws -> T {
        guard answer.status == status else { throw SyncError.status(answer.status, what) }
        return try Self.decode(T.self, answer.body, what: "from \(what)")
    }

    /// Every result of a paginated list, following `next` (each page's URL is checked like any other).
    func all<T: Decodable & Sendable>(_ type: T.Type, _ url: URL, crs: Bool = false, maximumPages: Int = 1000) async throws -> [T] {
        var results: [T] = []
        var next: URL? = url
        var pages = 0
        while let page = next {
            pages += 1
            guard pages <= maximumPages else { throw SyncError.malformed("more than \(maximumPages) pages at \(url.path)") }
            let list = try await self.get(ZGWPage<T>.self, page, crs: crs)
            results += list.results
            next = list.next
        }
        return results
    }

    /// A decoding error in a line, without the values it saw.
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "not JSON" }
        switch error {
        case .keyNotFound(let key, let context): return "missing \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "invalid at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        @unknown default: return "undecodable"
        }
    }
}

// MARK: The resources, as far as we read them (VNG Zaken API 1.x and Catalogi API 1.x)

struct ZGWPage<T: Decodable & Sendable>: Decodable, Sendable {
    let next: URL?
    let results: [T]
}

struct ZGWStatus: Decodable, Sendable {
    let url: URL
    let zaak: URL
    let statustype: URL
    let datumStatusGezet: String
}

struct ZGWZaak: Decodable, Sendable {
    let url: URL
    let identificatie: String
    let omschrijving: String?
    let zaaktype: URL
    let registratiedatum: String?
    let startdatum: String
    let uiterlijkeEinddatumAfdoening: String?
    let einddatumGepland: String?
    let vertrouwelijkheidaanduiding: String
    /// The zaak's current status.
    let status: URL?
}

struct ZGWZaakType: Codable, Sendable {
    let url: URL
    let identificatie: String
    let omschrijving: String
    let indicatieInternOfExtern: String
    /// ISO 8601, e.g. `P56D`.
    let doorlooptijd: String?
}

struct ZGWStatusType: Codable, Sendable {
    let url: URL
    let omschrijving: String
    /// The text meant for the initiator.
    let statustekst: String?
    let volgnummer: Int
    let isEindstatus: Bool?
    let informeren: Bool?
}

struct ZGWRol: Decodable, Sendable {
    let betrokkeneType: String
    let betrokkeneIdentificatie: Identificatie?

    struct Identificatie: Decodable, Sendable {
        /// `natuurlijk_persoon`.
        let inpBsn: String?
        /// `niet_natuurlijk_persoon`: Open Zaak's `kvkNummer` (the standard's `innNnpId` is an RSIN, not a KvK number).
        let kvkNummer: String?
    }
}
