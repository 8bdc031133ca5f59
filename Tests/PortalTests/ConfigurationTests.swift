import Foundation
import Logging
import Testing

@testable import Shared

@Suite("Configuration from the environment")
struct ConfigurationTests {
    let valid = ["PORTAL_DATABASE_URL": "postgres://portal:secret@db.example:6543/portal?sslmode=require"]

    @Test("defaults apply when only the required setting is given")
    func defaults() throws {
        let configuration = try PortalConfiguration(environment: EnvironmentReader(self.valid), defaultHTTPPort: 8081)
        #expect(configuration.httpHost == "127.0.0.1")
        #expect(configuration.httpPort == 8081)
        #expect(configuration.logLevel == .info)
        #expect(configuration.publicURL.absoluteString == "http://localhost:8080")
        #expect(configuration.jobs == JobSettings())
        #expect(configuration.database.host == "db.example")
        #expect(configuration.database.port == 6543)
        #expect(configuration.database.username == "portal")
        #expect(configuration.database.password == "secret")
        #expect(configuration.database.database == "portal")
        #expect(configuration.database.tlsMode == .require)
    }

    @Test("a missing database URL names the variable")
    func missingDatabase() {
        #expect(throws: ConfigurationError(variable: "PORTAL_DATABASE_URL", problem: "is required but not set")) {
            try PortalConfiguration(environment: EnvironmentReader([:]), defaultHTTPPort: 8080)
        }
    }

    @Test(
        "a malformed value stops with one line naming its variable",
        arguments: [
            ("PORTAL_HTTP_PORT", "eighty"),
            ("PORTAL_HTTP_PORT", "70000"),
            ("PORTAL_LOG_LEVEL", "loud"),
            ("PORTAL_PUBLIC_URL", "portal.example"),
            ("PORTAL_JOB_LEASE_SECONDS", "0"),
            ("PORTAL_JOB_CONCURRENCY", "sync=many"),
            ("PORTAL_DATABASE_MAX_CONNECTIONS", "1"),
            ("PORTAL_DATABASE_URL", "mysql://portal@db/portal"),
            ("PORTAL_DATABASE_URL", "postgres://portal:secret@db.example/portal?sslmode=sometimes"),
        ]
    )
    func malformed(variable: String, value: String) {
        var environment = self.valid
        environment[variable] = value
        do {
            _ = try PortalConfiguration(environment: EnvironmentReader(environment), defaultHTTPPort: 8080)
            Issue.record("\(variable)=\(value) was accepted")
        } catch {
            #expect(error.variable == variable)
            #expect(!error.description.contains("\n"))
            #expect(!error.description.contains("secret"), "a password must never be echoed")
        }
    }

    @Test("job concurrency is one number or a list per queue")
    func concurrency() throws {
        var environment = self.valid
        environment["PORTAL_JOB_CONCURRENCY"] = "sync=8, notifications=20"
        let perQueue = try PortalConfiguration(environment: EnvironmentReader(environment), defaultHTTPPort: 8080).jobs
        #expect(perQueue.concurrency(for: "sync") == 8)
        #expect(perQueue.concurrency(for: "notifications") == 20)
        #expect(perQueue.concurrency(for: "other") == 10)

        environment["PORTAL_JOB_CONCURRENCY"] = "3"
        let all = try PortalConfiguration(environment: EnvironmentReader(environment), defaultHTTPPort: 8080).jobs
        #expect(all.concurrency(for: "sync") == 3)
        #expect(all.concurrency(for: "anything") == 3)
    }

    @Test("the database description carries no password")
    func redacted() throws {
        let settings = try DatabaseSettings(url: "postgres://portal:s3cr%40t@localhost/portal")
        #expect(settings.password == "s3cr@t")
        #expect(settings.redactedDescription == "postgres://portal@localhost:5432/portal")
    }
}
