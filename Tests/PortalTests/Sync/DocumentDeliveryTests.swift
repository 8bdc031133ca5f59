import Foundation
import HTTPTypes
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared
@testable import SyncWorker

/// A resident's upload delivered by the sync worker to a department's ZGW Documenten API, in parts, and linked to
/// its zaak; the resident then sees it delivered.
@Suite("Document delivery")
struct DocumentDeliveryTests {
    @Test("a resident's upload reaches the simulated Documenten API in parts, is unlocked and linked to its zaak, once")
    func uploadReachesDocumenten() async throws {
        try await APIHarness.with { api in
            try await DepartmentSimulator.with(logger: api.log.logger("simulator", level: .warning)) { simulator in
                let fixture = try await DocumentFixture.make(api)
                try await Self.connect(api, simulator: simulator, reference: fixture.reference)
                let zaak = try #require(simulator.zaakURL(fixture.reference))
                // 250,000 bytes: three parts of at most 100,000.
                let bytes = DocumentFixture.pdf(size: 250_000)
                let uploaded = try APIHarness.object(try await fixture.upload(bytes, name: "pasfoto.pdf"))
                #expect(uploaded["delivered"]?.boolValue == false)
                let linked = try await SyncHarness.with(api.database) { try await eventually { simulator.links.count == 1 } }
                #expect(linked, "the upload was never linked: \(api.log.lines(containing: "deliver"))")
                let objects = simulator.informatieobjecten
                #expect(objects.count == 1)
                let object = try #require(objects.first)
                #expect(object.content.map(Array.init) == bytes)
                #expect(!object.locked)
                #expect(object.fields["bestandsnaam"]?.stringValue == "pasfoto.pdf")
                #expect(object.fields["auteur"]?.stringValue == DocumentDelivery.author)
                #expect(simulator.partUploads == 3)
                #expect(simulator.links.first?.zaak == zaak)
                let list = try APIHarness.object(
                    try await api.request(.get, "/api/v1/cases/\(fixture.caseID)/documents", headers: fixture.session.headers))
                #expect(list["items"]?.arrayValue?.first?.objectValue?["delivered"]?.boolValue == true)
                let row = try await api.database.client.query("SELECT delivery, zgw_informatieobject FROM documents")
                for try await (delivery, url) in row.decode((String?, String?).self) {
                    #expect(delivery == "delivered")
                    #expect(url == object.fields["url"]?.stringValue)
                }
            }
        }
    }

    @Test("a delivery that failed after uploading and unlocking continues with the same informatieobject: no second object, no parts again")
    func retryUsesTheSameObject() async throws {
        try await APIHarness.with { api in
            try await DepartmentSimulator.with(logger: api.log.logger("simulator", level: .warning)) { simulator in
                let fixture = try await DocumentFixture.make(api)
                try await Self.connect(api, simulator: simulator, reference: fixture.reference)
                simulator.failLinks(1)
                _ = try await fixture.upload(DocumentFixture.pdf(size: 150_000), name: "a.pdf")
                let linked = try await SyncHarness.with(api.database) { try await eventually { simulator.links.count == 1 } }
                #expect(linked)
                #expect(simulator.informatieobjecten.count == 1)
                #expect(simulator.partUploads == 2)
            }
        }
    }

    @Test("an informatieobject an earlier attempt created without storing it is found, not made twice, and left to an operator")
    func lostCreationAnswer() async throws {
        try await APIHarness.with { api in
            try await DepartmentSimulator.with(logger: api.log.logger("simulator", level: .warning)) { simulator in
                let fixture = try await DocumentFixture.make(api)
                try await Self.connect(api, simulator: simulator, reference: fixture.reference)
                let uploaded = try APIHarness.object(try await fixture.upload(DocumentFixture.pdf(size: 1000), name: "a.pdf"))
                simulator.addInformatieobject(identificatie: try #require(uploaded["id"]?.stringValue))
                let recorded = try await SyncHarness.with(api.database) {
                    try await eventually {
                        try await api.database.scalar(
                            "SELECT count(*) FROM sync_refusals WHERE reason LIKE '%answer was lost%'", as: Int.self) == 1
                    }
                }
                #expect(recorded)
                #expect(simulator.informatieobjecten.count == 1)
                #expect(simulator.links.isEmpty)
                #expect(try await api.database.scalar("SELECT delivery FROM documents", as: String.self) == "pending")
            }
        }
    }

    /// The fixture's department follows the simulator's zaaksysteem and delivers uploads to its Documenten API; the
    /// simulator has the fixture's case as a zaak.
    static func connect(_ api: APIHarness, simulator: DepartmentSimulator, reference: String) async throws {
        let department = try await Self.departmentID(api)
        _ = simulator.addZaak(reference, zaaktype: simulator.addZaaktype(), bsn: DocumentFixture.bsn)
        let settings = Connector.Settings(
            zaken: simulator.zakenRoot, catalogi: simulator.catalogiRoot,
            documenten: URL(string: "\(simulator.base)/documenten/api/v1/")!,
            informatieobjecttype: simulator.catalogiRoot.appendingPathComponent("informatieobjecttypen/bijlage"),
            bronorganisatie: "002220647")
        _ = try await ConnectorStore().connect(
            Connector(
                departmentID: department, kind: .zgw, settings: settings, clientID: DepartmentSimulator.zgwClientID,
                secret: DepartmentSimulator.zgwSecret, interval: .seconds(3600), maxConcurrent: 4, maxPerSecond: 1000),
            jobs: api.database.jobs, client: api.database.client, logger: api.database.logger)
    }

    static func departmentID(_ api: APIHarness) async throws -> UUID {
        let rows = try await api.database.client.query("SELECT id FROM departments WHERE name = 'Burgerzaken'")
        for try await id in rows.decode(UUID.self) { return id }
        throw TestSetupError("no department")
    }
}
