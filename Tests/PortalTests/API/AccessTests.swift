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
        case businessToken
        case departmentA
        case departmentB
        case revokedDepartment
        case garbage

        /// The access level this principal should pass.
        var access: Access? {
            switch self {
            case .residentSession, .businessToken: .resident
            case .departmentA, .departmentB: .department
            case .nobody, .revokedDepartment, .garbage: nil
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
                    case .businessToken: headers[.authorization] = "Bearer \(businessToken)"
                    case .departmentA: headers[.authorization] = "Bearer \(keyA)"
                    case .departmentB: headers[.authorization] = "Bearer \(keyB)"
                    case .revokedDepartment: headers[.authorization] = "Bearer \(revoked.apiKey)"
                    case .garbage: headers[.authorization] = "Bearer nonsense"
                    }
                    let path = route.path.replacingOccurrences(of: #"\{[^}]+\}"#, with: UUID().uuidString, options: .regularExpression)
                    let body: String? = [.post, .patch, .put].contains(route.method) ? "{}" : nil
                    let response = try await api.request(route.method, path, headers: headers, json: body)
                    let status = response.status
                    switch route.access {
                    case .open:
                        #expect(status != .unauthorized && status != .forbidden, "\(route) as \(principal): \(status)")
                    case .resident, .department:
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
        return schemes.contains("departmentKey") ? .department : .resident
    }
}
