import Foundation
import Mustache
import Testing

@testable import Notifier
@testable import Shared

@Suite("Mail templates")
struct MailTemplatesTests {
    static let view = UpdateMailView(
        items: [
            .init(link: "https://portal.example/zaken/1?a=1&b=2", kind: .status),
            .init(link: "https://portal.example/zaken/2", kind: .correction),
            .init(link: "https://portal.example/zaken/2", kind: .message),
        ],
        preferences: "https://portal.example/instellingen/e-mail")

    @Test(
        "both languages, one change or several: a line per change, cases counted once, every link, nothing escaped in text and everything in HTML"
    )
    func rendering() async throws {
        let templates = try await MailTemplates()
        let dutch = try templates.update(Self.view, language: .nl)
        #expect(dutch.subject == "Er is nieuws over 2 van uw zaken")
        #expect(dutch.text.contains("https://portal.example/zaken/1?a=1&b=2"))
        #expect(dutch.text.contains("Een eerdere status is verbeterd."))
        #expect(dutch.text.contains("U hebt een nieuw bericht. Bekijk de zaak: https://portal.example/zaken/2"))
        #expect(dutch.text.contains("https://portal.example/instellingen/e-mail"))
        #expect(dutch.html.contains("<html lang=\"nl\">") && dutch.html.contains("<title>Er is nieuws over 2 van uw zaken</title>"))
        #expect(dutch.html.contains("href=\"https://portal.example/zaken/1?a=1&amp;b=2\""))
        let english = try templates.update(UpdateMailView(items: [Self.view.items[0]], preferences: Self.view.preferences), language: .en)
        #expect(english.subject == "There is news about your case")
        #expect(english.html.contains("<html lang=\"en\">") && english.text.contains("There is a new status."))
        #expect(!english.text.contains("corrected"))
        // Nothing else from the other kinds slipped in.
        #expect(!english.text.contains("message") && !english.text.contains("document") && !english.text.contains("longer"))
    }

    @Test("a mail has one line per case and kind; a status and its correction in one mail are one new status")
    func lines() {
        let (a, b) = (UUID(), UUID())
        let lines = UpdateMailView.lines(for: [
            .init(kind: .status, caseID: a), .init(kind: .correction, caseID: a), .init(kind: .message, caseID: a),
            .init(kind: .correction, caseID: b), .init(kind: .message, caseID: a),
        ])
        #expect(lines == [.init(kind: .status, caseID: a), .init(kind: .message, caseID: a), .init(kind: .correction, caseID: b)])
    }

    @Test("templates can read every property of the views (they read them by name, not by reflection)")
    func everyPropertyHasAName() {
        let views: [any MustacheParent] = [
            Self.view, Self.view.items[0], VerificationMailView(code: "123456", minutes: 30),
        ]
        for view in views {
            for case (let name?, _) in Mirror(reflecting: view).children {
                #expect(view.child(named: name) != nil, "\(type(of: view)).\(name) is not readable by templates")
            }
        }
    }

    @Test("the verification mail carries the code and how long it works, in both languages")
    func verification() async throws {
        let templates = try await MailTemplates()
        let dutch = try templates.verification(VerificationMailView(code: "042917", minutes: 30), language: .nl)
        #expect(dutch.subject == "Uw code om uw e-mailadres te bevestigen")
        #expect(dutch.text.contains("\n042917\n") && dutch.text.contains("30 minuten"))
        #expect(dutch.html.contains("<strong>042917</strong>") && dutch.html.contains("<html lang=\"nl\">"))
        let english = try templates.verification(VerificationMailView(code: "042917", minutes: 30), language: .en)
        #expect(english.subject == "Your code to confirm your e-mail address" && english.text.contains("30 minutes"))
    }

    @Test("an operator's own templates are used; a folder missing one is refused at start")
    func operatorTemplates() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("templates-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let bundled = Self.bundledTemplates()
        for name in try FileManager.default.contentsOfDirectory(atPath: bundled.path) {
            try FileManager.default.copyItem(at: bundled.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        let subject = folder.appendingPathComponent("update.nl.subject.mustache")
        try "{{% CONTENT_TYPE: TEXT}}Gemeente Haarlem: {{count}} keer nieuws".write(to: subject, atomically: true, encoding: .utf8)
        let own = try await MailTemplates(directory: folder.path)
        #expect(try own.update(Self.view, language: .nl).subject == "Gemeente Haarlem: 2 keer nieuws")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("update.en.html.mustache"))
        await #expect(throws: TemplateError.self) { try await MailTemplates(directory: folder.path) }
    }

    @Test("PortalAPI templates preview renders every template in both languages without a database or relay")
    func preview() async throws {
        let process = try ChildProcess("PortalAPI", environment: [:], arguments: ["templates", "preview"])
        #expect(await process.waitForExit() == 0)
        let printed = process.printed
        for heading in [
            "update mail, one new status", "update mail, every kind of news, about three cases", "verification mail",
        ] {
            for language in ["nl", "en"] { #expect(printed.contains("==== \(heading), \(language)"), "\(heading), \(language)") }
        }
        #expect(printed.contains("Subject: There is news about 3 of your cases"))
    }

    /// The notifier's bundled templates, in the source tree (the test bundle does not carry the notifier's resources).
    static func bundledTemplates() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/Shared/Mail/Templates")
    }
}
