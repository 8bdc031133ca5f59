import Foundation
import Shared
import Testing

@testable import Notifier

@Suite("Mail templates")
struct MailTemplatesTests {
    static let view = StatusMailView(
        items: [
            .init(link: "https://portal.example/zaken/1?a=1&b=2", correction: false),
            .init(link: "https://portal.example/zaken/2", correction: true),
        ],
        preferences: "https://portal.example/instellingen/e-mail")

    @Test("both languages, one change or several: plain words, every link, nothing escaped in text and everything in HTML")
    func rendering() async throws {
        let templates = try await MailTemplates()
        let dutch = try templates.status(Self.view, language: .nl)
        #expect(dutch.subject == "Er is nieuws over 2 van uw zaken")
        #expect(dutch.text.contains("https://portal.example/zaken/1?a=1&b=2"))
        #expect(dutch.text.contains("Een eerdere status is verbeterd."))
        #expect(dutch.text.contains("https://portal.example/instellingen/e-mail"))
        #expect(dutch.html.contains("<html lang=\"nl\">") && dutch.html.contains("<title>Er is nieuws over 2 van uw zaken</title>"))
        #expect(dutch.html.contains("href=\"https://portal.example/zaken/1?a=1&amp;b=2\""))
        let english = try templates.status(StatusMailView(items: [Self.view.items[0]], preferences: Self.view.preferences), language: .en)
        #expect(english.subject == "There is news about your case")
        #expect(english.html.contains("<html lang=\"en\">") && english.text.contains("There is a new status."))
        #expect(!english.text.contains("corrected"))
    }

    @Test("an operator's own templates are used; a folder missing one is refused at start")
    func operatorTemplates() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("templates-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let bundled = Self.bundledTemplates()
        for name in try FileManager.default.contentsOfDirectory(atPath: bundled.path) {
            try FileManager.default.copyItem(at: bundled.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        let subject = folder.appendingPathComponent("status.nl.subject.mustache")
        try "{{% CONTENT_TYPE: TEXT}}Gemeente Haarlem: {{count}} keer nieuws".write(to: subject, atomically: true, encoding: .utf8)
        let own = try await MailTemplates(directory: folder.path)
        #expect(try own.status(Self.view, language: .nl).subject == "Gemeente Haarlem: 2 keer nieuws")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("status.en.html.mustache"))
        await #expect(throws: TemplateError.self) { try await MailTemplates(directory: folder.path) }
    }

    @Test("Notifier preview renders every template in both languages without a database or relay")
    func preview() async throws {
        let process = try ChildProcess("Notifier", environment: [:], arguments: ["preview"])
        #expect(await process.waitForExit() == 0)
        let printed = process.printed
        for heading in ["one change, nl", "one change, en", "three changes, one a correction, nl", "three changes, one a correction, en"] {
            #expect(printed.contains("==== status mail, \(heading)"), "\(heading)")
        }
        #expect(printed.contains("Subject: There is news about 3 of your cases"))
    }

    /// The notifier's bundled templates, in the source tree (the test bundle does not carry the notifier's resources).
    static func bundledTemplates() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/Notifier/Templates")
    }
}
