import Foundation
import Testing

@testable import PortalAPI
@testable import Shared

@Suite("API settings")
struct APISettingsTests {
    let portal: PortalConfiguration

    init() throws {
        self.portal = PortalConfiguration(
            database: try DatabaseSettings(url: "postgres://portal@localhost/portal", maximumConnections: 4),
            publicURL: try #require(URL(string: "https://mijn.gemeente.example"))
        )
    }

    let valid = [
        "PORTAL_AUDIT_KEY": "an-audit-key-of-at-least-32-characters",
        "PORTAL_OIDC_ISSUER": "https://broker.example",
        "PORTAL_OIDC_CLIENT_ID": "portal",
        "PORTAL_OIDC_CLIENT_SECRET": "s3cret-client-secret",
    ]

    @Test("defaults: no development login, DigiD session times, audience from the client id")
    func defaults() throws {
        let settings = try APISettings(environment: EnvironmentReader(self.valid), portal: self.portal)
        #expect(settings.devLogin == false)
        #expect(settings.sessions.idleTimeout == .seconds(900))
        #expect(settings.sessions.absoluteTimeout == .seconds(43_200))
        let oidc = try #require(settings.oidc)
        #expect(oidc.audience == "portal")
        #expect(oidc.bsnClaim == "bsn" && oidc.kvkClaim == "kvk")
        #expect(oidc.redirectURI == "https://mijn.gemeente.example/auth/callback")
        #expect(oidc.minimumACR == nil)
        #expect(settings.responseDeadline == .seconds(30))
        var slower = self.valid
        slower["PORTAL_HTTP_RESPONSE_SECONDS"] = "45"
        #expect(try APISettings(environment: EnvironmentReader(slower), portal: self.portal).responseDeadline == .seconds(45))

        var withoutBroker = self.valid
        withoutBroker["PORTAL_OIDC_ISSUER"] = nil
        #expect(try APISettings(environment: EnvironmentReader(withoutBroker), portal: self.portal).oidc == nil)
    }

    @Test("rate limits: the defaults, requests/seconds, off, and trusted proxies as addresses and blocks")
    func rateLimits() throws {
        let defaults = try APISettings(environment: EnvironmentReader(self.valid), portal: self.portal).rateLimits
        #expect(defaults.login == RateLimit(requests: 60, window: .seconds(60)))
        #expect(defaults.department == RateLimit(requests: 100, window: .seconds(1)))
        #expect(defaults.trustedProxies.isEmpty)
        var environment = self.valid
        environment["PORTAL_RATE_LIMIT_LOGIN"] = "10/300"
        environment["PORTAL_RATE_LIMIT_DEPARTMENT"] = "off"
        environment["PORTAL_HTTP_TRUSTED_PROXIES"] = "10.0.0.0/8, 192.0.2.1,fd00::/8"
        let set = try APISettings(environment: EnvironmentReader(environment), portal: self.portal).rateLimits
        #expect(set.login == RateLimit(requests: 10, window: .seconds(300)))
        #expect(set.department == nil)
        #expect(set.trustedProxies.count == 3)
    }

    @Test(
        "a missing or malformed setting stops the API with one line naming it, without echoing a secret",
        arguments: [
            ("PORTAL_AUDIT_KEY", nil),
            ("PORTAL_AUDIT_KEY", "too-short-secret"),
            ("PORTAL_OIDC_CLIENT_ID", nil),
            ("PORTAL_OIDC_CLIENT_SECRET", nil),
            ("PORTAL_OIDC_ISSUER", "http://broker.example"),
            ("PORTAL_OIDC_ISSUER", "not a url"),
            ("PORTAL_OIDC_MIN_ACR", "urn:example:unknown-level"),
            ("PORTAL_DEV_LOGIN", "sometimes"),
            ("PORTAL_SESSION_IDLE_SECONDS", "5"),
            ("PORTAL_SESSION_ABSOLUTE_SECONDS", "600"),
            ("PORTAL_RATE_LIMIT_LOGIN", "60"),
            ("PORTAL_RATE_LIMIT_LOGIN", "0/60"),
            ("PORTAL_RATE_LIMIT_DEPARTMENT", "100/s"),
            ("PORTAL_HTTP_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("PORTAL_HTTP_RESPONSE_SECONDS", "0"),
            ("PORTAL_HTTP_RESPONSE_SECONDS", "soon"),
        ] as [(String, String?)]
    )
    func malformed(variable: String, value: String?) {
        var environment = self.valid
        environment[variable] = value
        if variable == "PORTAL_SESSION_ABSOLUTE_SECONDS" { environment["PORTAL_SESSION_IDLE_SECONDS"] = "900" }
        do {
            _ = try APISettings(environment: EnvironmentReader(environment), portal: self.portal)
            Issue.record("\(variable)=\(value ?? "(unset)") was accepted")
        } catch {
            #expect(error.variable == variable)
            #expect(!error.description.contains("\n"))
            #expect(!error.description.contains("s3cret") && !error.description.contains("too-short-secret"))
        }
    }
}
