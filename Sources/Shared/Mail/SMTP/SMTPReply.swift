/// A server's reply (RFC 5321, section 4.2): a three-digit code and one or more lines of text.
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    /// The text of each line, without the code, the separator and CRLF.
    public var lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    /// What the reply means for the command it answers.
    public enum Kind: Sendable, Equatable {
        /// 2xx: done.
        case completed
        /// 3xx: go on (the message after DATA, the next step of AUTH).
        case intermediate
        /// 4xx: not now; the same command may work later.
        case transient
        /// 5xx: not this; trying again will not help.
        case permanent
    }

    public var kind: Kind {
        switch self.code / 100 {
        case 2: .completed
        case 3: .intermediate
        case 4: .transient
        default: .permanent
        }
    }

    /// The code and the first line, cut to a length fit for a log line or a delivery record. Server replies carry no
    /// personal data of ours, except sometimes the recipient's address, which the caller's records already hold.
    public var description: String {
        // Control characters from the server stay out of our log lines.
        let text = (self.lines.first ?? "").unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }
        return "\(self.code) \(String(String.UnicodeScalarView(text.prefix(200))))"
    }
}

/// Why a server's reply could not be read.
public struct SMTPReplyError: Error, Equatable, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Reads replies from the bytes a server sends, in whatever pieces they arrive. A value type with bounded buffers:
/// a line longer than ``maximumLineLength`` or a reply of more than ``maximumLines`` lines is an error, never a
/// reason to keep reading into memory.
public struct SMTPReplyParser: Sendable {
    /// RFC 5321 allows 512 octets per reply line; servers in the wild send somewhat longer ones.
    public static let maximumLineLength = 2048
    /// EHLO replies are the longest, with a line per extension.
    public static let maximumLines = 100

    private var line: [UInt8] = []
    private var pendingLines: [String] = []
    private var pendingCode: Int?
    private var replies: [SMTPReply] = []
    private var failure: SMTPReplyError?

    public init() {}

    /// Takes the next bytes from the server.
    public mutating func append(_ bytes: some Sequence<UInt8>) throws {
        if let failure { throw failure }
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if self.line.last == UInt8(ascii: "\r") { self.line.removeLast() }
                try self.finishLine()
                self.line.removeAll(keepingCapacity: true)
            } else {
                guard self.line.count < Self.maximumLineLength else {
                    throw self.fail("a reply line longer than \(Self.maximumLineLength) bytes")
                }
                self.line.append(byte)
            }
        }
    }

    /// The next complete reply, if one has arrived.
    public mutating func next() -> SMTPReply? {
        self.replies.isEmpty ? nil : self.replies.removeFirst()
    }

    /// Whether anything the server sent has not been taken yet: a reply begun, or complete replies waiting. Right
    /// after the reply to STARTTLS there must be nothing: such bytes came unprotected and would be read as if
    /// they came through TLS.
    public var hasUnreadInput: Bool { !self.line.isEmpty || self.pendingCode != nil || !self.replies.isEmpty }

    private mutating func finishLine() throws {
        // "250-text" continues, "250 text" (or a bare "250") ends the reply.
        guard self.line.count >= 3, let code = Self.code(self.line[0..<3]) else {
            throw self.fail("a reply line that does not start with a three-digit code")
        }
        let separator: UInt8? = self.line.count > 3 ? self.line[3] : nil
        guard separator == nil || separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else {
            throw self.fail("a reply line without ' ' or '-' after its code")
        }
        if let pendingCode, pendingCode != code { throw self.fail("a multi-line reply whose lines have different codes") }
        let text = self.line.count > 4 ? String(decoding: self.line[4...], as: UTF8.self) : ""
        self.pendingLines.append(text)
        guard self.pendingLines.count <= Self.maximumLines else { throw self.fail("a reply of more than \(Self.maximumLines) lines") }
        if separator == UInt8(ascii: "-") {
            self.pendingCode = code
        } else {
            self.replies.append(SMTPReply(code: code, lines: self.pendingLines))
            self.pendingLines = []
            self.pendingCode = nil
        }
    }

    private static func code(_ digits: ArraySlice<UInt8>) -> Int? {
        var code = 0
        for (position, digit) in digits.enumerated() {
            // The first digit is 2 to 5 (RFC 5321, section 4.2.1); the others 0 to 9.
            let range: ClosedRange<UInt8> = position == 0 ? UInt8(ascii: "2")...UInt8(ascii: "5") : UInt8(ascii: "0")...UInt8(ascii: "9")
            guard range.contains(digit) else { return nil }
            code = code * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return code
    }

    private mutating func fail(_ reason: String) -> SMTPReplyError {
        let error = SMTPReplyError(reason)
        self.failure = error
        return error
    }
}

/// What a server said it supports in its EHLO reply (RFC 5321, section 4.1.1.1): one keyword per line after the first,
/// with parameters.
public struct SMTPCapabilities: Sendable, Equatable {
    /// Upper-cased keywords, each with its parameters.
    public private(set) var extensions: [String: [String]] = [:]

    public init(ehlo reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ").map(String.init)
            guard let keyword = words.first else { continue }
            self.extensions[keyword.uppercased()] = Array(words.dropFirst())
        }
    }

    public var startTLS: Bool { self.extensions["STARTTLS"] != nil }
    public var pipelining: Bool { self.extensions["PIPELINING"] != nil }
    public var eightBitMIME: Bool { self.extensions["8BITMIME"] != nil }

    /// The SASL mechanisms offered, upper-cased.
    public var authMechanisms: Set<String> { Set((self.extensions["AUTH"] ?? []).map { $0.uppercased() }) }

    /// The largest message the server accepts, if it said (0 means no limit, RFC 1870).
    public var maximumSize: Int? {
        guard let size = self.extensions["SIZE"]?.first.flatMap({ Int($0) }), size > 0 else { return nil }
        return size
    }
}
