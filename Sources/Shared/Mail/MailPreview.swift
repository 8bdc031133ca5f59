import Foundation

/// `PortalAPI templates preview`: every mail in both languages, rendered with sample data by the templates the notifier would
/// use (`PORTAL_MAIL_TEMPLATES_DIR`, or the bundled ones), for an operator who changed the wording. Needs no database
/// and no relay.
public enum MailPreview {
    public static func render(_ templates: MailTemplates, portal: String = "https://mijn.gemeente.example") throws -> String {
        let link = { (n: Int) in "\(portal)/zaken/0b7a4c1e-0000-4000-8000-00000000000\(n)" }
        let preferences = "\(portal)/instellingen/e-mail"
        let samples: [(String, UpdateMailView)] = [
            ("one new status", UpdateMailView(items: [.init(link: link(1), kind: .status)], preferences: preferences)),
            (
                "every kind of news, about three cases",
                UpdateMailView(
                    items: [
                        .init(link: link(1), kind: .status), .init(link: link(1), kind: .message),
                        .init(link: link(2), kind: .correction), .init(link: link(2), kind: .document),
                        .init(link: link(3), kind: .overdue),
                    ],
                    preferences: preferences)
            ),
        ]
        var output = ""
        for language in Resident.Locale.allCases {
            for (name, view) in samples {
                output += Self.show("update mail, \(name)", language, try templates.update(view, language: language))
            }
            let verification = try templates.verification(VerificationMailView(code: "123456", minutes: 30), language: language)
            output += Self.show("verification mail", language, verification)
        }
        return output
    }

    private static func show(_ name: String, _ language: Resident.Locale, _ mail: RenderedMail) -> String {
        "==== \(name), \(language.rawValue)\nSubject: \(mail.subject)\n\n---- text\n\(mail.text)\n---- html\n\(mail.html)\n"
    }
}
