import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// Department API keys: issued once, stored as a hash, rotated with a grace period, revoked at once; and the
/// operator commands that do it.
@Suite("Department credentials")
struct DepartmentCredentialTests {
    @Test("rotation keeps the old key working for the grace period; revocation ends every key at once")
    func rotateAndRevoke() async throws {
        try await APIHarness.with { api async throws in
            let store = api.identity.departments
            let (client, logger) = (api.database.client, api.database.logger)
            let first = try await store.add(name: "Burgerzaken", client: client, logger: logger)
            #expect(first.apiKey.hasPrefix(DepartmentStore.keyPrefix))
            await #expect(throws: DepartmentError.nameTaken) { try await store.add(name: "Burgerzaken", client: client, logger: logger) }

            let me = try await self.show(api, first.apiKey)
            #expect(me.status == .ok)
            #expect(try APIHarness.object(me)["name"] == .string("Burgerzaken"))
            // Only the hash is stored.
            let stored = try await client.query(
                "SELECT count(*)::bigint FROM department_credentials WHERE key_hash = \(SecretToken.hash(first.apiKey))")
            #expect(try await stored.decode(Int.self).reduce(0, +) == 1)

            let second = try await store.rotateKey(of: first.department.id, grace: .seconds(3600), client: client, logger: logger)
            let grace = try #require(second.previousKeysExpireAt).timeIntervalSinceNow
            #expect(grace > 3500 && grace <= 3600)
            #expect(try await self.show(api, first.apiKey).status == .ok)
            #expect(try await self.show(api, second.apiKey).status == .ok)

            let third = try await store.rotateKey(of: first.department.id, grace: .zero, client: client, logger: logger)
            #expect(try await self.show(api, first.apiKey).status == .unauthorized)
            #expect(try await self.show(api, second.apiKey).status == .unauthorized)
            #expect(try await self.show(api, third.apiKey).status == .ok)

            _ = try await store.revoke(first.department.id, client: client, logger: logger)
            #expect(try await self.show(api, third.apiKey).status == .unauthorized)
            await #expect(throws: DepartmentError.revoked) {
                try await store.rotateKey(of: first.department.id, grace: .zero, client: client, logger: logger)
            }
        }
    }

    @Test("a department key is refused on resident endpoints, and a resident token on department endpoints")
    func kindsDoNotMix() async throws {
        try await APIHarness.with { api async throws in
            let key = try await api.identity.departments.add(name: "Burgerzaken", client: api.database.client, logger: api.database.logger)
                .apiKey
            #expect(try await api.request(.get, "/api/v1/me", headers: [.authorization: "Bearer \(key)"]).status == .unauthorized)
            let token = try await #require(api.broker).accessToken()
            #expect(try await self.show(api, token).status == .unauthorized)
            let session = try await api.devLogin()
            #expect(try await api.request(.get, "/api/v1/department", headers: session.headers).status == .unauthorized)
        }
    }

    @Test("PortalAPI department add/rotate-key/list/revoke, as an operator runs them")
    func operatorCommands() async throws {
        try await APIHarness.with { api async throws in
            let settings = api.database.settings
            let environment = [
                "PORTAL_DATABASE_URL":
                    "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable"
            ]
            let add = try ChildProcess(
                "PortalAPI", environment: environment, arguments: ["department", "add", "--name", "Burgerzaken", "--json"])
            #expect(await add.waitForExit() == 0, "\(add.output)")
            let lines = add.printed.split(separator: "\n")
            #expect(lines.count == 1, "\(add.output)")
            let issued = try JSONDecoder().decode([String: String].self, from: Data(try #require(lines.first).utf8))
            let id = try #require(issued["id"])
            #expect(issued["name"] == "Burgerzaken")
            let key = try #require(issued["apiKey"])
            #expect(try await self.show(api, key).status == .ok)

            let again = try ChildProcess("PortalAPI", environment: environment, arguments: ["department", "add", "--name", "Burgerzaken"])
            #expect(await again.waitForExit() == 1)
            #expect(again.output.contains("a department with this name exists already"))

            let rotate = try ChildProcess(
                "PortalAPI",
                environment: environment,
                arguments: ["department", "rotate-key", "--id", id, "--grace-hours", "0", "--json"]
            )
            #expect(await rotate.waitForExit() == 0, "\(rotate.output)")
            let rotated = try JSONDecoder().decode(
                [String: String].self,
                from: Data(try #require(rotate.printed.split(separator: "\n").first).utf8)
            )
            #expect(try await self.show(api, key).status == .unauthorized)
            #expect(try await self.show(api, try #require(rotated["apiKey"])).status == .ok)

            let list = try ChildProcess("PortalAPI", environment: environment, arguments: ["department", "list"])
            #expect(await list.waitForExit() == 0)
            #expect(list.output.contains("\(id)  active  Burgerzaken"))

            let revoke = try ChildProcess("PortalAPI", environment: environment, arguments: ["department", "revoke", "--id", id])
            #expect(await revoke.waitForExit() == 0)
            #expect(try await self.show(api, try #require(rotated["apiKey"])).status == .unauthorized)

            let bad = try ChildProcess("PortalAPI", environment: environment, arguments: ["department", "revoke", "--id", "nope"])
            #expect(await bad.waitForExit() != 0)
            #expect(bad.output.contains("--id must be a department id"))
        }
    }

    private func show(_ api: APIHarness, _ key: String) async throws -> TestResponse {
        try await api.request(.get, "/api/v1/department", headers: [.authorization: "Bearer \(key)"])
    }
}
