import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import PostgresNIO
import Shared

/// Delivers a resident's upload to the department's ZGW Documenten API and links it to the zaak (docs/SYNC.md,
/// "Delivering uploads"): create the enkelvoudiginformatieobject without content (which locks it and gives its
/// bestandsdelen), upload each part, unlock, then `POST /zaakinformatieobjecten`. The object's URL, lock and parts are
/// stored before any part is uploaded, so a retry after a crash continues with the same object; parts are uploaded
/// again whole (a PUT of a part is idempotent), and a link that already exists counts as made.
struct DocumentDelivery: Sendable {
    let client: DepartmentClient
    let database: PostgresClient
    let storages: [DocumentStorageKind: any DocumentStorage]

    /// Who the Documenten API records as author: never the resident's name or number.
    static let author = "Inwoner, via Mijn Gemeente"

    func register(in registry: inout JobRegistry) {
        registry.register(SyncJobs.deliverDocument) { payload, context in try await self.deliver(payload, context: context) }
    }

    struct Target {
        var document: DocumentRecord
        var reference: String
        var object: URL?
        var lock: String?
        var parts: [Part]
    }

    struct Part: Codable, Sendable {
        let url: URL
        let volgnummer: Int
        let omvang: Int64
    }

    struct Created: Decodable {
        let url: URL
        let lock: String
        let bestandsdelen: [Part]
    }

    struct ZaakRef: Decodable, Sendable {
        let url: URL
    }

    func deliver(_ payload: SyncJobs.Delivery, context: JobContext) async throws {
        var logger = context.logger
        logger[metadataKey: "portal.department.id"] = "\(payload.department)"
        logger[metadataKey: "portal.document.id"] = "\(payload.document.uuidString.lowercased())"
        let connector = try await self.database.withConnection { connection in
            try await ConnectorStore().find(departmentID: payload.department, on: connection, logger: logger)
        }
        guard let connector, connector.kind == .zgw, connector.settings.deliversDocuments else {
            logger.notice("the department no longer takes documents in a Documenten API; it fetches this one")
            return
        }
        guard let target = try await self.target(payload, logger: logger) else { return }
        let zgw = ZGWClient(client: self.client, connector: connector, logger: logger)
        do {
            try await self.deliver(target, connector: connector, zgw: zgw, logger: logger)
        } catch let error as SyncError where error.isTransient {
            throw try await self.client.gate.backOff(payload.department, after: error, logger: logger)
        } catch let error as SyncError {
            // About this document only: recorded for operators; it stays pending and the department can still fetch it.
            logger.warning("a resident's upload cannot be delivered; the department can still fetch it", metadata: ["error": "\(error)"])
            try await self.database.transaction(logger: logger) { connection in
                try await connection.query(
                    """
                    INSERT INTO sync_refusals (department_id, reference, reason)
                    VALUES (\(payload.department), \(target.reference), \("delivering a document: " + error.description))
                    """,
                    logger: logger
                )
                try await self.client.gate.succeeded(payload.department, on: connection)
            }
            return
        }
        try await self.database.transaction(logger: logger) { connection in
            try await DocumentStore().markDelivered(payload.document, on: connection, logger: logger)
            try await self.client.gate.succeeded(payload.department, on: connection)
        }
        Counter(label: "portal_sync_documents_delivered_total", dimensions: [("department", "\(payload.department)")]).increment()
        logger.info("a resident's upload reached the department's Documenten API")
    }

    private func deliver(_ target: Target, connector: Connector, zgw: ZGWClient, logger: Logger) async throws {
        guard let zaken = connector.settings.zaken, let documenten = connector.settings.documenten,
            let informatieobjecttype = connector.settings.informatieobjecttype, let bronorganisatie = connector.settings.bronorganisatie
        else { return }
        var components = URLComponents(url: zaken.appendingPathComponent("zaken"), resolvingAgainstBaseURL: false)!
        components.queryItems = [URLQueryItem(name: "identificatie", value: target.reference)]
        let zaak = try await zgw.all(ZaakRef.self, components.url!, crs: true, maximumPages: 1).first
        guard let zaak else { throw SyncError.malformed("no zaak with this case's identificatie") }

        var (object, lock, parts) = (target.object, target.lock, target.parts)
        if object == nil {
            let document = target.document
            let created = try zgw.decode(
                Created.self,
                try await zgw.send(
                    .POST, documenten.appendingPathComponent("enkelvoudiginformatieobjecten"),
                    json: NewInformatieobject(
                        bronorganisatie: bronorganisatie, creatiedatum: Self.day(document.storedAt), titel: document.fileName,
                        auteur: Self.author, taal: "nld", informatieobjecttype: informatieobjecttype.absoluteString,
                        formaat: document.contentType, bestandsnaam: document.fileName, bestandsomvang: document.size,
                        vertrouwelijkheidaanduiding: "zaakvertrouwelijk")),
                expecting: .created, what: "POST enkelvoudiginformatieobjecten")
            guard created.bestandsdelen.map(\.omvang).reduce(0, +) == document.size else {
                throw SyncError.malformed("the bestandsdelen do not add up to the file's size")
            }
            (object, lock, parts) = (created.url, created.lock, created.bestandsdelen)
            // Before any part: a retry finds this object instead of creating another.
            let partsJSON = String(decoding: try JSONEncoder().encode(created.bestandsdelen), as: UTF8.self)
            try await self.database.query(
                """
                UPDATE documents SET zgw_informatieobject = \(created.url.absoluteString), zgw_lock = \(created.lock),
                       zgw_parts = \(partsJSON)::jsonb
                WHERE id = \(document.id)
                """,
                logger: logger
            )
        }
        guard let object, let lock else { return }
        struct Lock: Decodable { let locked: Bool }
        // An earlier attempt that got as far as unlocking: only the link is left to make.
        if target.object != nil, try await zgw.get(Lock.self, object).locked == false {
            return try await self.link(object, to: zaak.url, zaken: zaken, zgw: zgw)
        }
        guard let storage = self.storages[target.document.storage] else {
            throw SyncError.malformed("the document is in a storage this worker does not have")
        }
        var offset: Int64 = 0
        for part in parts.sorted(by: { $0.volgnummer < $1.volgnummer }) {
            let range = offset..<offset + part.omvang
            offset += part.omvang
            var content = ByteBuffer()
            try await storage.verifiedBytes(of: target.document, range: range) { chunk in content.writeImmutableBuffer(chunk) }
            let (body, contentType) = Self.form(content: content, fileName: target.document.fileName, lock: lock)
            let answer = try await zgw.send(.PUT, part.url, body: body, contentType: contentType)
            guard answer.status == .ok else { throw SyncError.status(answer.status, "PUT bestandsdelen \(part.volgnummer)") }
        }
        let unlocked = try await zgw.send(.POST, object.appendingPathComponent("unlock"), json: ["lock": lock])
        if unlocked.status != .noContent {
            // Unlocked by an earlier attempt that died before it got the answer: the object says so.
            guard try await zgw.get(Lock.self, object).locked == false else { throw SyncError.status(unlocked.status, "POST unlock") }
        }
        try await self.link(object, to: zaak.url, zaken: zaken, zgw: zgw)
    }

    /// Links the informatieobject to the zaak, once.
    private func link(_ object: URL, to zaak: URL, zaken: URL, zgw: ZGWClient) async throws {
        let link = try await zgw.send(
            .POST, zaken.appendingPathComponent("zaakinformatieobjecten"),
            json: ["informatieobject": object.absoluteString, "zaak": zaak.absoluteString])
        // 400 with a `unique` error: linked before (a retry after this step).
        guard link.status == .created || link.status == .badRequest && Self.says(link, "unique") else {
            throw SyncError.status(link.status, "POST zaakinformatieobjecten")
        }
    }

    struct NewInformatieobject: Encodable {
        let bronorganisatie: String
        let creatiedatum: String
        let titel: String
        let auteur: String
        let taal: String
        let informatieobjecttype: String
        let formaat: String
        let bestandsnaam: String
        let bestandsomvang: Int64
        let vertrouwelijkheidaanduiding: String
        let inhoud: String? = nil

        enum CodingKeys: String, CodingKey {
            case bronorganisatie, creatiedatum, titel, auteur, taal, informatieobjecttype, formaat, bestandsnaam, bestandsomvang,
                vertrouwelijkheidaanduiding, inhoud
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.bronorganisatie, forKey: .bronorganisatie)
            try container.encode(self.creatiedatum, forKey: .creatiedatum)
            try container.encode(self.titel, forKey: .titel)
            try container.encode(self.auteur, forKey: .auteur)
            try container.encode(self.taal, forKey: .taal)
            try container.encode(self.informatieobjecttype, forKey: .informatieobjecttype)
            try container.encode(self.formaat, forKey: .formaat)
            try container.encode(self.bestandsnaam, forKey: .bestandsnaam)
            try container.encode(self.bestandsomvang, forKey: .bestandsomvang)
            try container.encode(self.vertrouwelijkheidaanduiding, forKey: .vertrouwelijkheidaanduiding)
            // No content now: it comes in parts.
            try container.encodeNil(forKey: .inhoud)
        }
    }

    /// The document and what an earlier attempt stored of its delivery; nil when it is delivered or gone.
    private func target(_ payload: SyncJobs.Delivery, logger: Logger) async throws -> Target? {
        try await self.database.withConnection { connection in
            guard
                let document = try await DocumentStore().find(
                    payload.document, department: payload.department, on: connection, logger: logger),
                document.deliveredAt == nil, let caseID = document.caseID
            else { return nil }
            let rows = try await connection.query(
                """
                SELECT c.reference, d.zgw_informatieobject, d.zgw_lock, d.zgw_parts::text
                FROM documents d JOIN cases c ON c.id = d.case_id WHERE d.id = \(document.id) AND c.id = \(caseID)
                """,
                logger: logger
            )
            for try await (reference, object, lock, parts) in rows.decode((String, String?, String?, String?).self) {
                let decoded = try parts.map { try JSONDecoder().decode([Part].self, from: Data($0.utf8)) } ?? []
                return Target(
                    document: document, reference: reference, object: object.flatMap(URL.init(string:)), lock: lock, parts: decoded)
            }
            return nil
        }
    }

    /// A bestandsdeel upload: `multipart/form-data` with `inhoud` (the bytes) and `lock`.
    static func form(content: ByteBuffer, fileName: String, lock: String) -> (ByteBuffer, String) {
        let boundary = "portal-\(UUID().uuidString.lowercased())"
        var body = ByteBuffer()
        body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"lock\"\r\n\r\n\(lock)\r\n")
        body.writeString(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"inhoud\"; filename=\"part\"\r\n"
                + "Content-Type: application/octet-stream\r\n\r\n")
        body.writeImmutableBuffer(content)
        body.writeString("\r\n--\(boundary)--\r\n")
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    /// Whether a problem answer mentions `code` (ZGW puts validation codes in `invalidParams[].code`).
    static func says(_ answer: DepartmentClient.Answer, _ code: String) -> Bool {
        String(buffer: answer.body).contains("\"\(code)\"")
    }

    /// The date of `date` in the Netherlands, as the Documenten API wants `creatiedatum`.
    static func day(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Europe/Amsterdam")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 1970, parts.month ?? 1, parts.day ?? 1)
    }
}
