import Foundation
import Logging
import Shared
import Testing

/// The SMTP client against a real server (aiosmtpd) over real TLS: what arrives, and what is refused.
@Suite("SMTP client against a real server")
struct SMTPConnectionTests {
    let logger = Logger(label: "test")

    func relay(
        _ server: SMTPTestServer, _ security: SMTPTransportSecurity, user: String? = "portal", password: String? = "s3cret"
    )
        throws -> SMTPRelay
    {
        SMTPRelay(
            host: "localhost",
            port: server.port,
            security: security,
            user: user,
            password: password,
            certificateAuthorityFile: try SMTPTestServer.certificate.get().certificate,
            heloDomain: "portal.test",
            replyTimeout: .seconds(10)
        )
    }

    static func envelope(to recipient: String = "resident@example.org", id: Int) throws -> SMTPEnvelope {
        let message = MailMessage(
            from: Mailbox("noreply@haarlem.example", name: "Gemeente Haarlem"),
            to: Mailbox(recipient),
            subject: "Uw aanvraag is bijgewerkt",
            text: "Er is iets veranderd.\n.Deze regel begint met een punt.",
            html: "<p lang=\"nl\">Er is iets veranderd.</p>",
            messageID: "<status-event-\(id)@portal.test>",
            date: Date(timeIntervalSince1970: 1_795_255_200),
            language: "nl"
        )
        return SMTPEnvelope(
            sender: "noreply@haarlem.example", recipient: recipient, data: SMTPCommand.messageData(try message.rendered()))
    }

    @Test("STARTTLS and AUTH: two messages on one connection arrive whole, encrypted and authenticated")
    func startTLS() async throws {
        let server = try await SMTPTestServer(.starttls, user: "portal", password: "s3cret")
        defer { server.stop() }
        try await SMTPConnection.withConnection(to: try self.relay(server, .startTLS), logger: self.logger) { connection in
            for id in 1...2 {
                let reply = try await connection.send(try Self.envelope(id: id))
                #expect(reply.code == 250)
            }
        }
        let messages = try server.messages()
        #expect(messages.count == 2)
        for (index, (message, envelope)) in messages.enumerated() {
            #expect(message.contains("Message-ID: <status-event-\(index + 1)@portal.test>"))
            // The dot-stuffed line arrives with its single dot (quoted-printable encodes it as =2E).
            #expect(message.contains("=2EDeze regel begint met een punt."))
            #expect(envelope["tls"] == .bool(true) && envelope["authenticated"] == .bool(true))
            #expect(envelope["to"] == .array([.string("resident@example.org")]))
        }
    }

    @Test("implicit TLS from the first byte")
    func implicitTLS() async throws {
        let server = try await SMTPTestServer(.implicit, user: "portal", password: "s3cret")
        defer { server.stop() }
        try await SMTPConnection.withConnection(to: try self.relay(server, .implicitTLS), logger: self.logger) { connection in
            let reply = try await connection.send(try Self.envelope(id: 1))
            #expect(reply.code == 250)
        }
        #expect(try server.messages().count == 1)
    }

    @Test("a refused recipient fails that message only (4xx transient, 5xx permanent); the next one goes through")
    func refusals() async throws {
        let server = try await SMTPTestServer(.plain, refuse: ["busy@example.org": 451, "gone@example.org": 550])
        defer { server.stop() }
        let relay = try self.relay(server, .none, user: nil, password: nil)
        try await SMTPConnection.withConnection(to: relay, logger: self.logger) { connection in
            for (recipient, kind) in [("busy@example.org", SMTPFailure.Kind.transient), ("gone@example.org", .permanent)] {
                do {
                    _ = try await connection.send(try Self.envelope(to: recipient, id: 1))
                    Issue.record("\(recipient) was accepted")
                } catch let failure as SMTPFailure {
                    #expect(failure.kind == kind)
                    #expect(failure.reply?.code == (kind == .transient ? 451 : 550))
                }
            }
            let reply = try await connection.send(try Self.envelope(id: 2))
            #expect(reply.code == 250)
        }
        #expect(try server.messages().count == 1)
    }

    @Test("no plain-text fallback, no credentials in the clear, no untrusted certificate, no wrong password")
    func refusedSessions() async throws {
        let plain = try await SMTPTestServer(.plain)
        defer { plain.stop() }
        let secure = try await SMTPTestServer(.starttls, user: "portal", password: "s3cret")
        defer { secure.stop() }
        var untrusted = try self.relay(secure, .startTLS)
        untrusted.certificateAuthorityFile = nil
        let cases: [(String, SMTPRelay)] = [
            ("STARTTLS asked, not offered", try self.relay(plain, .startTLS, user: nil, password: nil)),
            ("credentials over plain text", try self.relay(plain, .none)),
            ("a certificate the system does not trust", untrusted),
            ("a wrong password", try self.relay(secure, .startTLS, password: "wrong")),
        ]
        for (name, relay) in cases {
            do {
                _ = try await SMTPConnection.withConnection(to: relay, logger: self.logger) { _ in
                    Issue.record("\(name): the session opened")
                }
            } catch let failure as SMTPFailure {
                #expect(failure.kind == .configuration, "\(name): \(failure)")
            }
        }
        #expect(try plain.messages().isEmpty && secure.messages().isEmpty)
    }

    @Test("a relay that accepts the connection and then says nothing is given up after the reply timeout")
    func silentRelay() async throws {
        // A listener that never greets: the connection opens, the greeting never comes.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 && listen(listener, 4) == 0
            }
        }
        try #require(listening)
        let relay = SMTPRelay(
            host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)), security: .none, heloDomain: "portal.test",
            replyTimeout: .seconds(1))
        let started = ContinuousClock.now
        do {
            try await SMTPConnection.withConnection(to: relay, logger: self.logger) { _ in Issue.record("the session opened") }
        } catch let failure as SMTPFailure {
            #expect(failure.kind == .transient)
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
