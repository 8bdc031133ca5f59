import Foundation
import Testing

@testable import Shared

/// Rendered messages are read back by Python's `email` package: an independent MIME implementation, so these tests
/// check what a mail program would see, not what our own encoder believes it wrote.
@Suite("E-mail messages (RFC 5322 and MIME)")
struct MailMessageTests {
    static let date = Date(timeIntervalSince1970: 1_795_255_200)  // Sat, 21 Nov 2026 10:00:00 +0000

    static func message(
        subject: String = "Uw aanvraag is bijgewerkt", text: String = "Hallo", html: String? = "<p lang=\"nl\">Hallo</p>"
    )
        -> MailMessage
    {
        MailMessage(
            from: Mailbox("noreply@haarlem.example", name: "Gemeente Haarlem"),
            to: Mailbox("resident@example.org", name: "J. de Vries"),
            subject: subject,
            text: text,
            html: html,
            messageID: "<status-event-42@portal.haarlem.example>",
            date: Self.date,
            language: "nl",
            unsubscribe: URL(string: "https://portal.haarlem.example/instellingen/e-mail")
        )
    }

    /// What Python's parser makes of the message.
    static func parsed(_ bytes: [UInt8]) throws -> [String: String] {
        let script = """
            import email, email.policy, json, sys
            m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
            out = {k: str(m[k]) for k in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "Content-Language")}
            out["headers"] = ",".join(m.keys())
            out["defects"] = str(len(m.defects) + sum(len(p.defects) for p in m.walk()))
            for part in m.walk():
                if part.get_content_maintype() == "text":
                    out[part.get_content_type()] = part.get_content().replace("\\r\\n", "\\n")
            print(json.dumps(out))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        return try JSONDecoder().decode([String: String].self, from: data)
    }

    @Test("headers and both parts read back exactly, in non-ASCII too")
    func roundTrip() throws {
        let subject = "Uw aanvraag ‘Paspoort’ is bijgewerkt — bekijk de nieuwe status in MijnHaarlem, ook als u in het buitenland woont"
        let text =
            "Beste meneer De Vries,\n\nEr is iets veranderd aan uw aanvraag. = gelijk, ü, €, 😀.\n.Een regel met een punt.\n"
            + String(repeating: "lang ", count: 40) + "\n"
        var message = Self.message(subject: subject, text: text, html: "<p lang=\"nl\">Beste meneer De Vries, €</p>")
        message.from.name = "Gemeente \"Haarlem\", Burgerzaken"
        let bytes = try message.rendered()
        let read = try Self.parsed(bytes)
        #expect(read["Subject"] == subject)
        #expect(read["From"] == "\"Gemeente \\\"Haarlem\\\", Burgerzaken\" <noreply@haarlem.example>")
        #expect(read["To"] == "\"J. de Vries\" <resident@example.org>")
        #expect(read["Date"] == "Sat, 21 Nov 2026 10:00:00 +0000")
        #expect(read["Message-ID"] == "<status-event-42@portal.haarlem.example>")
        #expect(read["List-Unsubscribe"] == "<https://portal.haarlem.example/instellingen/e-mail>")
        #expect(read["Content-Language"] == "nl")
        #expect(read["text/plain"] == text)
        #expect(read["text/html"] == "<p lang=\"nl\">Beste meneer De Vries, €</p>\n")
        #expect(read["defects"] == "0")
        // Every line ends in CRLF and stays within the limits: 78 for headers, 76 for quoted-printable bodies.
        let lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
        #expect(!String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(lines.allSatisfy { $0.utf8.count <= 78 }, "\(lines.filter { $0.utf8.count > 78 })")
        #expect(bytes.allSatisfy { $0 < 0x80 })
    }

    @Test("a field with a line break cannot add a header; other control characters and bad addresses are refused")
    func injection() throws {
        let read = try Self.parsed(try Self.message(subject: "Hallo\r\nBcc: everyone@example.org").rendered())
        #expect(read["Subject"] == "Hallo Bcc: everyone@example.org")
        #expect(!(read["headers"] ?? "").contains("Bcc"))
        #expect(throws: MailError.self) { try Self.message(subject: "bell \u{7}").rendered() }
        var badAddress = Self.message()
        badAddress.to = Mailbox("resident@example.org>\r\nBcc: x@example.org")
        #expect(throws: MailError.self) { try badAddress.rendered() }
        var badID = Self.message()
        badID.messageID = "<a@b>\r\nBcc: x@example.org"
        #expect(throws: MailError.self) { try badID.rendered() }
    }

    @Test("a text-only message is one quoted-printable part")
    func textOnly() throws {
        let read = try Self.parsed(try Self.message(text: "Alleen tekst, één regel.", html: nil).rendered())
        #expect(read["text/plain"] == "Alleen tekst, één regel.\n")
        #expect(read["text/html"] == nil)
    }

    @Test("a word too long to fold, or a character of many scalars, still gives lines within 78 and reads back")
    func longWords() throws {
        let long = String(repeating: "x", count: 200)
        let combining = "e" + String(repeating: "\u{301}", count: 40)
        for subject in ["Zaak \(long)", "Zaak \(combining) klaar"] {
            let bytes = try Self.message(subject: subject).rendered()
            let lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
            #expect(lines.allSatisfy { $0.utf8.count <= 78 }, "\(lines.filter { $0.utf8.count > 78 })")
            #expect(try Self.parsed(bytes)["Subject"] == subject)
        }
        var longLink = Self.message()
        longLink.unsubscribe = URL(string: "https://portal.example/" + String(repeating: "a", count: 1000))
        #expect(throws: MailError.self) { try longLink.rendered() }
    }
}
