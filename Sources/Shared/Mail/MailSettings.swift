public import Foundation

/// Where the portal's mail goes and whom it is from: `PORTAL_SMTP_URL`, `PORTAL_MAIL_FROM`, `PORTAL_SMTP_CA_FILE`,
/// `PORTAL_SMTP_TIMEOUT_SECONDS` (docs/CONFIGURATION.md).
public struct MailSettings: Sendable {
    public var relay: SMTPRelay
    public var from: Mailbox

    public init(relay: SMTPRelay, from: Mailbox) {
        self.relay = relay
        self.from = from
    }

    /// Reads the settings. A relay without TLS is accepted only on loopback and without credentials (local runs);
    /// anything else that could send a password or a resident's mail in the clear stops the process at start.
    public init(_ environment: EnvironmentReader, publicURL: URL) throws(ConfigurationError) {
        let from = try environment.requiredString("PORTAL_MAIL_FROM")
        do {
            try MailAddress.check(from)
        } catch {
            throw ConfigurationError(variable: "PORTAL_MAIL_FROM", problem: "must be an ASCII e-mail address like noreply@example.org")
        }
        let timeout = try environment.seconds("PORTAL_SMTP_TIMEOUT_SECONDS", default: .seconds(60), in: 1...600)
        var relay = try Self.relay(try environment.requiredString("PORTAL_SMTP_URL"), heloDomain: publicURL.host ?? "localhost")
        relay.replyTimeout = timeout
        relay.connectTimeout = min(timeout, .seconds(10))
        if let file = environment.string("PORTAL_SMTP_CA_FILE") {
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw ConfigurationError(variable: "PORTAL_SMTP_CA_FILE", problem: "names a file that cannot be read")
            }
            relay.certificateAuthorityFile = file
        }
        self.init(relay: relay, from: Mailbox(from, name: environment.string("PORTAL_MAIL_FROM_NAME")))
    }

    /// `smtp://[user:password@]host[:port][?tls=starttls]` or `smtps://[user:password@]host[:port]`.
    static func relay(_ text: String, heloDomain: String) throws(ConfigurationError) -> SMTPRelay {
        func problem(_ what: String) -> ConfigurationError {
            // Never repeat the value: it may hold the relay's password.
            ConfigurationError(variable: "PORTAL_SMTP_URL", problem: what)
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            let bracketed = components.host, !bracketed.isEmpty
        else {
            throw problem("must look like smtp://user:password@host:587?tls=starttls or smtps://user:password@host:465")
        }
        let host = bracketed.hasPrefix("[") && bracketed.hasSuffix("]") ? String(bracketed.dropFirst().dropLast()) : bracketed
        let tls = components.queryItems?.first { $0.name == "tls" }?.value?.lowercased()
        let security: SMTPTransportSecurity
        switch (scheme, tls) {
        case ("smtps", nil): security = .implicitTLS
        case ("smtp", "starttls"): security = .startTLS
        case ("smtp", nil), ("smtp", "none"): security = .none
        default: throw problem("must use smtps:// (TLS from the start) or smtp:// with ?tls=starttls")
        }
        // URLComponents has already percent-decoded these.
        let user = components.user
        let password = components.password
        if (user == nil) != (password == nil) { throw problem("must give both a user and a password, or neither") }
        if security == .none {
            guard ["localhost", "127.0.0.1", "::1"].contains(host.lowercased()) else {
                throw problem("without TLS is only allowed for a relay on this machine (localhost); use ?tls=starttls or smtps://")
            }
            guard user == nil else { throw problem("sends credentials only over TLS; use ?tls=starttls or smtps://") }
        }
        let port = components.port ?? (security == .implicitTLS ? 465 : security == .startTLS ? 587 : 25)
        guard (1...65535).contains(port) else { throw problem("has a port outside 1 to 65535") }
        return SMTPRelay(host: host, port: port, security: security, user: user, password: password, heloDomain: heloDomain)
    }
}
