import Foundation
import Testing

@testable import Shared

@Suite("Mail settings")
struct MailSettingsTests {
    static let publicURL = URL(string: "https://mijn.haarlem.example")!

    static func settings(_ values: [String: String]) throws(ConfigurationError) -> MailSettings {
        try MailSettings(EnvironmentReader(values), publicURL: Self.publicURL)
    }

    @Test("relay URLs: implicit TLS, STARTTLS, local plain text; ports by default; credentials percent-decoded")
    func relays() throws {
        let implicit = try Self.settings([
            "PORTAL_SMTP_URL": "smtps://portal:p%40ss@smtp.example.org", "PORTAL_MAIL_FROM": "noreply@haarlem.example",
        ])
        #expect(implicit.relay.security == .implicitTLS && implicit.relay.port == 465)
        #expect(implicit.relay.user == "portal" && implicit.relay.password == "p@ss")
        #expect(implicit.relay.heloDomain == "mijn.haarlem.example")
        #expect(implicit.from == Mailbox("noreply@haarlem.example"))
        let startTLS = try Self.settings([
            "PORTAL_SMTP_URL": "smtp://u:p@smtp.example.org?tls=starttls", "PORTAL_MAIL_FROM": "noreply@haarlem.example",
            "PORTAL_MAIL_FROM_NAME": "Gemeente Haarlem", "PORTAL_SMTP_TIMEOUT_SECONDS": "5",
        ])
        #expect(startTLS.relay.security == .startTLS && startTLS.relay.port == 587 && startTLS.relay.replyTimeout == .seconds(5))
        #expect(startTLS.from.name == "Gemeente Haarlem")
        let local = try Self.settings(["PORTAL_SMTP_URL": "smtp://127.0.0.1:2525", "PORTAL_MAIL_FROM": "noreply@haarlem.example"])
        #expect(local.relay.security == .none && local.relay.port == 2525 && local.relay.user == nil)
        let ipv6 = try Self.settings(["PORTAL_SMTP_URL": "smtp://[::1]:2525", "PORTAL_MAIL_FROM": "noreply@haarlem.example"])
        #expect(ipv6.relay.host == "::1")
        // Percent-encoding is undone once: "%25" is a percent sign, "%41" an A.
        let encoded = try Self.settings([
            "PORTAL_SMTP_URL": "smtps://u:p%25ss%41@smtp.example.org", "PORTAL_MAIL_FROM": "noreply@haarlem.example",
        ])
        #expect(encoded.relay.password == "p%ssA")
    }

    @Test("anything that would send mail or a password in the clear, or is malformed, stops with one line naming the setting")
    func refusals() {
        let from = ["PORTAL_MAIL_FROM": "noreply@haarlem.example"]
        let bad: [([String: String], String)] = [
            (from.merging(["PORTAL_SMTP_URL": "smtp://smtp.example.org"]) { $1 }, "PORTAL_SMTP_URL"),
            (from.merging(["PORTAL_SMTP_URL": "smtp://u:secretvalue@localhost:2525"]) { $1 }, "PORTAL_SMTP_URL"),
            (from.merging(["PORTAL_SMTP_URL": "smtps://u@smtp.example.org"]) { $1 }, "PORTAL_SMTP_URL"),
            (from.merging(["PORTAL_SMTP_URL": "http://smtp.example.org"]) { $1 }, "PORTAL_SMTP_URL"),
            (from.merging(["PORTAL_SMTP_URL": "smtps://smtp.example.org?tls=starttls"]) { $1 }, "PORTAL_SMTP_URL"),
            (from, "PORTAL_SMTP_URL"),
            (
                ["PORTAL_SMTP_URL": "smtps://smtp.example.org", "PORTAL_MAIL_FROM": "Gemeente <noreply@haarlem.example>"],
                "PORTAL_MAIL_FROM"
            ),
            (
                from.merging(["PORTAL_SMTP_URL": "smtps://smtp.example.org", "PORTAL_SMTP_CA_FILE": "/nonexistent.pem"]) { $1 },
                "PORTAL_SMTP_CA_FILE"
            ),
        ]
        for (values, variable) in bad {
            do {
                _ = try Self.settings(values)
                Issue.record("accepted \(values)")
            } catch {
                #expect(error.variable == variable, "\(values)")
                #expect(!error.description.contains("secretvalue"))
            }
        }
    }
}
