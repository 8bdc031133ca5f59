import Foundation
import Testing

@testable import Shared

@Suite("SMTP client state machine")
struct SMTPClientStateMachineTests {
    static func reply(_ text: String) -> SMTPReply {
        var parser = SMTPReplyParser()
        try? parser.append(Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8))
        return parser.next() ?? SMTPReply(code: 0, lines: [])
    }

    static func sent(_ action: SMTPClientStateMachine.Action) -> String {
        switch action {
        case .send(let command): String(decoding: command.bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
        case .sendData: "(data)"
        case .startTLS: "(start TLS)"
        case .ready: "(ready)"
        case .delivered(let reply): "(delivered \(reply.code))"
        case .messageFailed(let failure): "(message failed \(failure.kind) \(failure.reply?.code ?? 0))"
        case .fail(let failure): "(fail \(failure.kind): \(failure.description))"
        }
    }

    static let envelope = SMTPEnvelope(sender: "noreply@haarlem.example", recipient: "resident@example.org", data: Array("x\r\n.\r\n".utf8))

    @Test("STARTTLS, EHLO again with only the new capabilities, AUTH PLAIN, then two messages on one session")
    func fullSession() {
        var machine = SMTPClientStateMachine(.init(security: .startTLS, heloDomain: "portal.example", user: "user", password: "secret"))
        var steps: [String] = []
        steps.append(Self.sent(machine.received(Self.reply("220 relay ESMTP\n"))))
        // Before TLS the server claims AUTH; it must not be used, and is forgotten.
        steps.append(Self.sent(machine.received(Self.reply("250-relay\n250-AUTH LOGIN\n250 STARTTLS\n"))))
        steps.append(Self.sent(machine.received(Self.reply("220 go ahead\n"))))
        steps.append(Self.sent(machine.tlsEstablished()))
        #expect(machine.capabilities == nil)
        steps.append(Self.sent(machine.received(Self.reply("250-relay\n250-AUTH PLAIN LOGIN\n250 SIZE 1000\n"))))
        steps.append(Self.sent(machine.received(Self.reply("235 ok\n"))))
        #expect(machine.isReady)
        for _ in 1...2 {
            steps.append(Self.sent(machine.send(Self.envelope)))
            steps.append(Self.sent(machine.received(Self.reply("250 ok\n"))))
            steps.append(Self.sent(machine.received(Self.reply("250 ok\n"))))
            steps.append(Self.sent(machine.received(Self.reply("354 go\n"))))
            steps.append(Self.sent(machine.received(Self.reply("250 queued as 1\n"))))
        }
        #expect(
            steps == [
                "EHLO portal.example", "STARTTLS", "(start TLS)", "EHLO portal.example", "AUTH PLAIN AHVzZXIAc2VjcmV0", "(ready)",
                "MAIL FROM:<noreply@haarlem.example>", "RCPT TO:<resident@example.org>", "DATA", "(data)", "(delivered 250)",
                "MAIL FROM:<noreply@haarlem.example>", "RCPT TO:<resident@example.org>", "DATA", "(data)", "(delivered 250)",
            ])
    }

    @Test("TLS asked for but not offered: the session fails instead of going on in plain text")
    func noDowngrade() {
        var machine = SMTPClientStateMachine(.init(security: .startTLS, heloDomain: "portal.example"))
        _ = machine.received(Self.reply("220 relay\n"))
        let action = machine.received(Self.reply("250-relay\n250 AUTH PLAIN\n"))
        guard case .fail(let failure) = action else {
            Issue.record("expected a failure, got \(Self.sent(action))")
            return
        }
        #expect(failure.kind == .configuration)
    }

    @Test("credentials are never sent over plain text; AUTH LOGIN when PLAIN is not offered")
    func credentials() {
        var plain = SMTPClientStateMachine(.init(security: .none, heloDomain: "portal.example", user: "u", password: "p"))
        _ = plain.received(Self.reply("220 relay\n"))
        #expect(Self.sent(plain.received(Self.reply("250-relay\n250 AUTH PLAIN LOGIN\n"))).hasPrefix("(fail configuration"))

        var login = SMTPClientStateMachine(.init(security: .implicitTLS, heloDomain: "portal.example", user: "user", password: "secret"))
        var steps = [Self.sent(login.received(Self.reply("220 relay\n")))]
        steps.append(Self.sent(login.received(Self.reply("250-relay\n250 AUTH LOGIN\n"))))
        steps.append(Self.sent(login.received(Self.reply("334 VXNlcm5hbWU6\n"))))
        steps.append(Self.sent(login.received(Self.reply("334 UGFzc3dvcmQ6\n"))))
        steps.append(Self.sent(login.received(Self.reply("235 ok\n"))))
        #expect(steps == ["EHLO portal.example", "AUTH LOGIN", "dXNlcg==", "c2VjcmV0", "(ready)"])
    }

    @Test("a refused recipient fails that message only: 4xx transient, 5xx permanent, and RSET readies the session")
    func refusals() {
        for (code, kind) in [(450, SMTPFailure.Kind.transient), (550, .permanent)] {
            var machine = SMTPClientStateMachine(.init(security: .none, heloDomain: "portal.example"))
            _ = machine.received(Self.reply("220 relay\n"))
            _ = machine.received(Self.reply("250 relay\n"))
            _ = machine.send(Self.envelope)
            _ = machine.received(Self.reply("250 ok\n"))
            #expect(Self.sent(machine.received(Self.reply("\(code) no\n"))) == "RSET")
            let action = machine.received(Self.reply("250 reset\n"))
            #expect(action == .messageFailed(SMTPFailure(kind, "the recipient was refused", reply: Self.reply("\(code) no\n"))))
            #expect(machine.isReady)
        }
    }

    @Test("a message larger than the relay's SIZE is refused before it is sent")
    func size() {
        var machine = SMTPClientStateMachine(.init(security: .none, heloDomain: "portal.example"))
        _ = machine.received(Self.reply("220 relay\n"))
        _ = machine.received(Self.reply("250-relay\n250 SIZE 3\n"))
        #expect(Self.sent(machine.send(Self.envelope)) == "(message failed permanent 0)")
        #expect(machine.isReady)
    }

    @Test("421 ends the session at once; a refused STARTTLS or RSET keeps the right kind; a failed session takes no message")
    func endings() {
        func machine() -> SMTPClientStateMachine {
            var machine = SMTPClientStateMachine(.init(security: .none, heloDomain: "portal.example"))
            _ = machine.received(Self.reply("220 relay\n"))
            _ = machine.received(Self.reply("250 relay\n"))
            return machine
        }
        var closing = machine()
        _ = closing.send(Self.envelope)
        _ = closing.received(Self.reply("250 ok\n"))
        #expect(Self.sent(closing.received(Self.reply("421 shutting down\n"))).hasPrefix("(fail transient"))
        #expect(Self.sent(closing.send(Self.envelope)).hasPrefix("(fail transient"))

        var busy = SMTPClientStateMachine(.init(security: .startTLS, heloDomain: "portal.example"))
        _ = busy.received(Self.reply("220 relay\n"))
        _ = busy.received(Self.reply("250-relay\n250 STARTTLS\n"))
        #expect(Self.sent(busy.received(Self.reply("454 TLS not available now\n"))).hasPrefix("(fail transient"))

        var reset = machine()
        _ = reset.send(Self.envelope)
        _ = reset.received(Self.reply("550 no such sender\n"))
        let action = reset.received(Self.reply("500 what\n"))
        guard case .fail(let failure) = action else {
            Issue.record("expected a failure, got \(Self.sent(action))")
            return
        }
        #expect(failure.kind == .permanent && failure.reply?.code == 550)
    }

    @Test("no description or dump of the configuration shows the password")
    func secrets() {
        let configuration = SMTPClientStateMachine.Configuration(
            security: .startTLS, heloDomain: "portal.example", user: "portal", password: "hunter2-secret")
        let relay = SMTPRelay(
            host: "smtp.example.org", port: 587, security: .startTLS, user: "portal", password: "hunter2-secret", heloDomain: "p")
        var dumped = ""
        dump(configuration, to: &dumped)
        dump(relay, to: &dumped)
        let shown = [String(describing: configuration), String(reflecting: configuration), "\(relay)", String(reflecting: relay), dumped]
        #expect(shown.allSatisfy { !$0.contains("hunter2") }, "\(shown)")
    }
}
