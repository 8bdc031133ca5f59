/// How a connection to a relay is protected.
public enum SMTPTransportSecurity: Sendable, Equatable {
    /// Plain text: only for a relay on loopback without credentials (local runs, tests).
    case none
    /// STARTTLS (RFC 3207) after the greeting; refused, never skipped, when the server does not offer it.
    case startTLS
    /// TLS from the first byte (RFC 8314, port 465).
    case implicitTLS
}

/// One envelope: the sender, the recipient and the message data after DATA (already dot-stuffed).
public struct SMTPEnvelope: Sendable, Equatable {
    public var sender: String
    public var recipient: String
    public var data: [UInt8]

    public init(sender: String, recipient: String, data: [UInt8]) {
        self.sender = sender
        self.recipient = recipient
        self.data = data
    }

    /// An envelope for `message` as written (``MailMessage/rendered()``), dot-stuffed and ended here.
    public init(sender: String, recipient: String, message: [UInt8]) {
        self.init(sender: sender, recipient: recipient, data: SMTPCommand.messageData(message))
    }
}

/// Why a session or a message failed, and whether trying again later can help.
public struct SMTPFailure: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server said "not now" (4xx), or the connection failed: try again later.
        case transient
        /// The server said "no" (5xx) for this message or recipient: trying again will not help.
        case permanent
        /// The relay cannot be used as configured (no STARTTLS offered, no usable AUTH, a protocol violation).
        case configuration
    }

    public var kind: Kind
    /// What happened, with the server's reply when there was one; never a credential or message content.
    public var description: String
    public var reply: SMTPReply?

    public init(_ kind: Kind, _ description: String, reply: SMTPReply? = nil) {
        self.kind = kind
        self.description = reply.map { "\(description): \($0)" } ?? description
        self.reply = reply
    }
}

/// The client side of an SMTP session as a value: it is told what happened (a reply, TLS is up, a message to send)
/// and answers with what to do next. It has no channel and no clock, so every path, including the refusals that
/// protect the credentials and the mail, is tested as plain values; the connection (``SMTPConnection``) only carries
/// out its actions.
public struct SMTPClientStateMachine: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var security: SMTPTransportSecurity
        public var heloDomain: String
        public var user: String?
        public var password: String?

        public init(security: SMTPTransportSecurity, heloDomain: String, user: String? = nil, password: String? = nil) {
            self.security = security
            self.heloDomain = heloDomain
            self.user = user
            self.password = password
        }
    }

    /// What the connection must do next.
    public enum Action: Sendable, Equatable {
        case send(SMTPCommand)
        /// Send the message data (after the server's 354).
        case sendData([UInt8])
        /// Start the TLS handshake now, then report ``tlsEstablished()``. Nothing the server sent before may remain
        /// unread (that would be an injection attempt): the connection checks its parser is empty.
        case startTLS
        /// The session is ready for a message.
        case ready
        /// The message was accepted (the server's final reply).
        case delivered(SMTPReply)
        /// The message was refused; the session is still usable once ``Action/ready`` comes.
        case messageFailed(SMTPFailure)
        /// The session cannot go on; close the connection.
        case fail(SMTPFailure)
    }

    private enum State: Sendable {
        case greeting
        case ehlo(secured: Bool)
        case startTLS
        case handshaking
        case authPlain
        case authLogin(step: Int)
        case ready
        case mailFrom(SMTPEnvelope)
        case recipient(SMTPEnvelope)
        case data(SMTPEnvelope)
        case dataSent
        case reset(then: SMTPFailure?)
        case quitting
        case failed
    }

    private let configuration: Configuration
    private var state: State = .greeting
    private var secured: Bool
    public private(set) var capabilities: SMTPCapabilities?

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        self.secured = configuration.security == .implicitTLS
    }

    /// Whether a message can be given now.
    public var isReady: Bool {
        if case .ready = self.state { true } else { false }
    }

    /// A reply from the server.
    public mutating func received(_ reply: SMTPReply) -> Action {
        // 421: the server is closing the connection, whatever it was doing (RFC 5321, section 3.8).
        if reply.code == 421 {
            if case .quitting = self.state { return .fail(SMTPFailure(.transient, "the session ended", reply: reply)) }
            return self.fail(.transient, "the relay is closing the connection", reply)
        }
        switch self.state {
        case .greeting:
            guard reply.code == 220 else { return self.fail(.transient, "the server did not greet", reply) }
            return self.sendEHLO()
        case .ehlo(let secured):
            guard reply.kind == .completed else { return self.fail(.transient, "EHLO refused", reply) }
            // Whatever the server said before TLS is forgotten (RFC 3207, section 4.2): only this reply counts.
            let capabilities = SMTPCapabilities(ehlo: reply)
            self.capabilities = capabilities
            if self.configuration.security == .startTLS && !secured {
                guard capabilities.startTLS else {
                    return self.fail(.configuration, "the relay does not offer STARTTLS, and TLS was asked for", nil)
                }
                self.state = .startTLS
                return .send(.startTLS)
            }
            return self.authenticate(capabilities)
        case .startTLS:
            guard reply.code == 220 else {
                return self.fail(reply.kind == .transient ? .transient : .configuration, "STARTTLS refused", reply)
            }
            self.state = .handshaking
            return .startTLS
        case .authPlain, .authLogin(step: 2):
            guard reply.code == 235 else {
                return self.fail(reply.kind == .transient ? .transient : .configuration, "authentication failed", reply)
            }
            self.state = .ready
            return .ready
        case .authLogin(let step):
            guard reply.code == 334, let user = self.configuration.user, let password = self.configuration.password else {
                return self.fail(reply.kind == .transient ? .transient : .configuration, "authentication failed", reply)
            }
            self.state = .authLogin(step: step + 1)
            do {
                return .send(try SMTPCommand.credentialLine(step == 0 ? user : password))
            } catch {
                return self.fail(.configuration, "unusable credentials", nil)
            }
        case .mailFrom(let envelope):
            guard reply.kind == .completed else { return self.refuse(reply, "the sender was refused") }
            self.state = .recipient(envelope)
            do {
                return .send(try SMTPCommand.recipient(envelope.recipient))
            } catch {
                return self.refuse(nil, "the recipient address is invalid")
            }
        case .recipient(let envelope):
            guard reply.kind == .completed else { return self.refuse(reply, "the recipient was refused") }
            self.state = .data(envelope)
            return .send(.data)
        case .data(let envelope):
            guard reply.code == 354 else { return self.refuse(reply, "DATA was refused") }
            self.state = .dataSent
            return .sendData(envelope.data)
        case .dataSent:
            guard reply.kind == .completed else { return self.refuse(reply, "the message was refused") }
            self.state = .ready
            return .delivered(reply)
        case .reset(let failure):
            // The message's own outcome outlives a session that cannot be reset.
            guard reply.kind == .completed else { return self.fail(failure ?? SMTPFailure(.transient, "RSET refused", reply: reply)) }
            self.state = .ready
            return failure.map { .messageFailed($0) } ?? .ready
        case .ready, .handshaking, .quitting, .failed:
            return self.fail(.configuration, "an unexpected reply", reply)
        }
    }

    /// The TLS handshake after STARTTLS completed: greet again.
    public mutating func tlsEstablished() -> Action {
        guard case .handshaking = self.state else { return self.fail(.configuration, "TLS started at the wrong moment", nil) }
        self.secured = true
        self.capabilities = nil
        return self.sendEHLO()
    }

    /// Starts sending a message; only when ``isReady``.
    public mutating func send(_ envelope: SMTPEnvelope) -> Action {
        guard case .ready = self.state else {
            return self.fail(.transient, "the session cannot take a message (it failed, or is busy)", nil)
        }
        if let maximum = self.capabilities?.maximumSize, envelope.data.count > maximum {
            return .messageFailed(SMTPFailure(.permanent, "the message is larger than the relay accepts (\(maximum) bytes)"))
        }
        self.state = .mailFrom(envelope)
        do {
            return .send(try SMTPCommand.mailFrom(envelope.sender))
        } catch {
            self.state = .ready
            return .messageFailed(SMTPFailure(.permanent, "the sender address is invalid"))
        }
    }

    /// Ends the session politely.
    public mutating func quit() -> Action {
        self.state = .quitting
        return .send(.quit)
    }

    private mutating func sendEHLO() -> Action {
        self.state = .ehlo(secured: self.secured)
        do {
            return .send(try SMTPCommand.ehlo(self.configuration.heloDomain))
        } catch {
            return self.fail(.configuration, "the EHLO domain is invalid", nil)
        }
    }

    private mutating func authenticate(_ capabilities: SMTPCapabilities) -> Action {
        guard let user = self.configuration.user, let password = self.configuration.password else {
            self.state = .ready
            return .ready
        }
        // Credentials only ever travel inside TLS.
        guard self.secured else { return self.fail(.configuration, "credentials are configured but the connection is not encrypted", nil) }
        if capabilities.authMechanisms.contains("PLAIN") {
            self.state = .authPlain
            do {
                return .send(try SMTPCommand.authPlain(user: user, password: password))
            } catch {
                return self.fail(.configuration, "unusable credentials", nil)
            }
        }
        if capabilities.authMechanisms.contains("LOGIN") {
            self.state = .authLogin(step: 0)
            return .send(.authLogin)
        }
        return self.fail(.configuration, "the relay offers neither AUTH PLAIN nor AUTH LOGIN", nil)
    }

    /// The current message failed; reset the transaction so the session can carry the next one.
    private mutating func refuse(_ reply: SMTPReply?, _ what: String) -> Action {
        let kind: SMTPFailure.Kind = reply?.kind == .transient ? .transient : .permanent
        self.state = .reset(then: SMTPFailure(kind, what, reply: reply))
        return .send(.reset)
    }

    private mutating func fail(_ kind: SMTPFailure.Kind, _ what: String, _ reply: SMTPReply?) -> Action {
        self.fail(SMTPFailure(kind, what, reply: reply))
    }

    private mutating func fail(_ failure: SMTPFailure) -> Action {
        self.state = .failed
        return .fail(failure)
    }
}

extension SMTPClientStateMachine.Configuration: CustomStringConvertible, CustomReflectable {
    /// Never the password.
    public var description: String { "\(self.security) as \(self.heloDomain)" + (self.user.map { ", user \($0)" } ?? "") }
    public var customMirror: Mirror {
        Mirror(self, children: ["security": self.security, "heloDomain": self.heloDomain, "user": self.user as Any])
    }
}
