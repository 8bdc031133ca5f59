import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// Who may call what: every registered route, with every kind of credential, against its declared access level;
/// and the OpenAPI document held against the routes.
@Suite("Access")
struct AccessTests {
    /// A way of calling the API.
    enum Principal: String, CaseIterable {
        case nobody
        case residentSession
        /// A session past its absolute lifetime (and one idle too long: the same lookup refuses both).
        case expiredSession
        case idleSession
        case businessToken
        case departmentA
        case departmentB
        case revokedDepartment
        case zgwSubscription
        case garbage

        /// The access level this principal should pass.
        var access: Access? {
            switch self {
            case .residentSession, .businessToken: .resident
            case .departmentA, .departmentB: .department
            case .zgwSubscription: .zgwSubscription
            case .nobody, .expiredSession, .idleSession, .revokedDepartment, .garbage: nil
            }
        }
    }

    @Test("every route refuses every credential but its own kind with 401, and lets its own kind through")
    func matrix() async throws {
        try await APIHarness.with { api async throws in
            let departments = api.identity.departments
            let client = api.database.client
            let logger = api.database.logger
            let keyA = try await departments.add(name: "Burgerzaken", client: client, logger: logger).apiKey
            let keyB = try await departments.add(name: "Openbare ruimte", client: client, logger: logger).apiKey
            let revoked = try await departments.add(name: "Opgeheven", client: client, logger: logger)
            _ = try await departments.revoke(revoked.department.id, client: client, logger: logger)
            let businessToken = try await #require(api.broker).accessToken(["kvk": .string("12345678"), "bsn": .null])
            let zgw = try await departments.add(name: "Vergunningen", client: client, logger: logger)
            let subscription = try #require(
                try await ConnectorStore().connect(
                    Connector(
                        departmentID: zgw.department.id, kind: .zgw,
                        settings: .init(
                            zaken: URL(string: "https://zaken.test/api/v1/")!, catalogi: URL(string: "https://catalogi.test/api/v1/")!),
                        clientID: "portal", secret: String(repeating: "s", count: 32)),
                    jobs: api.database.jobs, client: client, logger: logger))

            let routes = api.catalog.routes
            #expect(routes.count >= 9)
            for route in routes {
                for principal in Principal.allCases {
                    var headers: HTTPFields = [:]
                    switch principal {
                    case .nobody: break
                    case .residentSession:
                        // A fresh session each time: one of the routes is the logout.
                        let session = try await api.devLogin()
                        headers = session.unsafeHeaders
                    case .expiredSession, .idleSession:
                        let session = try await api.devLogin(bsn: "111222333")
                        let change =
                            principal == .expiredSession
                            ? "expires_at = now() - interval '1 second'"
                            : "last_seen_at = now() - interval '1 day'"
                        try await client.query(
                            PostgresQuery(
                                unsafeSQL: """
                                    UPDATE sessions SET \(change)
                                    WHERE resident_id = (SELECT id FROM residents WHERE subject = '111222333')
                                    """), logger: logger)
                        headers = session.unsafeHeaders
                    case .businessToken: headers[.authorization] = "Bearer \(businessToken)"
                    case .departmentA: headers[.authorization] = "Bearer \(keyA)"
                    case .departmentB: headers[.authorization] = "Bearer \(keyB)"
                    case .revokedDepartment: headers[.authorization] = "Bearer \(revoked.apiKey)"
                    case .zgwSubscription: headers[.authorization] = "Bearer \(subscription)"
                    case .garbage: headers[.authorization] = "Bearer nonsense"
                    }
                    let path = route.path.replacingOccurrences(of: #"\{[^}]+\}"#, with: UUID().uuidString, options: .regularExpression)
                    let body: String? = [.post, .patch, .put].contains(route.method) ? "{}" : nil
                    let response = try await api.request(route.method, path, headers: headers, json: body)
                    let status = response.status
                    switch route.access {
                    case .open:
                        #expect(status != .unauthorized && status != .forbidden, "\(route) as \(principal): \(status)")
                    case .resident, .department, .zgwSubscription:
                        if principal.access == route.access {
                            #expect(status != .unauthorized && status != .forbidden, "\(route) as \(principal): \(status)")
                        } else {
                            #expect(status == .unauthorized, "\(route) as \(principal): \(status)")
                            #expect(response.headers[.wwwAuthenticate] == "Bearer", "\(route) as \(principal)")
                        }
                    }
                }
            }
            // Presented but wrong credentials are security events; the wrong kind says which.
            #expect(!api.log.lines(containing: "portal.security.event=wrong-credential").isEmpty)
            #expect(!api.log.lines(containing: "portal.security.event=department-refused").isEmpty)
        }
    }

    @Test("a method no route has on a path answers 405 with the methods it has, for every caller, before any authentication")
    func otherMethods() async throws {
        try await APIHarness.with { api async throws in
            let key = try await api.identity.departments.add(name: "Burgerzaken", client: api.database.client, logger: api.database.logger)
                .apiKey
            let session = try await api.devLogin()
            let callers: [HTTPFields] = [[:], session.unsafeHeaders, [.authorization: "Bearer \(key)"]]
            let routes = api.catalog.routes
            let methods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]
            var checked = 0
            for path in Set(routes.map(\.path)) {
                let registered = Set(routes.filter { $0.path == path }.map(\.method))
                let concrete = path.replacingOccurrences(of: #"\{[^}]+\}"#, with: UUID().uuidString, options: .regularExpression)
                for method in methods where !registered.contains(method) {
                    for headers in callers {
                        let response = try await api.request(method, concrete, headers: headers, json: method == .get ? nil : "{}")
                        #expect(response.status == .methodNotAllowed, "\(method) \(path): \(response.status)")
                        #expect(response.headers[.contentType] == "application/problem+json", "\(method) \(path)")
                        checked += 1
                    }
                }
            }
            #expect(checked > 100)
        }
    }

    @Test("another resident's case answers 404 on every resident route with an id; another department sees and changes nothing")
    func objectLevel() async throws {
        try await APIHarness.with { api async throws in
            let departmentA = try await CaseTrackingTests.department(api, name: "Burgerzaken")
            let keyB = try await api.identity.departments.add(
                name: "Openbare ruimte", client: api.database.client, logger: api.database.logger)
            let departmentB: HTTPFields = [.authorization: "Bearer \(keyB.apiKey)"]
            let put = try await api.request(
                .put, "/api/v1/department/cases/HLM-1", headers: departmentA, json: CaseTrackingTests.caseBody())
            let caseID = try #require(try APIHarness.object(put)["id"]?.stringValue)
            let status = CaseTrackingTests.status("a1", "in-behandeling", at: "2026-11-21T10:00:00Z", text: "Bezig")
            #expect(
                try await api.request(.post, "/api/v1/department/cases/HLM-1/statuses", headers: departmentA, json: status).status
                    == .created)
            let before = try await api.request(.get, "/api/v1/department/cases/HLM-1", headers: departmentA)

            let owner = try await api.devLogin(bsn: "999993653")
            let otherResident = try await api.devLogin(bsn: "111222333")
            let business = try await #require(api.broker).accessToken(["kvk": .string("12345678"), "bsn": .null])
            let residentRoutes = api.catalog.routes.filter { $0.access == .resident && $0.path.contains("{id}") }
            // Reads and status pushes first, while department B has nothing under these names; then B's own PUTs, which
            // create B's own case type and case (names are per department) and must leave A's alone.
            let departmentRoutes = api.catalog.routes.filter { $0.access == .department && $0.path.contains("{") }
                .sorted { ($0.method == .put ? 1 : 0) < ($1.method == .put ? 1 : 0) }
            #expect(!residentRoutes.isEmpty && !departmentRoutes.isEmpty)
            let body = #"{"rating": 5}"#
            for route in residentRoutes {
                let path = route.path.replacingOccurrences(of: "{id}", with: caseID)
                let json: String? = route.method == .get ? nil : body
                for headers in [otherResident.unsafeHeaders, [.authorization: "Bearer \(business)"] as HTTPFields] {
                    let response = try await api.request(route.method, path, headers: headers, json: json)
                    #expect(response.status == .notFound, "\(route) for another resident: \(response.status)")
                }
                let mine = try await api.request(route.method, path, headers: owner.unsafeHeaders, json: json)
                #expect(mine.status != .notFound, "\(route) for the owner")
            }
            for route in departmentRoutes {
                let path = route.path.replacingOccurrences(of: "{reference}", with: "HLM-1").replacingOccurrences(
                    of: "{code}", with: "paspoort")
                let json: String? =
                    switch route.method {
                    case .get: nil
                    case .post: CaseTrackingTests.status("b1", "in-behandeling", at: "2026-11-22T10:00:00Z", text: "Niet van B")
                    default: path.contains("case-types") ? CaseTrackingTests.caseType : CaseTrackingTests.caseBody(bsn: "111222333")
                    }
                let response = try await api.request(route.method, path, headers: departmentB, json: json)
                if route.method == .get || route.method == .post {
                    #expect(response.status == .notFound, "\(route) for another department: \(response.status)")
                }
            }
            // Whatever department B did under the same names, department A's case is exactly as it was.
            let after = try await api.request(.get, "/api/v1/department/cases/HLM-1", headers: departmentA)
            #expect(after.body == before.body)
        }
    }

    @Test("the served OpenAPI document lists exactly the registered routes, with their access levels")
    func openAPIMatchesRoutes() async throws {
        for devLogin in [true, false] {
            var options = APIHarness.Options()
            options.devLogin = devLogin
            try await APIHarness.with(options) { api async throws in
                let response = try await api.request(.get, "/api/v1/openapi.json")
                #expect(response.status == .ok)
                let document = try APIHarness.object(response)
                guard case .object(let paths)? = document["paths"] else {
                    Issue.record("no paths in the document")
                    return
                }
                var documented: Set<Route> = []
                for (path, item) in paths {
                    guard case .object(let operations) = item else { continue }
                    for (method, operation) in operations {
                        guard case .object(let fields) = operation, let httpMethod = HTTPRequest.Method(method.uppercased()) else {
                            continue
                        }
                        if !devLogin && fields["x-portal-dev-login"] == .bool(true) { continue }
                        documented.insert(Route(method: httpMethod, path: path, access: Self.access(of: fields["security"])))
                    }
                }
                #expect(documented == Set(api.catalog.routes), "dev login \(devLogin)")
                #expect(
                    document["info"].flatMap { if case .object(let info) = $0 { info["version"] } else { nil } }
                        == .string(APIConventionsMiddleware.apiVersion))
            }
        }
    }

    /// The access level an operation's `security` declares.
    static func access(of security: JSONValue?) -> Access {
        guard case .array(let requirements)? = security, !requirements.isEmpty else { return .open }
        let schemes = requirements.flatMap { requirement -> [String] in
            if case .object(let fields) = requirement { Array(fields.keys) } else { [] }
        }
        if schemes.contains("zgwSubscription") { return .zgwSubscription }
        return schemes.contains("departmentKey") ? .department : .resident
    }
}
