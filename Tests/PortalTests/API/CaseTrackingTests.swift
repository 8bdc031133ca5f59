import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// Status tracking end to end: a department defines a case type, registers a case and pushes statuses (a replay,
/// an out-of-order event, a correction, a final rejection with its explanation); the resident sees the right
/// current status, history and next steps; nobody else sees any of it.
@Suite("Status tracking")
struct CaseTrackingTests {
    static let caseType = #"""
        {"name": {"nl": "Paspoort aanvragen", "en": "Passport application"}, "termDays": 56,
         "statusTypes": [
           {"code": "ontvangen", "name": {"nl": "Aanvraag ontvangen", "en": "Application received"}, "informs": false},
           {"code": "in-behandeling", "name": {"nl": "In behandeling", "en": "In progress"}, "informs": true, "uploadsAllowed": true},
           {"code": "afgewezen", "name": {"nl": "Afgewezen", "en": "Rejected"}, "informs": true, "final": true},
           {"code": "gereed", "name": {"nl": "Klaar om op te halen", "en": "Ready for collection"}, "informs": true, "final": true}]}
        """#

    static func caseBody(bsn: String = "999993653", submittedAt: String = "2026-11-20T09:12:00Z") -> String {
        #"""
        {"subject": {"bsn": "\#(bsn)"}, "caseType": "paspoort", "title": "Paspoort aanvragen",
         "submittedAt": "\#(submittedAt)", "language": "nl", "contactEmail": "resident@example.org",
         "handler": {"name": "Team Burgerzaken", "phone": "14 023", "email": "burgerzaken@example.org"}}
        """#
    }

    static func status(_ eventID: String, _ type: String, at: String, text: String, extra: String = "") -> String {
        #"{"eventId": "\#(eventID)", "statusType": "\#(type)", "setAt": "\#(at)", "text": {"nl": "\#(text)", "en": "\#(text) (en)"}\#(extra)}"#
    }

    /// A department with its key, its case type defined.
    static func department(_ api: APIHarness, name: String) async throws -> HTTPFields {
        let key = try await api.identity.departments.add(name: name, client: api.database.client, logger: api.database.logger).apiKey
        let headers: HTTPFields = [.authorization: "Bearer \(key)"]
        let created = try await api.request(.put, "/api/v1/department/case-types/paspoort", headers: headers, json: Self.caseType)
        try #require(created.status == .created, "\(String(buffer: created.body))")
        return headers
    }

    /// A recorded notification, as the tests see it.
    struct RecordedNotification: Equatable {
        let caseID: UUID
        let correction: Bool
    }

    /// The notifications recorded so far, in order; each must have its notifier job.
    static func jobs(_ api: APIHarness) async throws -> [RecordedNotification] {
        let rows = try await api.database.client.query(
            """
            SELECT n.case_id, n.kind, count(j.id)
            FROM notifications n
            LEFT JOIN jobs j ON j.kind = \(NotificationJob.kind.name) AND j.unique_key = 'notification:' || n.id
            GROUP BY n.id ORDER BY n.id
            """
        )
        var notifications: [RecordedNotification] = []
        for try await (caseID, kind, jobs) in rows.decode((UUID, String, Int).self) {
            #expect(jobs == 1, "a notification without its job")
            notifications.append(RecordedNotification(caseID: caseID, correction: kind == "correction"))
        }
        return notifications
    }

    @Test("a case's life: first status, progress, a replay, a late event, a correction, a final rejection")
    func caseLife() async throws {
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api, name: "Burgerzaken")
            let again = try await api.request(.put, "/api/v1/department/case-types/paspoort", headers: department, json: Self.caseType)
            #expect(again.status == .ok)

            let put = try await api.request(.put, "/api/v1/department/cases/HLM-2026-000123", headers: department, json: Self.caseBody())
            #expect(put.status == .created)
            // No due date given: submitted date plus the 56-day term.
            #expect(try APIHarness.object(put)["dueDate"] == .string("2027-01-15"))
            let replayedPut = try await api.request(
                .put, "/api/v1/department/cases/HLM-2026-000123", headers: department, json: Self.caseBody())
            #expect(replayedPut.status == .ok)
            let path = "/api/v1/department/cases/HLM-2026-000123/statuses"

            // The first status does not notify (the department did not ask for it).
            let first = try await api.request(
                .post, path, headers: department, json: Self.status("e1", "ontvangen", at: "2026-11-20T09:13:00Z", text: "Ontvangen"))
            #expect(first.status == .created)
            #expect(try await Self.jobs(api).isEmpty)

            let progress = Self.status("e2", "in-behandeling", at: "2026-11-21T10:00:00Z", text: "We beoordelen uw aanvraag.")
            let second = try await api.request(.post, path, headers: department, json: progress)
            #expect(second.status == .created)
            #expect(try await Self.jobs(api).count == 1)

            // A replay: the original answer, nothing new.
            let replay = try await api.request(.post, path, headers: department, json: progress)
            #expect(replay.status == .ok)
            #expect(replay.body == second.body)
            #expect(try await Self.jobs(api).count == 1)

            // A late event, set before the current one: kept in history, does not become current, no mail.
            let late = try await api.request(
                .post, path, headers: department, json: Self.status("e0", "ontvangen", at: "2026-11-20T09:12:30Z", text: "Binnengekomen"))
            #expect(late.status == .created)
            #expect(try await Self.jobs(api).count == 1)

            // A correction of the current status replaces it and is announced as a correction.
            let correction = try await api.request(
                .post, path, headers: department,
                json: Self.status(
                    "e3", "in-behandeling", at: "2026-11-22T08:00:00Z", text: "We beoordelen uw aanvraag opnieuw.",
                    extra: #", "corrects": "e2""#)
            )
            #expect(correction.status == .created)
            #expect(try await Self.jobs(api).last?.correction == true)

            let session = try await api.devLogin()
            let list = try await api.request(.get, "/api/v1/cases", headers: session.headers)
            #expect(list.status == .ok)
            let listed = try APIHarness.object(list)
            guard case .array(let items)? = listed["items"], case .object(let item)? = items.first else {
                Issue.record("no items: \(listed)")
                return
            }
            #expect(items.count == 1)
            #expect(listed["next"] == .null)
            #expect(
                item["status"].flatMap { if case .object(let s) = $0 { s["text"] } else { nil } }
                    == .string("We beoordelen uw aanvraag opnieuw."))
            #expect(item["caseType"] == .object(["code": .string("paspoort"), "name": .string("Paspoort aanvragen")]))
            let id = try #require(item["id"]?.stringValue)

            let detail = try APIHarness.object(try await api.request(.get, "/api/v1/cases/\(id)", headers: session.headers))
            #expect(
                Self.history(detail) == [
                    "ontvangen:Binnengekomen", "ontvangen:Ontvangen", "in-behandeling:We beoordelen uw aanvraag opnieuw.:correction",
                ])
            #expect(detail["nextSteps"] == .array([.string("Afgewezen"), .string("Klaar om op te halen")]))
            #expect(detail["contact"].flatMap { if case .object(let c) = $0 { c["name"] } else { nil } } == .string("Team Burgerzaken"))
            #expect(detail["department"] == .string("Burgerzaken"))

            // The final answer is "no", and it explains itself.
            let rejection = Self.status(
                "e4", "afgewezen", at: "2026-11-25T12:00:00Z", text: "Uw aanvraag is afgewezen.",
                extra: #", "explanation": {"nl": "Uw pasfoto voldoet niet. U kunt een nieuwe aanvraag doen met een nieuwe foto."}"#
            )
            #expect(try await api.request(.post, path, headers: department, json: rejection).status == .created)
            let closed = try APIHarness.object(try await api.request(.get, "/api/v1/cases/\(id)", headers: session.headers))
            #expect(closed["nextSteps"] == .array([]))
            #expect(closed["overdue"] == .bool(false))
            guard case .array(let history)? = closed["history"], case .object(let last)? = history.last else {
                Issue.record("no history")
                return
            }
            #expect(last["explanation"]?.stringValue?.contains("nieuwe aanvraag") == true)
            #expect(last["final"] == .bool(true))
            #expect(try await Self.jobs(api).count == 3)

            // In English for a resident who chose English.
            _ = try await api.request(.patch, "/api/v1/me", headers: session.unsafeHeaders, json: #"{"locale": "en"}"#)
            let english = try APIHarness.object(try await api.request(.get, "/api/v1/cases/\(id)", headers: session.headers))
            #expect(english["caseType"] == .object(["code": .string("paspoort"), "name": .string("Passport application")]))

            // Feedback once the case is closed, once.
            let feedback = "/api/v1/cases/\(id)/feedback"
            #expect(try await api.request(.post, feedback, headers: session.unsafeHeaders, json: #"{"rating": 6}"#).status == .badRequest)
            #expect(
                try await api.request(.post, feedback, headers: session.unsafeHeaders, json: #"{"rating": 4, "comment": "Duidelijk."}"#)
                    .status == .created)
            #expect(try await api.request(.post, feedback, headers: session.unsafeHeaders, json: #"{"rating": 5}"#).status == .conflict)

            // Every read and write was audited under the keyed hash, never the number.
            let audit = try await api.database.client.query("SELECT DISTINCT activity FROM audit_log ORDER BY activity")
            let activities = try await audit.decode(String.self).reduce(into: [String]()) { $0.append($1) }
            #expect(Set(activities).isSuperset(of: ["case.upsert", "case.status.add", "case.list.read", "case.read", "case.feedback"]))
        }
    }

    static func history(_ detail: [String: JSONValue]) -> [String] {
        guard case .array(let entries)? = detail["history"] else { return [] }
        return entries.compactMap { entry in
            guard case .object(let fields) = entry, let code = fields["code"]?.stringValue, let text = fields["text"]?.stringValue else {
                return nil
            }
            return fields["correction"] == .bool(true) ? "\(code):\(text):correction" : "\(code):\(text)"
        }
    }

    @Test("nobody but the resident and the department sees a case: 404 for other residents and departments")
    func isolation() async throws {
        try await APIHarness.with { api async throws in
            let departmentA = try await Self.department(api, name: "Burgerzaken")
            let departmentB = try await Self.department(api, name: "Openbare ruimte")
            #expect(
                try await api.request(.put, "/api/v1/department/cases/HLM-1", headers: departmentA, json: Self.caseBody()).status
                    == .created)
            let owner = try await api.devLogin(bsn: "999993653")
            let other = try await api.devLogin(bsn: "111222333")
            let list = try APIHarness.object(try await api.request(.get, "/api/v1/cases", headers: owner.headers))
            guard case .array(let items)? = list["items"], case .object(let item)? = items.first, let id = item["id"]?.stringValue else {
                Issue.record("the owner sees no case")
                return
            }
            #expect(try APIHarness.object(try await api.request(.get, "/api/v1/cases", headers: other.headers))["items"] == .array([]))
            #expect(try await api.request(.get, "/api/v1/cases/\(id)", headers: other.headers).status == .notFound)
            #expect(
                try await api.request(.post, "/api/v1/cases/\(id)/feedback", headers: other.unsafeHeaders, json: #"{"rating": 5}"#).status
                    == .notFound)
            #expect(try await api.request(.get, "/api/v1/department/cases/HLM-1", headers: departmentB).status == .notFound)
            let status = Self.status("b1", "ontvangen", at: "2026-11-20T09:13:00Z", text: "x")
            let pushed = try await api.request(.post, "/api/v1/department/cases/HLM-1/statuses", headers: departmentB, json: status)
            #expect(pushed.status == .notFound)
            #expect(try APIHarness.object(pushed)["detail"]?.stringValue?.contains("PUT the case first") == true)
        }
    }

    @Test("a case without a handler shows the department's general contact; a first status notifies when asked to")
    func fallbackContact() async throws {
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api, name: "Burgerzaken")
            let body =
                #"{"subject": {"bsn": "999993653"}, "caseType": "paspoort", "title": "Paspoort", "submittedAt": "2026-11-20T09:12:00Z"}"#
            let id = try #require(
                try APIHarness.object(try await api.request(.put, "/api/v1/department/cases/C-1", headers: department, json: body))["id"]?
                    .stringValue)
            let session = try await api.devLogin()
            let contact = { () async throws -> JSONValue? in
                try APIHarness.object(try await api.request(.get, "/api/v1/cases/\(id)", headers: session.headers))["contact"]
            }
            #expect(try await contact() == .object(["name": .string("Burgerzaken")]))
            let set = #"{"name": "Klantcontactcentrum", "phone": "14 023", "email": "kcc@example.org", "hours": "ma-vr 8-20"}"#
            #expect(try await api.request(.put, "/api/v1/department/contact", headers: department, json: set).status == .ok)
            #expect(
                try await contact()
                    == .object([
                        "name": .string("Klantcontactcentrum"), "phone": .string("14 023"), "email": .string("kcc@example.org"),
                        "hours": .string("ma-vr 8-20"),
                    ]))
            // A case's first status notifies only when the department asks for it explicitly.
            let first = Self.status("c1", "ontvangen", at: "2026-11-20T09:13:00Z", text: "Ontvangen", extra: #", "informs": true"#)
            #expect(
                try await api.request(.post, "/api/v1/department/cases/C-1/statuses", headers: department, json: first).status == .created)
            #expect(try await Self.jobs(api).count == 1)

            let bad = try await api.request(.put, "/api/v1/department/contact", headers: department, json: #"{"email": "nope"}"#)
            #expect(try APIHarness.invalidParams(bad) == ["email", "name"])
        }
    }

    @Test("bad department input is a 400 that lists every field error, and 413 and 415 for the wrong body")
    func badInput() async throws {
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api, name: "Burgerzaken")
            let bad =
                #"{"subject": {"bsn": "123456789"}, "caseType": "rijbewijs", "title": "", "submittedAt": "20-11-2026", "dueDate": "2027-02-30", "language": "de", "handler": {"phone": "1"}, "colour": "blue"}"#
            let response = try await api.request(.put, "/api/v1/department/cases/HLM-9", headers: department, json: bad)
            #expect(response.status == .badRequest)
            #expect(
                try APIHarness.invalidParams(response) == [
                    "caseType", "colour", "dueDate", "handler.name", "language", "subject.bsn", "submittedAt", "title",
                ])
            let types = try await api.request(
                .put, "/api/v1/department/case-types/x", headers: department,
                json: #"{"name": {"en": "no Dutch"}, "termDays": 0, "statusTypes": [{"code": "a b", "name": {"nl": "A"}}, 3]}"#
            )
            #expect(try APIHarness.invalidParams(types) == ["name.nl", "statusTypes[0].code", "statusTypes[1]", "termDays"])

            #expect(
                try await api.request(.put, "/api/v1/department/cases/HLM-1", headers: department, json: Self.caseBody()).status == .created
            )
            let unknownType = try await api.request(
                .post, "/api/v1/department/cases/HLM-1/statuses", headers: department,
                json: Self.status("x1", "verzonden", at: "2026-11-21T10:00:00Z", text: "x")
            )
            #expect(try APIHarness.invalidParams(unknownType) == ["statusType"])
            let unknownCorrection = try await api.request(
                .post, "/api/v1/department/cases/HLM-1/statuses", headers: department,
                json: Self.status("x2", "ontvangen", at: "2026-11-21T10:00:00Z", text: "x", extra: #", "corrects": "nope""#)
            )
            #expect(try APIHarness.invalidParams(unknownCorrection) == ["corrects"])

            var text = department
            text[.contentType] = "text/plain"
            #expect(
                try await api.request(.put, "/api/v1/department/cases/HLM-1", headers: text, json: Self.caseBody()).status
                    == .unsupportedMediaType)
            let huge = #"{"title": "\#(String(repeating: "x", count: 10 * 1024 * 1024))"}"#
            #expect(
                try await api.request(.put, "/api/v1/department/cases/HLM-1", headers: department, json: huge).status == .contentTooLarge)
        }
    }

    @Test("the case list pages by cursor, newest activity first, without gaps or repeats, and filters open and closed")
    func paging() async throws {
        try await APIHarness.with { api async throws in
            let department = try await Self.department(api, name: "Burgerzaken")
            for day in 1...5 {
                let body = Self.caseBody(submittedAt: "2026-11-0\(day)T09:00:00.123456Z")
                #expect(
                    try await api.request(.put, "/api/v1/department/cases/HLM-\(day)", headers: department, json: body).status == .created)
            }
            let final = Self.status("f1", "gereed", at: "2026-11-06T10:00:00Z", text: "Klaar")
            #expect(
                try await api.request(.post, "/api/v1/department/cases/HLM-2/statuses", headers: department, json: final).status == .created
            )
            let session = try await api.devLogin()
            var titles: [String] = []
            var ids: [String] = []
            var cursor: String?
            repeat {
                let query = cursor.map { "&cursor=\($0)" } ?? ""
                let page = try APIHarness.object(try await api.request(.get, "/api/v1/cases?limit=2\(query)", headers: session.headers))
                guard case .array(let items)? = page["items"] else { break }
                #expect(items.count <= 2)
                for case .object(let item) in items {
                    ids.append(item["id"]?.stringValue ?? "")
                    titles.append(item["dueDate"]?.stringValue ?? "")
                }
                cursor = page["next"]?.stringValue
            } while cursor != nil
            #expect(ids.count == 5 && Set(ids).count == 5)
            // HLM-2 has the newest activity (its final status), then the others by submission, newest first.
            let reference = try await api.database.client.query("SELECT id::text, reference FROM cases")
            var references: [String: String] = [:]
            for try await (id, ref) in reference.decode((String, String).self) { references[id] = ref }
            #expect(ids.map { references[$0] ?? "" } == ["HLM-2", "HLM-5", "HLM-4", "HLM-3", "HLM-1"])

            let closed = try APIHarness.object(try await api.request(.get, "/api/v1/cases?state=closed", headers: session.headers))
            guard case .array(let closedItems)? = closed["items"] else { return }
            #expect(closedItems.count == 1)
            let bad = try await api.request(.get, "/api/v1/cases?state=done&limit=0&cursor=zz", headers: session.headers)
            #expect(try APIHarness.invalidParams(bad) == ["cursor", "limit", "state"])
        }
    }
}

@Suite("Status tracking: bulk load and figures")
struct CaseBatchTests {
    @Test("a batch applies every good item, refuses each bad one on its own, and replays idempotently")
    func batch() async throws {
        try await APIHarness.with { api async throws in
            let department = try await CaseTrackingTests.department(api, name: "Burgerzaken")
            var items: [String] = []
            for number in 1...150 {
                let status = CaseTrackingTests.status("b-\(number)", "ontvangen", at: "2026-11-20T09:13:00Z", text: "Ontvangen")
                items.append(#"{"reference": "B-\#(number)", "case": \#(CaseTrackingTests.caseBody()), "statuses": [\#(status)]}"#)
            }
            // Bad items: an invalid BSN, an unknown status type (the item's case is undone with it), an unknown case.
            items.insert(#"{"reference": "BAD-1", "case": \#(CaseTrackingTests.caseBody(bsn: "123456789"))}"#, at: 10)
            let unknownType = CaseTrackingTests.status("x-1", "verzonden", at: "2026-11-20T09:13:00Z", text: "x")
            items.insert(#"{"reference": "BAD-2", "case": \#(CaseTrackingTests.caseBody()), "statuses": [\#(unknownType)]}"#, at: 120)
            let orphan = CaseTrackingTests.status("x-2", "ontvangen", at: "2026-11-20T09:13:00Z", text: "x")
            items.append(#"{"reference": "BAD-3", "statuses": [\#(orphan)]}"#)
            let body = #"{"items": [\#(items.joined(separator: ","))]}"#

            let first = try await api.request(.post, "/api/v1/department/cases:batch", headers: department, json: body)
            #expect(first.status == .ok)
            let result = try APIHarness.object(first)
            #expect(result["applied"] == .number(150))
            #expect(result["failed"] == .number(3))
            guard case .array(let results)? = result["results"] else {
                Issue.record("no results")
                return
            }
            #expect(results.count == 153)
            let statuses = results.compactMap { if case .object(let r) = $0 { r["status"]?.numberValue } else { nil } }
            #expect(statuses[10] == 400 && statuses[120] == 400 && statuses[152] == 404)
            #expect(statuses.filter { $0 == 201 }.count == 150)
            if case .object(let bad) = results[10], case .object(let problem)? = bad["problem"] {
                #expect(
                    problem["invalidParams"]
                        == .array([
                            .object([
                                "name": .string("items[10].case.subject.bsn"), "code": .string("invalid"),
                                "reason": .string("the number does not pass the elfproef"),
                            ])
                        ]))
            } else {
                Issue.record("no problem for item 10")
            }
            let count = try await api.database.client.query("SELECT count(*)::bigint FROM cases")
            #expect(try await count.decode(Int.self).reduce(0, +) == 150, "BAD-2's case was undone with its status")

            // The same batch again changes nothing: every case is updated in place, every status a replay.
            let again = try APIHarness.object(
                try await api.request(.post, "/api/v1/department/cases:batch", headers: department, json: body))
            #expect(again["applied"] == .number(150))
            let events = try await api.database.client.query("SELECT count(*)::bigint FROM status_events")
            #expect(try await events.decode(Int.self).reduce(0, +) == 150)
            guard case .array(let second)? = again["results"], case .object(let item) = second[0] else { return }
            #expect(item["status"] == .number(200))
            #expect(item["case"] == .string("updated"))
        }
    }

    @Test("a batch keeps the rules of single pushes: order per case, replays, corrections, event ids, notifications")
    func batchRules() async throws {
        try await APIHarness.with { api async throws in
            let department = try await CaseTrackingTests.department(api, name: "Burgerzaken")
            func status(_ id: String, _ type: String, _ at: String, corrects: String? = nil) -> String {
                CaseTrackingTests.status(id, type, at: at, text: "Status \(id)", extra: corrects.map { #", "corrects": "\#($0)""# } ?? "")
            }
            func item(_ reference: String, withCase: Bool = true, _ statuses: [String]) -> String {
                let fields = withCase ? #""case": \#(CaseTrackingTests.caseBody()), "# : ""
                return #"{"reference": "\#(reference)", \#(fields)"statuses": [\#(statuses.joined(separator: ","))]}"#
            }
            let items = [
                // A new case with a first status, progress, a replay of the first, and a correction of the progress.
                item(
                    "M-1",
                    [
                        status("m1-a", "ontvangen", "2026-11-21T09:13:00Z"),
                        status("m1-b", "in-behandeling", "2026-11-21T10:00:00.123456Z"),
                        status("m1-a", "ontvangen", "2026-11-21T09:13:00Z"),
                        status("m1-c", "in-behandeling", "2026-11-21T11:00:00Z", corrects: "m1-b"),
                    ]),
                // The same case again: applied after the item before it.
                item("M-1", withCase: false, [status("m1-d", "gereed", "2026-11-22T12:00:00.654321Z")]),
                // An event id of another case: refused, and its case is not created.
                item("M-2", [status("m1-b", "ontvangen", "2026-11-21T09:13:00Z")]),
                // A first status that informs, without asking to: no notification.
                item("M-3", [status("m3-a", "in-behandeling", "2026-11-21T09:30:00Z")]),
                // A correction of an event the case does not have: refused as a whole.
                item(
                    "M-4",
                    [
                        status("m4-a", "ontvangen", "2026-11-21T09:13:00Z"),
                        status("m4-b", "ontvangen", "2026-11-21T09:14:00Z", corrects: "nope"),
                    ]),
                // An event id that an earlier item of the same chunk just used.
                item("M-5", [status("m3-a", "ontvangen", "2026-11-21T09:13:00Z")]),
            ]
            let response = try await api.request(
                .post, "/api/v1/department/cases:batch", headers: department, json: #"{"items": [\#(items.joined(separator: ","))]}"#)
            let result = try APIHarness.object(response)
            guard case .array(let results)? = result["results"] else {
                Issue.record("no results: \(result)")
                return
            }
            let codes = results.compactMap { if case .object(let item) = $0 { item["status"]?.numberValue } else { nil } }
            #expect(codes == [201, 201, 409, 201, 400, 409])
            if case .object(let first) = results[0], case .array(let statuses)? = first["statuses"] {
                let outcomes = statuses.compactMap { if case .object(let s) = $0 { s["result"]?.stringValue } else { nil } }
                #expect(outcomes == ["added", "added", "replayed", "added"])
            }

            let cases = try await api.database.client.query(
                """
                SELECT reference, status_code, to_char(status_set_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
                FROM cases ORDER BY reference
                """)
            var current: [String] = []
            for try await (reference, code, setAt) in cases.decode((String, String?, String).self) {
                current.append("\(reference) \(code ?? "-") \(setAt)")
            }
            // Times keep their microseconds; M-2, M-4 and M-5 were not created.
            #expect(current == ["M-1 gereed 2026-11-22T12:00:00.654321", "M-3 in-behandeling 2026-11-21T09:30:00.000000"])

            // M-1 was announced twice: the correction that ended up current in the first chunk, and the final status.
            let jobs = try await CaseTrackingTests.jobs(api)
            #expect(jobs.map(\.correction) == [true, false])
            let ids = try await api.database.client.query("SELECT id FROM cases WHERE reference = 'M-1'")
            let m1 = try await ids.decode(UUID.self).first { _ in true }
            #expect(Set(jobs.map(\.caseID)) == [m1])

            // The department's view: the correction stands in the place of the event it corrects.
            let detail = try APIHarness.object(try await api.request(.get, "/api/v1/department/cases/M-1", headers: department))
            guard case .array(let history)? = detail["history"] else {
                Issue.record("no history: \(detail)")
                return
            }
            let eventIDs = history.compactMap { if case .object(let e) = $0 { e["eventId"]?.stringValue } else { nil } }
            #expect(eventIDs == ["m1-a", "m1-c", "m1-d"])
            let audit = try await api.database.client.query(
                "SELECT activity, count(*)::bigint FROM audit_log WHERE activity LIKE 'case.%' GROUP BY activity ORDER BY activity")
            var activities: [String: Int] = [:]
            for try await (activity, count) in audit.decode((String, Int).self) { activities[activity] = count }
            #expect(activities["case.upsert"] == 2 && activities["case.status.add"] == 5)
        }
    }

    @Test("retries that overlap their first attempt see replays, never a conflict or a failed chunk")
    func overlappingRetries() async throws {
        try await APIHarness.with { api async throws in
            let department = try await CaseTrackingTests.department(api, name: "Burgerzaken")
            // Twenty new cases with a first status each, sent five times at once, as a client that retries eagerly.
            let items = (1...20).map { number in
                let status = CaseTrackingTests.status("r-\(number)", "ontvangen", at: "2026-11-21T09:13:00Z", text: "Ontvangen")
                return #"{"reference": "R-\#(number)", "case": \#(CaseTrackingTests.caseBody()), "statuses": [\#(status)]}"#
            }
            // An empty item for a case that does not exist is refused on its own.
            let body = #"{"items": [\#(items.joined(separator: ",")), {"reference": "NOPE", "statuses": []}]}"#
            let outcomes = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 1...5 {
                    group.addTask {
                        let response = try APIHarness.object(
                            try await api.request(.post, "/api/v1/department/cases:batch", headers: department, json: body))
                        guard case .array(let results)? = response["results"] else { return ["no results: \(response)"] }
                        return results.map { result in
                            guard case .object(let item) = result else { return "?" }
                            var outcome = "\(Int(item["status"]?.numberValue ?? 0))"
                            if case .array(let statuses)? = item["statuses"], case .object(let status)? = statuses.first {
                                outcome += " \(status["result"]?.stringValue ?? "?")"
                            }
                            return outcome
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for results in outcomes {
                #expect(results.count == 21)
                #expect(results.last == "400")
                #expect(results.dropLast().allSatisfy { $0 == "201 added" || $0 == "200 replayed" }, "\(results)")
            }
            for index in 0..<20 {
                #expect(outcomes.filter { $0[index] == "201 added" }.count == 1, "item \(index) was added exactly once")
            }
            let events = try await api.database.client.query("SELECT count(*)::bigint FROM status_events")
            #expect(try await events.decode(Int.self).reduce(0, +) == 20)
        }
    }

    @Test("the figures per case type: counts, lead times, share within the term, overdue, feedback")
    func statistics() async throws {
        try await APIHarness.with { api async throws in
            let department = try await CaseTrackingTests.department(api, name: "Burgerzaken")
            // Three cases submitted on 1 November with a 56-day term: decided in 10 and 20 days, and one still open.
            for (reference, decided) in [("S-1", "2026-11-11T09:00:00Z"), ("S-2", "2026-11-21T09:00:00Z"), ("S-3", nil)] {
                let body = CaseTrackingTests.caseBody(submittedAt: "2026-11-01T09:00:00Z")
                #expect(
                    try await api.request(.put, "/api/v1/department/cases/\(reference)", headers: department, json: body).status == .created
                )
                if let decided {
                    let final = CaseTrackingTests.status("\(reference)-end", "gereed", at: decided, text: "Klaar")
                    #expect(
                        try await api.request(.post, "/api/v1/department/cases/\(reference)/statuses", headers: department, json: final)
                            .status == .created)
                }
            }
            let overdue =
                #"{"subject": {"bsn": "999993653"}, "caseType": "paspoort", "title": "Oud", "submittedAt": "2026-01-01T09:00:00Z", "dueDate": "2026-02-01"}"#
            #expect(try await api.request(.put, "/api/v1/department/cases/S-4", headers: department, json: overdue).status == .created)
            let session = try await api.devLogin()
            let list = try APIHarness.object(try await api.request(.get, "/api/v1/cases?state=closed", headers: session.headers))
            if case .array(let items)? = list["items"], case .object(let first)? = items.first, let id = first["id"]?.stringValue {
                #expect(
                    try await api.request(.post, "/api/v1/cases/\(id)/feedback", headers: session.unsafeHeaders, json: #"{"rating": 4}"#)
                        .status == .created)
            }

            let response = try await api.request(.get, "/api/v1/department/stats", headers: department)
            #expect(response.status == .ok)
            let figures = try APIHarness.object(response)
            guard case .array(let types)? = figures["caseTypes"], case .object(let paspoort)? = types.first else {
                Issue.record("no figures: \(figures)")
                return
            }
            #expect(paspoort["caseType"] == .string("paspoort"))
            #expect(paspoort["open"] == .number(2) && paspoort["closed"] == .number(2))
            #expect(paspoort["medianLeadDays"] == .number(15))
            #expect(paspoort["p90LeadDays"] == .number(19))
            #expect(paspoort["withinTermShare"] == .number(1))
            #expect(paspoort["overdue"] == .number(1))
            #expect(paspoort["averageFeedback"] == .number(4) && paspoort["feedbackCount"] == .number(1))
            #expect(!String(buffer: response.body).contains("999993653"))

            // The operator command gives the same figures.
            let id = try #require(try await api.identity.departments.list(client: api.database.client, logger: api.database.logger).first)
                .id
            let settings = api.database.settings
            let command = try ChildProcess(
                "PortalAPI",
                environment: [
                    "PORTAL_DATABASE_URL":
                        "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable"
                ],
                arguments: ["department", "stats", "--id", id.uuidString, "--json"]
            )
            #expect(await command.waitForExit() == 0, "\(command.output)")
            let line = try JSONDecoder().decode(CaseTypeStatistics.self, from: Data(command.printed.utf8))
            #expect(line.open == 2 && line.closed == 2 && line.medianLeadDays == 15 && line.overdue == 1)
        }
    }
}
