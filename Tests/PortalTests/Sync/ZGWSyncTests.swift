import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared
@testable import SyncWorker

/// A ZGW zaaksysteem followed through Open Notificaties and reconciliation (docs/SYNC.md, "ZGW"), against the
/// department simulator's Zaken and Catalogi resources.
@Suite("ZGW")
struct ZGWSyncTests {
    static let bsn = "999993653"

    /// A ZGW department connected to `zgw`; returns the subscription's `Authorization` header.
    static func connect(_ api: APIHarness, _ zgw: DepartmentSimulator, interval: Duration) async throws -> (UUID, HTTPFields) {
        let issued = try await api.identity.departments.add(name: "Vergunningen", client: api.database.client, logger: api.database.logger)
        let connector = Connector(
            departmentID: issued.department.id, kind: .zgw,
            settings: .init(zaken: zgw.zakenRoot, catalogi: zgw.catalogiRoot, maxConfidentiality: "zaakvertrouwelijk"),
            clientID: DepartmentSimulator.zgwClientID, secret: DepartmentSimulator.zgwSecret, interval: interval, maxPerSecond: 1000)
        let credential = try #require(
            try await ConnectorStore().connect(connector, jobs: api.database.jobs, client: api.database.client, logger: api.database.logger)
        )
        return (issued.department.id, [.authorization: "Bearer \(credential)"])
    }

    /// Waits until the department's reconciliation ran once and went back to waiting.
    static func reconciled(_ api: APIHarness) async throws -> Bool {
        try await eventually {
            try await api.database.scalar(
                "SELECT count(*) FROM jobs WHERE kind = 'sync.zgw.reconcile' AND state = 'pending' AND run_at > now() + interval '60 seconds'",
                as: Int.self) == 1
        }
    }

    @Test("a notification leads to the resident seeing the new status and one mail; the same notification again changes nothing")
    func notificationToStatusAndMail() async throws {
        let smtp = try await SMTPTestServer(.plain)
        defer { smtp.stop() }
        try await APIHarness.with { api async throws in
            try await DepartmentSimulator.with(logger: api.database.logger) { zgw async throws in
                let (_, subscription) = try await Self.connect(api, zgw, interval: .seconds(3600))
                let session = try await api.devLogin(bsn: Self.bsn)
                try await api.database.client.query(
                    "UPDATE residents SET email = 'inwoner@example.org', email_verified_at = now() WHERE subject = \(Self.bsn)")
                try await SyncHarness.with(api.database) { () async throws in
                    try await NotifierHarness.with(api.database, settings: try NotifierHarness.settings(smtp)) { _ async throws in
                        #expect(try await Self.reconciled(api))
                        let zaaktype = zgw.addZaaktype()
                        let zaak = zgw.addZaak("ZAAK-2026-0000000001", zaaktype: zaaktype, bsn: Self.bsn)
                        let status = zgw.setStatus(zaak, step: 1, at: "2026-11-03T10:00:00Z")
                        let notification = zgw.notification(status: status, zaak: zaak)
                        // Delivered twice at once, as Open Notificaties may; in the caller's trace.
                        let trace = TraceContext.newTraceID()
                        var traced = subscription
                        traced[.traceparent] = TraceContext.traceparent(traceID: trace)
                        for _ in 0..<2 {
                            let response = try await api.request(.post, "/api/v1/zgw/notifications", headers: traced, json: notification)
                            #expect(response.status == .noContent)
                        }
                        #expect(try await eventually { try smtp.messages().count == 1 })
                        // The trace went on: into the sync job, every request it made to the department (each with a
                        // parent id of its own), and the notification's job.
                        let fetches = zgw.requests.filter { $0.path.contains("/statussen/") }
                        #expect(
                            !fetches.isEmpty
                                && fetches.allSatisfy { $0.traceparent.flatMap(TraceContext.traceID(fromTraceparent:)) == trace })
                        #expect(Set(fetches.compactMap { $0.traceparent?.split(separator: "-")[2] }).count == fetches.count)
                        #expect(
                            try await api.database.scalar(
                                "SELECT count(*)::int FROM jobs WHERE trace_id = \(trace) AND kind IN ('sync.zgw.status', 'mail.notification')",
                                as: Int.self) == 2)
                        let list = try APIHarness.object(try await api.request(.get, "/api/v1/cases", headers: session.headers))
                        guard case .array(let items)? = list["items"], case .object(let item)? = items.first else {
                            Issue.record("no case: \(list)")
                            return
                        }
                        #expect(items.count == 1)
                        #expect(
                            item["status"].flatMap { if case .object(let s) = $0 { s["text"] } else { nil } }
                                == .string("Wij hebben uw aanvraag ontvangen."))
                        #expect(item["title"] == .string("Aanvraag omgevingsvergunning dakkapel"))
                        // The department's internal remark (statustoelichting) is nowhere the resident can see.
                        let id = try #require(item["id"]?.stringValue)
                        let detail = try await api.request(.get, "/api/v1/cases/\(id)", headers: session.headers)
                        #expect(!String(buffer: detail.body).contains("dossier compleet"))

                        // The same notification once more, after it was applied: a replay.
                        let again = try await api.request(.post, "/api/v1/zgw/notifications", headers: subscription, json: notification)
                        #expect(again.status == .noContent)
                        #expect(
                            try await eventually {
                                try await api.database.scalar(
                                    "SELECT count(*) FROM jobs WHERE kind = 'sync.zgw.status' AND state <> 'completed'", as: Int.self) == 0
                            })
                        #expect(try await api.database.scalar("SELECT count(*) FROM status_events", as: Int.self) == 1)
                        #expect(try await api.database.scalar("SELECT count(*) FROM notifications", as: Int.self) == 1)
                        #expect(try smtp.messages().count == 1)
                    }
                }
                // Every ZGW request carried a JWT for our client with the portal's pseudonym, never a BSN, and the
                // zaak was asked for with Accept-Crs (the simulator refuses otherwise).
                let requests = zgw.requests
                #expect(!requests.isEmpty)
                for request in requests {
                    let token = try #require(request.authorization?.split(separator: " ").last)
                    let payload = try #require(token.split(separator: ".").dropFirst().first.flatMap { SecretToken.base64URLDecode($0) })
                    let claims = try JSONDecoder().decode([String: JSONValue].self, from: payload)
                    #expect(claims["iss"] == .string(DepartmentSimulator.zgwClientID))
                    #expect(claims["user_id"] == .string(ZGWClient.userID))
                    #expect(!String(decoding: payload, as: UTF8.self).contains(Self.bsn))
                }
                #expect(requests.contains { $0.path.contains("/rollen") && $0.query["omschrijvingGeneriek"] == "initiator" })
            }
        }
    }

    @Test("a status whose notification never came is found by reconciliation within one interval")
    func reconciliationCatchesDroppedNotifications() async throws {
        try await APIHarness.with { api async throws in
            try await DepartmentSimulator.with(logger: api.database.logger) { zgw async throws in
                let zaaktype = zgw.addZaaktype()
                // Three zaken (two pages of the list); one of a company.
                let first = zgw.addZaak("ZAAK-1", zaaktype: zaaktype, bsn: Self.bsn)
                let second = zgw.addZaak("ZAAK-2", zaaktype: zaaktype, bsn: SyncHarness.bsn(7))
                let third = zgw.addZaak("ZAAK-3", zaaktype: zaaktype, kvk: "12345678")
                zgw.setStatus(first, step: 1, at: "2026-11-03T10:00:00Z")
                zgw.setStatus(third, step: 3, at: "2026-11-04T10:00:00Z")
                _ = second  // no status yet: nothing to find
                let (department, _) = try await Self.connect(api, zgw, interval: .seconds(1))
                try await SyncHarness.with(api.database) { () async throws in
                    #expect(try await eventually { try await api.database.scalar("SELECT count(*) FROM status_events", as: Int.self) == 2 })
                    // A later status, also without a notification, arrives within the next interval.
                    let later = zgw.setStatus(first, step: 3, at: "2026-11-05T10:00:00Z")
                    #expect(
                        try await eventually {
                            try await api.database.scalar(
                                "SELECT count(*) FROM status_events WHERE event_id = \(later)", as: Int.self) == 1
                        })
                }
                let subjects = try await api.database.client.query(
                    "SELECT subject_kind || ':' || subject FROM cases WHERE department_id = \(department) ORDER BY reference"
                ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
                #expect(subjects == ["bsn:\(Self.bsn)", "kvk:12345678"])
                #expect(
                    try await api.database.scalar("SELECT count(*) FROM cases WHERE status_final", as: Int.self) == 2)
            }
        }
    }

    @Test("a notification is refused without the credential or when it points elsewhere; the test message is welcome")
    func notificationsAreChecked() async throws {
        try await APIHarness.with { api async throws in
            try await DepartmentSimulator.with(logger: api.database.logger) { zgw async throws in
                let (_, subscription) = try await Self.connect(api, zgw, interval: .seconds(3600))
                let zaak = "\(zgw.base)/zaken/api/v1/zaken/1"
                let valid = zgw.notification(status: "\(zgw.base)/zaken/api/v1/statussen/1", zaak: zaak)
                // Open Notificaties checks an abonnement with a test message, with and without its auth.
                let test =
                    #"{"kanaal": "test", "hoofdObject": "http://example.org", "resource": "test", "resourceUrl": "http://example.org", "actie": "create", "aanmaakdatum": "2026-11-03T10:00:00Z", "kenmerken": {}}"#
                #expect(try await api.request(.post, "/api/v1/zgw/notifications", headers: subscription, json: test).status == .noContent)
                #expect(try await api.request(.post, "/api/v1/zgw/notifications", json: test).status == .unauthorized)
                #expect(
                    try await api.request(
                        .post, "/api/v1/zgw/notifications", headers: [.authorization: "Bearer portal_zgw_wrong"], json: valid
                    )
                    .status == .unauthorized)
                // A resourceUrl on another host, or outside the Zaken API, becomes no job.
                for elsewhere in [
                    "http://127.0.0.1:1/zaken/api/v1/statussen/1", "\(zgw.base)/admin/statussen/1", "http://169.254.169.254/latest",
                ] {
                    let body = zgw.notification(status: elsewhere, zaak: zaak)
                    let response = try await api.request(.post, "/api/v1/zgw/notifications", headers: subscription, json: body)
                    #expect(response.status == .badRequest, "\(elsewhere)")
                    #expect(String(buffer: response.body).contains("resourceUrl"))
                }
                // Every field error at once.
                let bad = try await api.request(
                    .post, "/api/v1/zgw/notifications", headers: subscription, json: #"{"kanaal": 1, "resourceUrl": "nope"}"#)
                #expect(bad.status == .badRequest)
                let fields = String(buffer: bad.body)
                for name in ["kanaal", "resource", "resourceUrl", "actie", "aanmaakdatum", "hoofdObject"] {
                    #expect(fields.contains(#""\#(name)""#))
                }
                // Something other than a new status is acknowledged and ignored.
                let update = valid.replacingOccurrences(of: #""resource": "status""#, with: #""resource": "zaak""#)
                #expect(try await api.request(.post, "/api/v1/zgw/notifications", headers: subscription, json: update).status == .noContent)
                #expect(try await api.database.scalar("SELECT count(*) FROM jobs WHERE kind = 'sync.zgw.status'", as: Int.self) == 0)
                #expect(try await api.request(.post, "/api/v1/zgw/notifications", headers: subscription, json: valid).status == .noContent)
                #expect(try await api.database.scalar("SELECT count(*) FROM jobs WHERE kind = 'sync.zgw.status'", as: Int.self) == 1)
                #expect(!api.log.lines(containing: "portal.security.event=url-refused").isEmpty)
            }
        }
    }

    @Test("a status that cannot be read is recorded and left out; it does not count against the department")
    func unreadableStatusIsPermanent() async throws {
        try await APIHarness.with { api async throws in
            try await DepartmentSimulator.with(logger: api.database.logger) { zgw async throws in
                let (department, subscription) = try await Self.connect(api, zgw, interval: .seconds(3600))
                try await SyncHarness.with(api.database) { () async throws in
                    #expect(try await Self.reconciled(api))
                    // A status the zaaksysteem does not know (404), several times.
                    for n in 1...6 {
                        let body = zgw.notification(
                            status: "\(zgw.base)/zaken/api/v1/statussen/missing-\(n)", zaak: "\(zgw.base)/zaken/api/v1/zaken/x")
                        #expect(
                            try await api.request(.post, "/api/v1/zgw/notifications", headers: subscription, json: body).status
                                == .noContent)
                    }
                    #expect(
                        try await eventually {
                            try await api.database.scalar("SELECT count(*) FROM sync_refusals", as: Int.self) == 6
                        })
                }
                #expect(
                    try await api.database.scalar(
                        "SELECT count(*) FROM jobs WHERE kind = 'sync.zgw.status' AND state <> 'completed'", as: Int.self) == 0)
                let status = try #require(
                    try await ConnectorStore().status(client: api.database.client, logger: api.database.logger).first {
                        $0.departmentID == department
                    })
                #expect(status.consecutiveFailures == 0 && status.openUntil == nil && status.changesRefused == 6)
                let reason = try await api.database.scalar("SELECT reason FROM sync_refusals LIMIT 1", as: String.self)
                #expect(reason.contains("404"))
            }
        }
    }

    @Test("internal zaaktypen, zaken above the confidentiality maximum and zaken without a known initiator reach no one")
    func notForResidents() async throws {
        try await APIHarness.with { api async throws in
            try await DepartmentSimulator.with(logger: api.database.logger) { zgw async throws in
                let intern = zgw.addZaaktype("INTERN", extern: false)
                let extern = zgw.addZaaktype("EXTERN")
                let statuses = [
                    zgw.setStatus(zgw.addZaak("ZAAK-I", zaaktype: intern, bsn: Self.bsn), step: 1, at: "2026-11-03T10:00:00Z"),
                    zgw.setStatus(
                        zgw.addZaak("ZAAK-G", zaaktype: extern, bsn: Self.bsn, confidentiality: "geheim"), step: 1,
                        at: "2026-11-03T10:00:00Z"),
                    zgw.setStatus(zgw.addZaak("ZAAK-N", zaaktype: extern), step: 1, at: "2026-11-03T10:00:00Z"),
                    zgw.setStatus(zgw.addZaak("ZAAK-OK", zaaktype: extern, bsn: Self.bsn), step: 1, at: "2026-11-03T10:00:00Z"),
                ]
                let (_, subscription) = try await Self.connect(api, zgw, interval: .seconds(3600))
                try await SyncHarness.with(api.database) { () async throws in
                    #expect(try await Self.reconciled(api))
                    for status in statuses {
                        let body = zgw.notification(status: status, zaak: "\(zgw.base)/zaken/api/v1/zaken/x")
                        #expect(
                            try await api.request(.post, "/api/v1/zgw/notifications", headers: subscription, json: body).status
                                == .noContent)
                    }
                    #expect(
                        try await eventually {
                            try await api.database.scalar(
                                "SELECT count(*) FROM jobs WHERE kind = 'sync.zgw.status' AND state = 'completed'", as: Int.self) >= 4
                        })
                }
                let references = try await api.database.client.query("SELECT reference FROM cases").decode(String.self)
                    .reduce(into: [String]()) { $0.append($1) }
                #expect(references == ["ZAAK-OK"])
                // Remembered, so reconciliation does not fetch them again.
                let reasons = try await api.database.client.query("SELECT reason FROM zgw_skipped ORDER BY reason").decode(String.self)
                    .reduce(into: [String]()) { $0.append($1) }
                #expect(reasons == ["confidential", "intern", "no-initiator"])
            }
        }
    }
}
