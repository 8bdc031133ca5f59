import Foundation

/// A command to an SMTP server (RFC 5321, section 4.1), encoded as the bytes to send. Every argument is checked
/// when the command is made, so nothing that reaches the wire can end a line early and smuggle in a command.
public struct SMTPCommand: Sendable, Equatable, CustomStringConvertible {
    /// The bytes to send, CRLF included.
    public let bytes: [UInt8]
    /// What a log line may show: the verb, and for AUTH never the credentials.
    public let description: String

    private init(_ line: String, description: String? = nil) {
        self.bytes = Array(line.utf8) + [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
        self.description = description ?? line
    }

    public static func ehlo(_ domain: String) throws -> SMTPCommand {
        try Self.checkDomain(domain)
        return SMTPCommand("EHLO \(domain)")
    }

    public static let startTLS = SMTPCommand("STARTTLS")
    public static let data = SMTPCommand("DATA")
    public static let reset = SMTPCommand("RSET")
    public static let quit = SMTPCommand("QUIT")
    public static let noop = SMTPCommand("NOOP")

    /// `MAIL FROM:<address>`; an empty address is the null reverse-path (`<>`), for bounces.
    public static func mailFrom(_ address: String) throws -> SMTPCommand {
        if !address.isEmpty { try MailAddress.check(address) }
        return SMTPCommand("MAIL FROM:<\(address)>", description: "MAIL FROM")
    }

    public static func recipient(_ address: String) throws -> SMTPCommand {
        try MailAddress.check(address)
        return SMTPCommand("RCPT TO:<\(address)>", description: "RCPT TO")
    }

    /// `AUTH PLAIN` with the initial response (RFC 4616): no authorisation identity, the user and the password.
    public static func authPlain(user: String, password: String) throws -> SMTPCommand {
        try Self.checkCredential(user)
        try Self.checkCredential(password)
        let response = [0] + Array(user.utf8) + [0] + Array(password.utf8)
        return SMTPCommand("AUTH PLAIN \(Data(response).base64EncodedString())", description: "AUTH PLAIN")
    }

    /// `AUTH LOGIN`, answered by the user and then the password, each as a line of its own (``credentialLine(_:)``).
    public static let authLogin = SMTPCommand("AUTH LOGIN")

    /// One step of AUTH LOGIN.
    public static func credentialLine(_ value: String) throws -> SMTPCommand {
        try Self.checkCredential(value)
        return SMTPCommand(Data(value.utf8).base64EncodedString(), description: "(credential)")
    }

    /// What follows DATA: the message with every line ending in CRLF (a bare CR or LF becomes one), a dot at the
    /// start of a line doubled (RFC 5321, section 4.5.2), and the ending `CRLF . CRLF`.
    public static func messageData(_ message: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(message.count + message.count / 50 + 5)
        var lineStart = true
        var index = 0
        while index < message.count {
            let byte = message[index]
            if byte == 13 || byte == 10 {
                output += [13, 10]
                // CRLF is one line end; so is a lone CR or LF.
                index += (byte == 13 && index + 1 < message.count && message[index + 1] == 10) ? 2 : 1
                lineStart = true
                continue
            }
            if lineStart && byte == UInt8(ascii: ".") { output.append(UInt8(ascii: ".")) }
            output.append(byte)
            lineStart = false
            index += 1
        }
        if !lineStart { output += [13, 10] }
        output += [UInt8(ascii: "."), 13, 10]
        return output
    }

    private static func checkDomain(_ domain: String) throws {
        let allowed = domain.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
                || byte == UInt8(ascii: ":")
        }
        guard !domain.isEmpty, domain.utf8.count <= 255, allowed else { throw MailError.invalid("EHLO domain") }
    }

    private static func checkCredential(_ value: String) throws {
        guard !value.isEmpty, !value.utf8.contains(0) else { throw MailError.invalid("SMTP credential") }
    }
}

/// Why a message or command was refused before anything was sent.
public enum MailError: Error, Equatable, CustomStringConvertible {
    /// A field that cannot be sent safely (named, never shown: it may be an address).
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let field): "invalid \(field)"
        }
    }
}

/// Addresses as they may appear in `MAIL FROM`, `RCPT TO` and the `From`/`To` headers: ASCII `local@domain` with a
/// dot-atom local part (RFC 5322, section 3.4.1) and a host name, exactly one `@`, so no address can name a second
/// recipient, a source route, or break a command or a header. (Internationalised addresses need SMTPUTF8, which
/// relays do not all offer; they are refused here rather than mangled.)
public enum MailAddress {
    /// `text` with every word that holds an `@` replaced by `<address>`: a relay's reply often repeats the recipient,
    /// and log lines, job errors and operator output keep addresses out.
    public static func redacted(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false)
            .map { $0.contains("@") ? "<address>" : String($0) }
            .joined(separator: " ")
    }

    private static let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-".utf8)

    public static func check(_ address: String) throws {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard address.utf8.count <= 254, parts.count == 2, Self.isDotAtom(parts[0]), parts[0].utf8.count <= 64,
            Self.isHostName(parts[1])
        else { throw MailError.invalid("e-mail address") }
    }

    private static func isDotAtom(_ text: Substring) -> Bool {
        let atoms = text.split(separator: ".", omittingEmptySubsequences: false)
        return atoms.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { Self.atext.contains($0) } }
    }

    private static func isHostName(_ text: Substring) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return text.utf8.count <= 253
            && labels.allSatisfy { label in
                (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                    && label.utf8.allSatisfy {
                        $0 < 0x80
                            && (Character(UnicodeScalar($0)).isLetter || Character(UnicodeScalar($0)).isNumber || $0 == UInt8(ascii: "-"))
                    }
            }
    }
}
