public import Foundation

/// A name and an address, as in `From` and `To`.
public struct Mailbox: Sendable, Equatable {
    public var name: String?
    public var address: String

    public init(_ address: String, name: String? = nil) {
        self.address = address
        self.name = name
    }
}

/// An e-mail as the portal sends it: a plain-text part and optionally an HTML part, with the headers residents' mail
/// programs expect. ``rendered()`` writes it as RFC 5322 and MIME (RFC 2045–2047) text: CRLF line endings, no line
/// longer than the limits, every header value either plain printable ASCII or RFC 2047 encoded words, bodies in
/// quoted-printable. No field can add a header or end the message: line breaks in a subject or name become spaces,
/// other control characters and malformed addresses are refused.
public struct MailMessage: Sendable, Equatable {
    public var from: Mailbox
    public var to: Mailbox
    public var subject: String
    public var text: String
    public var html: String?
    /// `<unique@domain>`. Stable per notification, so that a resend after a crash carries the same id and mail
    /// programs show one message.
    public var messageID: String
    public var date: Date
    /// `nl` or `en`: the language of the text (`Content-Language`).
    public var language: String
    /// The resident's mail preferences page (`List-Unsubscribe`, RFC 2369).
    public var unsubscribe: URL?

    public init(
        from: Mailbox,
        to: Mailbox,
        subject: String,
        text: String,
        html: String? = nil,
        messageID: String,
        date: Date,
        language: String,
        unsubscribe: URL? = nil
    ) {
        self.from = from
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.messageID = messageID
        self.date = date
        self.language = language
        self.unsubscribe = unsubscribe
    }

    /// The message as it goes after DATA (before dot-stuffing, which is the transport's: ``SMTPCommand/messageData(_:)``).
    public func rendered() throws -> [UInt8] {
        try MailAddress.check(self.from.address)
        try MailAddress.check(self.to.address)
        guard Self.isMessageID(self.messageID) else { throw MailError.invalid("Message-ID") }
        guard self.language.utf8.allSatisfy({ (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || $0 == UInt8(ascii: "-") }),
            !self.language.isEmpty
        else { throw MailError.invalid("language") }

        var headers = MIMEHeaders()
        headers.add("Date", Self.rfc5322Date(self.date))
        try headers.add("From", Self.mailbox(self.from))
        try headers.add("To", Self.mailbox(self.to))
        try headers.add("Subject", MIMEHeaders.text(self.subject, field: "Subject"))
        headers.add("Message-ID", self.messageID)
        headers.add("MIME-Version", "1.0")
        headers.add("Content-Language", self.language)
        if let unsubscribe {
            let link = unsubscribe.absoluteString
            guard link.hasPrefix("https://") || link.hasPrefix("http://"), link.utf8.count <= 900,
                link.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ">") })
            else { throw MailError.invalid("List-Unsubscribe") }
            headers.add("List-Unsubscribe", "<\(link)>")
        }
        headers.add("Auto-Submitted", "auto-generated")

        var body: [UInt8] = []
        if let html {
            // The boundary starts with "=_", which quoted-printable text can never contain.
            let boundary = "=_portal_" + Array(self.messageID.utf8).hexadecimal.prefix(32)
            headers.add("Content-Type", "multipart/alternative; boundary=\"\(boundary)\"")
            body += Array("This is a message in MIME format.\r\n".utf8)
            for (type, content) in [("text/plain", self.text), ("text/html", html)] {
                body += Array("\r\n--\(boundary)\r\n".utf8)
                body += Self.part(type: type, content)
            }
            body += Array("\r\n--\(boundary)--\r\n".utf8)
        } else {
            headers.add("Content-Type", "text/plain; charset=utf-8")
            headers.add("Content-Transfer-Encoding", "quoted-printable")
            body += QuotedPrintable.encode(self.text)
        }
        return headers.bytes + Array("\r\n".utf8) + body
    }

    private static func part(type: String, _ content: String) -> [UInt8] {
        Array("Content-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".utf8)
            + QuotedPrintable.encode(content)
    }

    private static func mailbox(_ mailbox: Mailbox) throws -> String {
        guard let name = mailbox.name, !name.isEmpty else { return mailbox.address }
        return "\(try MIMEHeaders.phrase(name)) <\(mailbox.address)>"
    }

    private static func isMessageID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return bytes.count <= 250 && bytes.first == UInt8(ascii: "<") && bytes.last == UInt8(ascii: ">")
            && bytes.dropFirst().dropLast().contains(UInt8(ascii: "@"))
            && bytes.dropFirst().dropLast().allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
    }

    /// `Mon, 23 Nov 2026 14:25:00 +0000` (RFC 5322, section 3.3), in UTC.
    static func rfc5322Date(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts = calendar.dateComponents([.weekday, .day, .month, .year, .hour, .minute, .second], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int?) -> String { value.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(days[(parts.weekday ?? 1) - 1]), \(parts.day ?? 1) \(months[(parts.month ?? 1) - 1]) \(parts.year ?? 1970) "
            + "\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) +0000"
    }
}

/// A message's header section, folded to RFC 5322's recommended 78 characters a line.
struct MIMEHeaders {
    private(set) var bytes: [UInt8] = []

    mutating func add(_ name: String, _ value: String) {
        // Fold at spaces: a line break before a space continues the field (RFC 5322, section 2.2.3).
        var line = "\(name):"
        for word in value.split(separator: " ", omittingEmptySubsequences: false) {
            if line.utf8.count + 1 + word.utf8.count > 78, line != "\(name):" {
                self.bytes += Array(line.utf8) + [13, 10]
                line = ""
            }
            line += " " + word
        }
        self.bytes += Array(line.utf8) + [13, 10]
    }

    /// Unstructured text (a subject) as printable ASCII or encoded words. Line breaks and tabs become spaces; other
    /// control characters are refused.
    static func text(_ value: String, field: String) throws -> String {
        let flat = try Self.flatten(value, field: field)
        return Self.isPlain(flat) ? flat : Self.encodedWords(flat)
    }

    /// A display name: plain, quoted, or encoded words.
    static func phrase(_ value: String) throws -> String {
        let flat = try Self.flatten(value, field: "display name")
        guard Self.isPlain(flat) else { return Self.encodedWords(flat) }
        let atext = flat.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || " !#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
        }
        if atext { return flat }
        return "\"" + flat.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private static func flatten(_ value: String, field: String) throws -> String {
        var result = ""
        var lastWasSpace = false
        for scalar in value.unicodeScalars {
            if scalar == "\r" || scalar == "\n" || scalar == "\t" || scalar == " " {
                if !lastWasSpace { result.unicodeScalars.append(" ") }
                lastWasSpace = true
                continue
            }
            guard !(scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)) else {
                throw MailError.invalid(field)
            }
            result.unicodeScalars.append(scalar)
            lastWasSpace = false
        }
        return result.trimmingCharacters(in: .whitespaces)
    }

    private static func isPlain(_ value: String) -> Bool {
        // "=?" could be read as the start of an encoded word, so such text is encoded too; so is a word too long to
        // fold, which encoded words can split.
        value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } && !value.contains("=?")
            && value.split(separator: " ").allSatisfy { $0.utf8.count <= 60 }
    }

    /// RFC 2047 `B` encoded words of at most 75 characters, split between characters, never inside one.
    private static func encodedWords(_ value: String) -> String {
        var words: [String] = []
        var chunk: [UInt8] = []
        // "=?UTF-8?B?" + "?=" is 12 characters and 39 bytes encode to 52: a word of 64 fits a folded line of 78
        // even after a field name such as "Subject: ". Words end between Unicode scalars (never inside one), so even
        // a character made of many scalars cannot make a word too long.
        for scalar in value.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > 39 {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words.joined(separator: " ")
    }
}

/// Quoted-printable (RFC 2045, section 6.7) for UTF-8 text: lines of at most 76 characters with soft breaks, CRLF
/// line ends, `=` and anything outside printable ASCII encoded, and so are spaces at a line's end and a dot at a
/// line's start (which some relays mishandle).
enum QuotedPrintable {
    private static let hex = Array("0123456789ABCDEF".utf8)

    /// Quoted-printable (RFC 2045, section 6.7) of `text`, with CRLF line ends (a CR, LF or CRLF in the text is one),
    /// no line longer than 76 characters, and a dot at the start of a line encoded (some relays treat one oddly).
    static func encode(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 16 + 16)
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == 13 || byte == 10 else {
                index += 1
                continue
            }
            lines.append(bytes[start..<index])
            index += (byte == 13 && index + 1 < bytes.count && bytes[index + 1] == 10) ? 2 : 1
            start = index
        }
        lines.append(bytes[start...])
        // Text that ends with a line break ends with that line, not with an empty one after it.
        if lines.count > 1, lines.last?.isEmpty == true { lines.removeLast() }
        for line in lines {
            var column = 0
            for position in line.indices {
                let byte = line[position]
                let last = position == line.endIndex - 1
                var literal = Self.isLiteral(byte, last: last, lineStart: column == 0)
                // Leave room for the soft break "=" unless this is the line's last character.
                if column + (literal ? 1 : 3) > (last ? 76 : 75) {
                    output += [UInt8(ascii: "="), 13, 10]
                    column = 0
                    literal = Self.isLiteral(byte, last: last, lineStart: true)
                }
                if literal {
                    output.append(byte)
                    column += 1
                } else {
                    output += [UInt8(ascii: "="), Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 0x0F)]]
                    column += 3
                }
            }
            output += [13, 10]
        }
        return output
    }

    private static func isLiteral(_ byte: UInt8, last: Bool, lineStart: Bool) -> Bool {
        (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "=") && !(byte == UInt8(ascii: ".") && lineStart))
            || (byte == UInt8(ascii: " ") && !last)
    }
}
