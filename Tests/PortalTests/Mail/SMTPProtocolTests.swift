import Foundation
import Testing

@testable import Shared

@Suite("SMTP protocol core: replies and commands")
struct SMTPProtocolTests {
    static let ehlo = Array(
        "250-relay.example.org greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-auth plain LOGIN\r\n250 8BITMIME\r\n"
            .utf8)

    @Test("a multi-line reply reads the same however the bytes are split, and its capabilities are kept")
    func everySplit() throws {
        for split in 0...Self.ehlo.count {
            var parser = SMTPReplyParser()
            try parser.append(Self.ehlo[..<split])
            let early = parser.next()
            #expect(early == nil || split == Self.ehlo.count)
            try parser.append(Self.ehlo[split...])
            let reply = try #require(early ?? parser.next())
            #expect(reply.code == 250 && reply.lines.count == 6 && reply.kind == .completed)
            let more = parser.next()
            #expect(more == nil && !parser.hasUnreadInput)
            let capabilities = SMTPCapabilities(ehlo: reply)
            #expect(capabilities.startTLS && capabilities.pipelining && capabilities.eightBitMIME)
            #expect(capabilities.authMechanisms == ["PLAIN", "LOGIN"])
            #expect(capabilities.maximumSize == 10_240_000)
        }
    }

    @Test("pipelined replies come out one by one; bare LF ends a line too; kinds follow the first digit")
    func pipelined() throws {
        var parser = SMTPReplyParser()
        try parser.append(
            Array("250 2.1.0 Ok\r\n451 4.3.0 Try again\n550 5.1.1 No such user\r\n354 End data with <CR><LF>.<CR><LF>\r\n".utf8))
        let replies = [parser.next(), parser.next(), parser.next(), parser.next()].compactMap { $0 }
        #expect(replies.map(\.code) == [250, 451, 550, 354])
        #expect(replies.map(\.kind) == [.completed, .transient, .permanent, .intermediate])
        #expect(replies[1].lines == ["4.3.0 Try again"])
        #expect(replies[1].description == "451 4.3.0 Try again")
        let more = parser.next()
        #expect(more == nil)
    }

    @Test("replies that arrive before they are read count as unread input (what STARTTLS must not leave behind)")
    func unreadInput() throws {
        var parser = SMTPReplyParser()
        try parser.append(Array("220 go ahead\r\n250 AUTH LOGIN\r\n".utf8))
        let first = parser.next()
        #expect(first?.code == 220)
        #expect(parser.hasUnreadInput)
        var clean = SMTPReplyParser()
        try clean.append(Array("220 go ahead\r\n".utf8))
        _ = clean.next()
        #expect(!clean.hasUnreadInput)
        // A server's control characters do not reach our log lines.
        #expect(SMTPReply(code: 550, lines: ["no\u{1B}[31m such\u{7} user"]).description == "550 no[31m such user")
    }

    @Test("malformed or oversized replies are errors, and the parser stays failed")
    func malformed() throws {
        for bad in ["hello\r\n", "25 short\r\n", "650 six hundred\r\n", "250_wrong separator\r\n", "250-one\r\n251 two\r\n"] {
            var parser = SMTPReplyParser()
            #expect(throws: SMTPReplyError.self, "\(bad)") { try parser.append(Array(bad.utf8)) }
            #expect(throws: SMTPReplyError.self) { try parser.append(Array("250 ok\r\n".utf8)) }
        }
        var long = SMTPReplyParser()
        #expect(throws: SMTPReplyError.self) { try long.append([UInt8](repeating: UInt8(ascii: "2"), count: 3000)) }
        var many = SMTPReplyParser()
        let lines = Array(String(repeating: "250-x\r\n", count: SMTPReplyParser.maximumLines + 1).utf8)
        #expect(throws: SMTPReplyError.self) { try many.append(lines) }
    }

    @Test("commands are encoded with CRLF; arguments that could break a line are refused; credentials never show")
    func commands() throws {
        #expect(String(decoding: try SMTPCommand.ehlo("portal.example.org").bytes, as: UTF8.self) == "EHLO portal.example.org\r\n")
        #expect(
            String(decoding: try SMTPCommand.mailFrom("noreply@haarlem.example").bytes, as: UTF8.self)
                == "MAIL FROM:<noreply@haarlem.example>\r\n")
        #expect(String(decoding: try SMTPCommand.mailFrom("").bytes, as: UTF8.self) == "MAIL FROM:<>\r\n")
        #expect(String(decoding: try SMTPCommand.recipient("a.b@example.org").bytes, as: UTF8.self) == "RCPT TO:<a.b@example.org>\r\n")
        // base64("\0user\0secret"), as RFC 4616 describes.
        let plain = try SMTPCommand.authPlain(user: "user", password: "secret")
        #expect(String(decoding: plain.bytes, as: UTF8.self) == "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        #expect(plain.description == "AUTH PLAIN")
        #expect(try SMTPCommand.credentialLine("secret").description == "(credential)")
        #expect(throws: Never.self) { try SMTPCommand.recipient("j.de-vries+portal@mail.example.org") }
        for address in [
            "a@b.org\r\nRCPT TO:<x@y.org>", "a b@c.org", "<a@b.org>", "nobody", "@b.org", "a@", "jürgen@example.org",
            "a@b.nl,evil@x.nl", "@r,@s:x@y.org", "a@@b.org", "a..b@c.org", ".a@b.org", "a@-b.org", "\"a\"@b.org",
        ] {
            #expect(throws: MailError.self, "\(address)") { try SMTPCommand.recipient(address) }
        }
        #expect(throws: MailError.self) { try SMTPCommand.ehlo("portal\r\nQUIT") }
        #expect(throws: MailError.self) { try SMTPCommand.authPlain(user: "user", password: "") }
    }

    @Test("message data: dots at line starts doubled, every line ended by CRLF, and the terminator")
    func messageData() {
        let data = SMTPCommand.messageData(Array("Subject: x\r\n\r\n.hidden\n..two\rlast".utf8))
        #expect(String(decoding: data, as: UTF8.self) == "Subject: x\r\n\r\n..hidden\r\n...two\r\nlast\r\n.\r\n")
        #expect(String(decoding: SMTPCommand.messageData(Array("one\r\n".utf8)), as: UTF8.self) == "one\r\n.\r\n")
    }
}
