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
        /// Our unlock succeeded (the parts are complete): only the link may be left.
        var unlocked = false
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
            // Connected otherwise since: to its webhook if it has one, else it fetches the document.
            logger.notice("the department no longer takes documents in a Documenten API")
            try await self.database.withConnection { connection in
                try await SyncJobs.deliver(
                    document: payload.document, department: payload.department, jobs: JobQueue(client: self.database, logger: logger),
                    traceID: context.job.traceID, on: connection, logger: logger)
            }
            return
        }
        guard let target = try await self.target(payload, logger: logger) else { return }
        let zgw = ZGWClient(client: self.client, connector: connector, logger: logger)
        do {
            try await self.deliver(target, connector: connector, zgw: zgw, logger: logger)
        } catch let error as SyncError where Self.isDepartmentWide(error) {
            // The department is down, overloaded, or refuses our credentials: back off without spending attempts.
            throw try await self.client.gate.backOff(payload.department, after: error, logger: logger)
        } catch let error as SyncError where error.isTransient {
            // A server error about this one request: tried again with the job's backoff, spending an attempt.
            logger.warning("delivering a resident's upload failed; the job tries again later", metadata: ["error": "\(error)"])
            throw error
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
        Counter(label: "portal_sync_documents_delivered_total", dimensions: [SyncGauges.label(payload.department)]).increment()
        logger.info("a resident's upload reached the department's Documenten API")
    }

    /// No answer, 408, 429, 502–504 (the department is unavailable), or 401/403 (it refuses our credentials): about
    /// the department, not this document.
    static func isDepartmentWide(_ error: SyncError) -> Bool {
        switch error {
        case .unreachable, .tooLarge: true
        case .status(let status, _): [401, 403, 408, 429, 502, 503, 504].contains(status.code)
        case .refusedURL, .malformed: false
        }
    }

    private func deliver(_ target: Target, connector: Connector, zgw: ZGWClient, logger: Logger) async throws {
        guard let zaken = connector.settings.zaken, let documenten = connector.settings.documenten,
            let informatieobjecttype = connector.settings.informatieobjecttype, let bronorganisatie = connector.settings.bronorganisatie
        else { return }
        let document = target.document
        // Exactly one zaak: `identificatie` is unique per organisation only, and a Zaken API may serve several.
        var search = URLComponents(url: zaken.appendingPathComponent("zaken"), resolvingAgainstBaseURL: false)!
        search.queryItems = [URLQueryItem(name: "identificatie", value: target.reference)]
        let found = try await zgw.all(ZaakRef.self, search.url!, crs: true, maximumPages: 2)
        guard found.count == 1, let zaak = found.first else {
            throw SyncError.malformed(
                found.isEmpty ? "no zaak with this case's identificatie" : "more than one zaak with this case's identificatie")
        }

        var state = target
        if state.object == nil {
            state = try await self.create(
                target, documenten: documenten, informatieobjecttype: informatieobjecttype, bronorganisatie: bronorganisatie, zgw: zgw,
                logger: logger)
        }
        guard let object = state.object, let lock = state.lock else { return }
        try Self.check(state.parts, object: object, size: document.size, documenten: documenten)
        if !state.unlocked {
            struct State: Decodable {
                let locked: Bool
                let bestandsomvang: Int64?
                let bestandsdelen: [JSONValue]?
            }
            let current = try await zgw.get(State.self, object)
            if current.locked {
                try await self.upload(state.parts, of: document, lock: lock, zgw: zgw)
                let unlocked = try await zgw.send(.POST, object.appendingPathComponent("unlock"), json: ["lock": lock])
                guard unlocked.status == .noContent else { throw SyncError.status(unlocked.status, "POST unlock") }
            } else if current.bestandsomvang != document.size || !(current.bestandsdelen ?? []).isEmpty {
                // Unlocked, but not complete: someone forced the lock open. Not ours to link.
                throw SyncError.malformed("the informatieobject was unlocked before all its parts arrived")
            }
            // Unlocked by us now, or by an earlier attempt whose answer was lost (complete, no parts left).
            try await self.database.query("UPDATE documents SET zgw_unlocked_at = now() WHERE id = \(document.id)", logger: logger)
        }
        try await self.link(object, to: zaak.url, zaken: zaken, zgw: zgw)
    }

    /// Creates the informatieobject without content and stores it with its lock and parts before anything else: a
    /// retry continues with it. It carries the document's id as `identificatie`, so an object whose creation answer
    /// was lost is found instead of made twice (its lock is lost with the answer: an operator must unlock it).
    private func create(
        _ target: Target, documenten: URL, informatieobjecttype: URL, bronorganisatie: String, zgw: ZGWClient, logger: Logger
    ) async throws -> Target {
        let document = target.document
        let identificatie = document.id.uuidString.lowercased()
        var search = URLComponents(url: documenten.appendingPathComponent("enkelvoudiginformatieobjecten"), resolvingAgainstBaseURL: false)!
        search.queryItems = [
            URLQueryItem(name: "bronorganisatie", value: bronorganisatie), URLQueryItem(name: "identificatie", value: identificatie),
        ]
        guard try await zgw.all(ZaakRef.self, search.url!, maximumPages: 1).isEmpty else {
            throw SyncError.malformed(
                "an earlier attempt created the informatieobject but its answer was lost; unlock or remove it in the Documenten API")
        }
        let created = try zgw.decode(
            Created.self,
            try await zgw.send(
                .POST, documenten.appendingPathComponent("enkelvoudiginformatieobjecten"),
                json: NewInformatieobject(
                    identificatie: identificatie, bronorganisatie: bronorganisatie, creatiedatum: Self.day(document.storedAt),
                    titel: document.fileName, auteur: Self.author, taal: "nld", informatieobjecttype: informatieobjecttype.absoluteString,
                    formaat: document.contentType, bestandsnaam: document.fileName, bestandsomvang: document.size,
                    vertrouwelijkheidaanduiding: "zaakvertrouwelijk")),
            expecting: .created, what: "POST enkelvoudiginformatieobjecten")
        let partsJSON = String(decoding: try JSONEncoder().encode(created.bestandsdelen), as: UTF8.self)
        // Only if no other run stored one first (a stale worker): then that one is used and this one is removed.
        let stored = try await self.database.query(
            """
            UPDATE documents SET zgw_informatieobject = \(created.url.absoluteString), zgw_lock = \(created.lock),
                   zgw_parts = \(partsJSON)::jsonb
            WHERE id = \(document.id) AND zgw_informatieobject IS NULL
            RETURNING id
            """,
            logger: logger
        )
        if try await stored.decode(UUID.self).first(where: { _ in true }) != nil {
            var state = target
            (state.object, state.lock, state.parts) = (created.url, created.lock, created.bestandsdelen)
            return state
        }
        _ = try? await zgw.send(.DELETE, created.url, body: ByteBuffer(), contentType: "application/json")
        guard
            let stored = try await self.target(SyncJobs.Delivery(department: document.departmentID, document: document.id), logger: logger)
        else { throw SyncError.malformed("the document is gone") }
        return stored
    }

    /// The parts must be what the API promised: each under the Documenten API, numbered 1…n, none empty, adding up to
    /// the file (a stored part list is checked again on every attempt).
    static func check(_ parts: [Part], object: URL, size: Int64, documenten: URL) throws {
        guard SyncURLs.isURL(object, under: documenten), parts.allSatisfy({ SyncURLs.isURL($0.url, under: documenten) }) else {
            throw SyncError.malformed("the informatieobject or a part is not under the Documenten API")
        }
        guard parts.map(\.volgnummer).sorted() == Array(1...max(1, parts.count)), parts.allSatisfy({ $0.omvang > 0 }),
            parts.map(\.omvang).reduce(0, +) == size
        else { throw SyncError.malformed("the bestandsdelen are not numbered 1 to n or do not add up to the file's size") }
    }

    /// Uploads every part: `multipart/form-data` with `inhoud` (exactly the part's bytes) and `lock`.
    private func upload(_ parts: [Part], of document: DocumentRecord, lock: String, zgw: ZGWClient) async throws {
        guard let storage = self.storages[document.storage] else {
            throw SyncError.malformed("the document is in a storage this worker does not have")
        }
        var offset: Int64 = 0
        for part in parts.sorted(by: { $0.volgnummer < $1.volgnummer }) {
            let range = offset..<offset + part.omvang
            offset += part.omvang
            var content = ByteBuffer()
            try await storage.verifiedBytes(of: document, range: range) { chunk in content.writeImmutableBuffer(chunk) }
            let (body, contentType) = Self.form(content: content, fileName: document.fileName, lock: lock)
            let answer = try await zgw.send(.PUT, part.url, body: body, contentType: contentType)
            guard answer.status == .ok else { throw SyncError.status(answer.status, "PUT bestandsdelen \(part.volgnummer)") }
        }
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
        let identificatie: String
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
            case identificatie, bronorganisatie, creatiedatum, titel, auteur, taal, informatieobjecttype, formaat, bestandsnaam,
                bestandsomvang,
                vertrouwelijkheidaanduiding, inhoud
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.identificatie, forKey: .identificatie)
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
                SELECT c.reference, d.zgw_informatieobject, d.zgw_lock, d.zgw_parts::text, d.zgw_unlocked_at IS NOT NULL
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
