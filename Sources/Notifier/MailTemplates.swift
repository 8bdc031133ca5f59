import Foundation
import Mustache
import Shared

/// What a status mail says: deliberately little. A mail can be read by anyone who sees the resident's screen or
/// mailbox, so it names no case type, no status, no department and no explanation (a case type such as debt counselling
/// says too much by itself); it says that something changed, links to each case in the portal, and says where to find
/// whom to ask. Several changes for one resident are one mail with one link each.
struct StatusMailView {
    struct Item {
        /// The case's page in the portal (its id is opaque).
        let link: String
        /// An earlier status was corrected: said as such, not as progress.
        let correction: Bool
    }

    // Stored, not computed: templates see stored properties only.
    let items: [Item]
    /// The resident's mail settings page.
    let preferences: String
    let count: Int
    let merged: Bool
    /// Filled in for the HTML part's title, once the subject is rendered.
    var subject = ""

    init(items: [Item], preferences: String) {
        self.items = items
        self.preferences = preferences
        self.count = items.count
        self.merged = items.count > 1
    }
}

/// A rendered mail: subject, plain text and HTML.
struct RenderedMail: Equatable {
    let subject: String
    let text: String
    let html: String
}

/// The mail templates: Mustache files named `<mail>.<language>.<part>.mustache` (parts `subject`, `text`, `html`),
/// bundled with the notifier (`Sources/Notifier/Templates/`) or read from `PORTAL_MAIL_TEMPLATES_DIR`, so an operator
/// can change the wording without a rebuild. Text parts start with `{{% CONTENT_TYPE: TEXT}}` (nothing escaped);
/// HTML parts escape every value.
struct MailTemplates: Sendable {
    static let mails = ["status"]
    static let parts = ["subject", "text", "html"]

    private let library: MustacheLibrary

    /// Loads the templates from `directory`, or the bundled ones; every mail must have every part in both languages.
    init(directory: String? = nil) async throws {
        guard let folder = directory ?? Bundle.module.url(forResource: "Templates", withExtension: nil)?.path else {
            throw TemplateError("the bundled mail templates are missing")
        }
        self.library = try await MustacheLibrary(directory: folder)
        for mail in Self.mails {
            for language in Resident.Locale.allCases {
                for part in Self.parts where self.library.getTemplate(named: "\(mail).\(language.rawValue).\(part)") == nil {
                    throw TemplateError("the template \(mail).\(language.rawValue).\(part).mustache is missing from \(folder)")
                }
            }
        }
    }

    func status(_ view: StatusMailView, language: Resident.Locale) throws -> RenderedMail {
        let subject = try self.render(view, "status.\(language.rawValue).subject")
            .replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        // The HTML title repeats the subject.
        var titled = view
        titled.subject = subject
        var html = try self.render(titled, "status.\(language.rawValue).html")
        if !html.hasSuffix("\n") { html += "\n" }
        let text = try self.render(view, "status.\(language.rawValue).text").trimmingCharacters(in: .newlines) + "\n"
        return RenderedMail(subject: subject, text: text, html: html)
    }

    private func render(_ value: Any, _ name: String) throws -> String {
        guard let rendered = self.library.render(value, withTemplate: name) else { throw TemplateError("no template \(name)") }
        return rendered
    }
}

struct TemplateError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
