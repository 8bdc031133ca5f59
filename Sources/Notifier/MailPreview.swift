import Foundation
import Shared

/// `Notifier preview`: every mail in both languages, rendered with sample data by the templates the notifier would
/// use (`PORTAL_MAIL_TEMPLATES_DIR`, or the bundled ones), for an operator who changed the wording. Needs no database
/// and no relay.
enum MailPreview {
    static func render(_ templates: MailTemplates, portal: String = "https://mijn.gemeente.example") throws -> String {
        let samples: [(String, StatusMailView)] = [
            (
                "one change",
                StatusMailView(
                    items: [.init(link: "\(portal)/zaken/0b7a4c1e-0000-4000-8000-000000000001", correction: false)],
                    preferences: "\(portal)/instellingen/e-mail")
            ),
            (
                "three changes, one a correction",
                StatusMailView(
                    items: (1...3).map { .init(link: "\(portal)/zaken/0b7a4c1e-0000-4000-8000-00000000000\($0)", correction: $0 == 2) },
                    preferences: "\(portal)/instellingen/e-mail")
            ),
        ]
        var output = ""
        for language in Resident.Locale.allCases {
            for (name, view) in samples {
                let mail = try templates.status(view, language: language)
                output += "==== status mail, \(name), \(language.rawValue)\n"
                output += "Subject: \(mail.subject)\n\n---- text\n\(mail.text)\n---- html\n\(mail.html)\n"
            }
        }
        return output
    }

    static func run() async -> Never {
        do {
            let templates = try await MailTemplates(directory: EnvironmentReader().string("PORTAL_MAIL_TEMPLATES_DIR"))
            print(try self.render(templates), terminator: "")
            exit(0)
        } catch {
            EntryPoint.fail("Notifier preview", error, status: 1)
        }
    }
}
