import Foundation
import HTTPTypes
import Hummingbird
import JWTKit
import Logging
import NIOCore
import Synchronization

@testable import Shared
@testable import SyncWorker

/// A department's own case system, as the sync worker meets it, on a free loopback port: a change feed
/// (docs/FEED.md), and a ZGW zaaksysteem (the Zaken and Catalogi resources the sync worker reads, with bodies shaped
/// like the examples in the VNG OpenAPI specifications, paginated, checking our JWT and `Accept-Crs` as Open Zaak
/// does). A test fills it, and can make it slow, failing, or answer with garbage. It records every request it gets,
/// so a test can check what the sync worker asked for and with which credentials.
final class DepartmentSimulator: Sendable {
    enum Behaviour: Sendable, Equatable {
        case normal
        /// Every request answers 500.
        case failing
        /// Every request answers 200 with a body that is not JSON.
        case garbage
        /// Every request waits this long before it answers.
        case slow(Duration)
    }

    struct Request: Sendable {
        let path: String
        let query: [String: String]
        let authorization: String?
        /// The W3C `traceparent` the request carried.
        var traceparent: String? = nil
    }

    private struct State {
        var changes: [String] = []
        var behaviour: Behaviour = .normal
        var requests: [Request] = []
        /// ZGW resources by path.
        var resources: [String: JSONValue] = [:]
        /// The order zaken were added in, for the list.
        var zaken: [String] = []
        /// Rollen by zaak URL, statustypen by zaaktype URL.
        var rollen: [String: [JSONValue]] = [:]
        var statustypen: [String: [JSONValue]] = [:]
        var zgwCount = 0
        var informatieobjecten: [String: Informatieobject] = [:]
        /// Part id to (object id, index).
        var parts: [String: (String, Int)] = [:]
        var links: [(informatieobject: String, zaak: String)] = []
        var partUploads = 0
        /// Answer this many link requests with a 500 first.
        var failLinks = 0
    }

    /// The secret our JWTs must be signed with, and the client id they must carry.
    static let zgwSecret = "zgw-test-secret-of-at-least-32-bytes"
    static let zgwClientID = "mijn-gemeente"

    let port: Int
    private let state = Mutex(State())

    /// The feed's base URL, as an operator configures it.
    var feedURL: URL { URL(string: "http://127.0.0.1:\(self.port)/feed")! }

    private init(port: Int) { self.port = port }

    /// Runs a simulator on a free loopback port for the duration of `body`.
    static func with<T: Sendable>(logger: Logger, _ body: (DepartmentSimulator) async throws -> T) async throws -> T {
        let holder = Mutex<DepartmentSimulator?>(nil)
        let router = Router()
        router.get("/feed/changes") { request, _ in try await holder.withLock { $0! }.changes(request) }
        router.get("/zaken/api/v1/zaken") { request, _ in try await holder.withLock { $0! }.zgw(request, list: .zaken) }
        router.get("/zaken/api/v1/rollen") { request, _ in try await holder.withLock { $0! }.zgw(request, list: .rollen) }
        router.get("/catalogi/api/v1/statustypen") { request, _ in try await holder.withLock { $0! }.zgw(request, list: .statustypen) }
        router.get("/zaken/api/v1/{kind}/{id}") { request, _ in try await holder.withLock { $0! }.zgw(request, list: nil) }
        router.get("/catalogi/api/v1/{kind}/{id}") { request, _ in try await holder.withLock { $0! }.zgw(request, list: nil) }
        router.post("/documenten/api/v1/enkelvoudiginformatieobjecten") { request, _ in
            try await holder.withLock { $0! }.createInformatieobject(request)
        }
        router.put("/documenten/api/v1/bestandsdelen/{id}") { request, context in
            try await holder.withLock { $0! }.uploadPart(request, id: context.parameters.get("id") ?? "")
        }
        router.post("/documenten/api/v1/enkelvoudiginformatieobjecten/{id}/unlock") { request, context in
            try await holder.withLock { $0! }.unlock(request, id: context.parameters.get("id") ?? "")
        }
        router.get("/documenten/api/v1/enkelvoudiginformatieobjecten") { request, _ in
            try await holder.withLock { $0! }.searchInformatieobjecten(request)
        }
        router.get("/documenten/api/v1/enkelvoudiginformatieobjecten/{id}") { request, context in
            try await holder.withLock { $0! }.informatieobject(request, id: context.parameters.get("id") ?? "")
        }
        router.post("/zaken/api/v1/zaakinformatieobjecten") { request, _ in try await holder.withLock { $0! }.link(request) }
        return try await withTestServer(router, logger: logger) { port in
            let simulator = DepartmentSimulator(port: port)
            holder.withLock { $0 = simulator }
            return try await body(simulator)
        }
    }

    // MARK: Controls

    /// Appends changes to the feed, each a JSON object as the feed contract shapes it.
    func append(_ changes: [String]) { self.state.withLock { $0.changes += changes } }

    func setBehaviour(_ behaviour: Behaviour) { self.state.withLock { $0.behaviour = behaviour } }

    var requests: [Request] { self.state.withLock { $0.requests } }

    // MARK: The feed

    /// `GET /feed/changes?after=<cursor>&limit=<n>`: the cursor is the number of changes before the page.
    private func changes(_ request: Hummingbird.Request) async throws -> Response {
        let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { $1 })
        let (behaviour, changes) = self.state.withLock { state in
            state.requests.append(
                Request(
                    path: request.uri.path, query: query, authorization: request.headers[.authorization],
                    traceparent: request.headers[.traceparent]))
            return (state.behaviour, state.changes)
        }
        switch behaviour {
        case .normal: break
        case .failing: return Response(status: .internalServerError)
        case .garbage: return Self.json("<html>maintenance</html>")
        case .slow(let delay): try await Task.sleep(for: delay)
        }
        let after = Int(query["after"] ?? "0") ?? 0
        let limit = Int(query["limit"] ?? "100") ?? 100
        let page = changes.dropFirst(after).prefix(limit)
        return Self.json(#"{"changes": [\#(page.joined(separator: ","))], "next": "\#(after + page.count)"}"#)
    }

    // MARK: ZGW

    var base: String { "http://127.0.0.1:\(self.port)" }
    var zakenRoot: URL { URL(string: "\(self.base)/zaken/api/v1/")! }
    var catalogiRoot: URL { URL(string: "\(self.base)/catalogi/api/v1/")! }

    /// Defines a zaaktype with three statustypen (the middle one does not inform); returns its URL.
    @discardableResult
    func addZaaktype(_ identificatie: String = "OMGVERG", extern: Bool = true) -> String {
        self.state.withLock { state in
            state.zgwCount += 1
            let id = "\(state.zgwCount)0000000-0000-4000-8000-000000000000"
            let url = "\(self.base)/catalogi/api/v1/zaaktypen/\(id)"
            let steps: [(String, String, Bool, Bool)] = [
                ("Ontvangen", "Wij hebben uw aanvraag ontvangen.", true, false),
                ("In behandeling", "", false, false),
                ("Besluit genomen", "Er is een besluit genomen over uw aanvraag.", true, true),
            ]
            var statustypen: [JSONValue] = []
            for (index, (omschrijving, tekst, informeren, eind)) in steps.enumerated() {
                let statustype = "\(self.base)/catalogi/api/v1/statustypen/\(id.prefix(8))-0000-4000-8000-00000000000\(index + 1)"
                let body: JSONValue = .object([
                    "url": .string(statustype), "omschrijving": .string(omschrijving), "omschrijvingGeneriek": .string(""),
                    "statustekst": .string(tekst), "zaaktype": .string(url), "volgnummer": .number(Double(index + 1)),
                    "isEindstatus": .bool(eind), "informeren": .bool(informeren),
                ])
                state.resources[URL(string: statustype)!.path] = body
                statustypen.append(body)
            }
            state.resources[URL(string: url)!.path] = .object([
                "url": .string(url), "identificatie": .string(identificatie), "omschrijving": .string("Omgevingsvergunning"),
                "vertrouwelijkheidaanduiding": .string("openbaar"), "doel": .string("Een vergunning verlenen."),
                "aanleiding": .string("Een aanvraag."), "indicatieInternOfExtern": .string(extern ? "extern" : "intern"),
                "handelingInitiator": .string("aanvragen"), "onderwerp": .string("Omgevingsvergunning"),
                "handelingBehandelaar": .string("behandelen"), "doorlooptijd": .string("P56D"), "servicenorm": .null,
                "opschortingEnAanhoudingMogelijk": .bool(false), "verlengingMogelijk": .bool(true),
                "statustypen": .array(statustypen.compactMap { if case .object(let fields) = $0 { fields["url"] } else { nil } }),
                "catalogus": .string("\(self.base)/catalogi/api/v1/catalogussen/1"),
            ])
            state.statustypen[url] = statustypen
            return url
        }
    }

    /// Adds a zaak of `zaaktype` for the person with `bsn` (or a company with `kvk`); returns its URL.
    @discardableResult
    func addZaak(
        _ identificatie: String, zaaktype: String, bsn: String? = nil, kvk: String? = nil, confidentiality: String = "openbaar"
    ) -> String {
        self.state.withLock { state in
            state.zgwCount += 1
            let id = UUID().uuidString.lowercased()
            let url = "\(self.base)/zaken/api/v1/zaken/\(id)"
            state.resources[URL(string: url)!.path] = .object([
                "url": .string(url), "uuid": .string(id), "identificatie": .string(identificatie), "bronorganisatie": .string("002220647"),
                "omschrijving": .string("Aanvraag omgevingsvergunning dakkapel"), "toelichting": .string(""),
                "zaaktype": .string(zaaktype), "registratiedatum": .string("2026-11-02"),
                "verantwoordelijkeOrganisatie": .string("002220647"),
                "startdatum": .string("2026-11-02"), "einddatum": .null, "einddatumGepland": .null,
                "uiterlijkeEinddatumAfdoening": .string("2026-12-28"), "publicatiedatum": .null, "communicatiekanaal": .string(""),
                "productenOfDiensten": .array([]), "vertrouwelijkheidaanduiding": .string(confidentiality),
                "betalingsindicatie": .string(""), "zaakgeometrie": .null, "status": .null, "archiefnominatie": .null,
            ])
            state.zaken.append(URL(string: url)!.path)
            var identification: [String: JSONValue] = [:]
            if let bsn {
                identification = [
                    "inpBsn": .string(bsn), "anpIdentificatie": .string(""), "inpA_nummer": .string(""),
                    "geslachtsnaam": .string("Jansen"), "voorvoegselGeslachtsnaam": .string(""), "voorletters": .string("J"),
                    "voornamen": .string("Jan"), "geslachtsaanduiding": .string("m"), "geboortedatum": .string("1980-01-01"),
                ]
            } else if let kvk {
                identification = ["innNnpId": .string(""), "kvkNummer": .string(kvk), "statutaireNaam": .string("Bakkerij BV")]
            }
            state.rollen[url] = [
                .object([
                    "url": .string("\(self.base)/zaken/api/v1/rollen/\(UUID().uuidString.lowercased())"), "zaak": .string(url),
                    "betrokkene": .string(""), "betrokkeneType": .string(bsn != nil ? "natuurlijk_persoon" : "niet_natuurlijk_persoon"),
                    "roltype": .string("\(self.base)/catalogi/api/v1/roltypen/1"), "omschrijving": .string("Aanvrager"),
                    "omschrijvingGeneriek": .string("initiator"), "roltoelichting": .string(""),
                    "registratiedatum": .string("2026-11-02T09:00:00Z"), "indicatieMachtiging": .string(""),
                    "betrokkeneIdentificatie": .object(identification),
                ])
            ]
            return url
        }
    }

    /// Sets a new status (the `step`-th statustype, 1-based) on a zaak; returns the status's URL.
    @discardableResult
    func setStatus(_ zaak: String, step: Int, at: String) -> String {
        self.state.withLock { state in
            let path = URL(string: zaak)!.path
            guard case .object(var fields)? = state.resources[path], let zaaktype = fields["zaaktype"]?.stringValue,
                let types = state.statustypen[zaaktype], case .object(let type) = types[step - 1]
            else { return "" }
            let id = UUID().uuidString.lowercased()
            let url = "\(self.base)/zaken/api/v1/statussen/\(id)"
            state.resources[URL(string: url)!.path] = .object([
                "url": .string(url), "uuid": .string(id), "zaak": .string(zaak), "statustype": type["url"] ?? .null,
                "datumStatusGezet": .string(at), "statustoelichting": .string("Intern: dossier compleet."),
                "indicatieLaatstGezetteStatus": .bool(true),
            ])
            fields["status"] = .string(url)
            state.resources[path] = .object(fields)
            return url
        }
    }

    /// The notification Open Notificaties would deliver for a new status.
    func notification(status: String, zaak: String) -> String {
        #"{"kanaal": "zaken", "hoofdObject": "\#(zaak)", "resource": "status", "resourceUrl": "\#(status)", "actie": "create", "aanmaakdatum": "2026-11-03T10:00:01Z", "kenmerken": {"bronorganisatie": "002220647", "zaaktype": "x", "vertrouwelijkheidaanduiding": "openbaar"}}"#
    }

    private enum List { case zaken, rollen, statustypen }

    /// A ZGW resource or list, after the checks Open Zaak makes: a valid JWT (403), `Accept-Crs` on zaken (412).
    private func zgw(_ request: Hummingbird.Request, list: List?) async throws -> Response {
        let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { $1 })
        let path = request.uri.path
        let behaviour = self.state.withLock { state in
            state.requests.append(
                Request(
                    path: path, query: query, authorization: request.headers[.authorization], traceparent: request.headers[.traceparent]))
            return state.behaviour
        }
        switch behaviour {
        case .normal: break
        case .failing: return Response(status: .internalServerError)
        case .garbage: return Self.json("{\"results\": 42}")
        case .slow(let delay): try await Task.sleep(for: delay)
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.zgwSecret), digestAlgorithm: .sha256)
        let token = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
        guard let claims = try? await keys.verify(token, as: ZGWClient.Claims.self), claims.client_id == Self.zgwClientID else {
            return Response(status: .forbidden)
        }
        if path.hasPrefix("/zaken/api/v1/zaken"), request.headers[HTTPField.Name("Accept-Crs")!] != "EPSG:4326" {
            return Response(status: .preconditionFailed)
        }
        return self.state.withLock { state in
            let results: [JSONValue]
            switch list {
            case nil:
                guard let resource = state.resources[path] else { return Response(status: .notFound) }
                return Self.json(Self.encode(resource))
            case .zaken:
                results = state.zaken.compactMap { state.resources[$0] }.filter { zaak in
                    guard let wanted = query["identificatie"] else { return true }
                    if case .object(let fields) = zaak { return fields["identificatie"]?.stringValue == wanted }
                    return false
                }
            case .rollen: results = state.rollen[query["zaak"] ?? ""] ?? []
            case .statustypen: results = state.statustypen[query["zaaktype"] ?? ""] ?? []
            }
            // Two per page, so that every list is followed through `next`.
            let page = Int(query["page"] ?? "1") ?? 1
            let slice = Array(results.dropFirst((page - 1) * 2).prefix(2))
            var next: JSONValue = .null
            if page * 2 < results.count {
                var components = URLComponents(string: self.base + path)!
                components.queryItems =
                    query.filter { $0.key != "page" }.map { URLQueryItem(name: $0.key, value: $0.value) }
                    + [URLQueryItem(name: "page", value: "\(page + 1)")]
                next = .string(components.url!.absoluteString)
            }
            return Self.json(
                Self.encode(.object(["count": .number(Double(results.count)), "next": next, "previous": .null, "results": .array(slice)])))
        }
    }

    // MARK: Documenten API (uploads in parts)

    /// An enkelvoudiginformatieobject as the simulator keeps it.
    struct Informatieobject: Sendable {
        var fields: [String: JSONValue]
        var lock: String
        var locked = true
        var parts: [Data?]
        var partSize: Int
    }

    /// How large each bestandsdeel is (the last one smaller).
    static let partSize = 100_000

    /// The informatieobjecten created, each with its content once every part arrived.
    var informatieobjecten: [(fields: [String: JSONValue], content: Data?, locked: Bool)] {
        self.state.withLock { state in
            state.informatieobjecten.values.map { object in
                let complete = object.parts.allSatisfy { $0 != nil }
                return (object.fields, complete ? object.parts.compactMap { $0 }.reduce(Data(), +) : nil, object.locked)
            }
        }
    }

    var links: [(informatieobject: String, zaak: String)] { self.state.withLock { $0.links } }
    var partUploads: Int { self.state.withLock { $0.partUploads } }

    /// An informatieobject made elsewhere (or by an attempt whose answer was lost), locked, with this identificatie.
    func addInformatieobject(identificatie: String) {
        self.state.withLock { state in
            let id = UUID().uuidString.lowercased()
            state.informatieobjecten[id] = Informatieobject(
                fields: [
                    "url": .string("\(self.base)/documenten/api/v1/enkelvoudiginformatieobjecten/\(id)"),
                    "identificatie": .string(identificatie),
                    "bestandsomvang": .number(10),
                ], lock: "lost", parts: [nil], partSize: Self.partSize)
        }
    }

    /// The URL of the zaak with this identificatie.
    func zaakURL(_ identificatie: String) -> String? {
        self.state.withLock { state in
            state.zaken.first { path in
                if case .object(let fields)? = state.resources[path] {
                    fields["identificatie"]?.stringValue == identificatie
                } else {
                    false
                }
            }.map { self.base + $0 }
        }
    }

    /// The next `count` requests to link an informatieobject to a zaak fail with a 500.
    func failLinks(_ count: Int) { self.state.withLock { $0.failLinks = count } }

    private func authorized(_ request: Hummingbird.Request) async -> Bool {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.zgwSecret), digestAlgorithm: .sha256)
        let token = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
        guard let claims = try? await keys.verify(token, as: ZGWClient.Claims.self) else { return false }
        return claims.client_id == Self.zgwClientID
    }

    private func createInformatieobject(_ request: Hummingbird.Request) async throws -> Response {
        guard await self.authorized(request) else { return Response(status: .forbidden) }
        if case .failing = self.state.withLock({ $0.behaviour }) { return Response(status: .internalServerError) }
        let body = try await request.body.collect(upTo: 1 << 20)
        guard case .object(let fields) = try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView)),
            let size = fields["bestandsomvang"]?.numberValue.map({ Int($0) }), size > 0, fields["inhoud"] == .null,
            fields["bronorganisatie"]?.stringValue != nil, fields["informatieobjecttype"]?.stringValue != nil
        else { return Response(status: .badRequest) }
        let id = UUID().uuidString.lowercased()
        let url = "\(self.base)/documenten/api/v1/enkelvoudiginformatieobjecten/\(id)"
        let count = (size + Self.partSize - 1) / Self.partSize
        let lock = UUID().uuidString.lowercased()
        let parts: [JSONValue] = self.state.withLock { state in
            state.informatieobjecten[id] = Informatieobject(
                fields: fields.merging(["url": .string(url)]) { $1 }, lock: lock, parts: Array(repeating: nil, count: count),
                partSize: Self.partSize)
            return (0..<count).map { index in
                let partID = UUID().uuidString.lowercased()
                state.parts[partID] = (id, index)
                let omvang = index == count - 1 ? size - index * Self.partSize : Self.partSize
                return .object([
                    "url": .string("\(self.base)/documenten/api/v1/bestandsdelen/\(partID)"), "volgnummer": .number(Double(index + 1)),
                    "omvang": .number(Double(omvang)), "voltooid": .bool(false),
                ])
            }
        }
        var response = Self.json(Self.encode(.object(["url": .string(url), "lock": .string(lock), "bestandsdelen": .array(parts)])))
        response.status = .created
        return response
    }

    private func uploadPart(_ request: Hummingbird.Request, id: String) async throws -> Response {
        guard await self.authorized(request) else { return Response(status: .forbidden) }
        guard let contentType = request.headers[.contentType], let boundary = contentType.components(separatedBy: "boundary=").last
        else { return Response(status: .unsupportedMediaType) }
        let body = Data(try await request.body.collect(upTo: 64 << 20).readableBytesView)
        let fields = Self.formFields(body, boundary: boundary)
        return self.state.withLock { state in
            guard let (objectID, index) = state.parts[id], var object = state.informatieobjecten[objectID] else {
                return Response(status: .notFound)
            }
            guard fields["lock"].map({ String(decoding: $0, as: UTF8.self) }) == object.lock, let content = fields["inhoud"] else {
                return Response(status: .badRequest)
            }
            let size = object.fields["bestandsomvang"]?.numberValue.map { Int($0) } ?? 0
            let expected = index == object.parts.count - 1 ? size - index * object.partSize : object.partSize
            guard content.count == expected else { return Response(status: .badRequest) }
            object.parts[index] = content
            state.informatieobjecten[objectID] = object
            state.partUploads += 1
            return Self.json("{}")
        }
    }

    private func unlock(_ request: Hummingbird.Request, id: String) async throws -> Response {
        guard await self.authorized(request) else { return Response(status: .forbidden) }
        let body = try await request.body.collect(upTo: 1 << 16)
        let lock = (try? JSONDecoder().decode([String: String].self, from: Data(body.readableBytesView)))?["lock"]
        return self.state.withLock { state in
            guard var object = state.informatieobjecten[id] else { return Response(status: .notFound) }
            guard object.locked, lock == object.lock, object.parts.allSatisfy({ $0 != nil }) else {
                return Response(status: .badRequest)
            }
            object.locked = false
            state.informatieobjecten[id] = object
            return Response(status: .noContent)
        }
    }

    private func informatieobject(_ request: Hummingbird.Request, id: String) async throws -> Response {
        guard await self.authorized(request) else { return Response(status: .forbidden) }
        return self.state.withLock { state in
            guard let object = state.informatieobjecten[id] else { return Response(status: .notFound) }
            let parts: [JSONValue] = object.locked ? object.parts.indices.map { .object(["volgnummer": .number(Double($0 + 1))]) } : []
            return Self.json(
                Self.encode(.object(object.fields.merging(["locked": .bool(object.locked), "bestandsdelen": .array(parts)]) { $1 })))
        }
    }

    private func searchInformatieobjecten(_ request: Hummingbird.Request) async throws -> Response {
        guard await self.authorized(request) else { return Response(status: .forbidden) }
        let identificatie = request.uri.queryParameters["identificatie"].map(String.init)
        return self.state.withLock { state in
            let results = state.informatieobjecten.values.filter { $0.fields["identificatie"]?.stringValue == identificatie }.map {
                JSONValue.object($0.fields)
            }
            return Self.json(
                Self.encode(
                    .object(["count": .number(Double(results.count)), "next": .null, "previous": .null, "results": .array(results)])))
        }
    }

    private func link(_ request: Hummingbird.Request) async throws -> Response {
        guard await self.authorized(request) else { return Response(status: .forbidden) }
        let body = try await request.body.collect(upTo: 1 << 16)
        guard let fields = try? JSONDecoder().decode([String: String].self, from: Data(body.readableBytesView)),
            let object = fields["informatieobject"], let zaak = fields["zaak"]
        else { return Response(status: .badRequest) }
        return self.state.withLock { state in
            if state.failLinks > 0 {
                state.failLinks -= 1
                return Response(status: .internalServerError)
            }
            let id = URL(string: object)?.lastPathComponent ?? ""
            guard let stored = state.informatieobjecten[id], !stored.locked, state.resources[URL(string: zaak)?.path ?? ""] != nil else {
                return Response(status: .badRequest)
            }
            if state.links.contains(where: { $0 == (object, zaak) }) {
                var response = Self.json(#"{"invalidParams": [{"name": "nonFieldErrors", "code": "unique", "reason": "exists"}]}"#)
                response.status = .badRequest
                return response
            }
            state.links.append((object, zaak))
            var response = Self.json(Self.encode(.object(["informatieobject": .string(object), "zaak": .string(zaak)])))
            response.status = .created
            return response
        }
    }

    /// The fields of a `multipart/form-data` body, by name.
    static func formFields(_ body: Data, boundary: String) -> [String: Data] {
        let delimiter = Data("--\(boundary)".utf8)
        var fields: [String: Data] = [:]
        var rest = body[...]
        while let start = rest.range(of: delimiter) {
            rest = rest[start.upperBound...]
            guard let headersEnd = rest.range(of: Data("\r\n\r\n".utf8)) else { break }
            let headers = String(decoding: rest[rest.startIndex..<headersEnd.lowerBound], as: UTF8.self)
            let contentStart = headersEnd.upperBound
            guard let next = rest[contentStart...].range(of: Data("\r\n".utf8) + delimiter) else { break }
            if let nameRange = headers.range(of: "name=\""), let end = headers[nameRange.upperBound...].firstIndex(of: "\"") {
                fields[String(headers[nameRange.upperBound..<end])] = Data(rest[contentStart..<next.lowerBound])
            }
            rest = rest[next.lowerBound...]
        }
        return fields
    }

    private static func encode(_ value: JSONValue) -> String {
        String(decoding: (try? JSONEncoder().encode(value)) ?? Data(), as: UTF8.self)
    }

    private static func json(_ text: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
