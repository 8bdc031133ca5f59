public import Foundation
public import Mustache

/// What an update mail says: deliberately little. A mail can be read by anyone who sees the resident's screen or
/// mailbox, so it names no case type, no status, no department and no explanation (a case type such as debt
/// counselling says too much by itself); it says what kind of thing happened, links to the case in the portal, and
/// says where to find whom to ask. Everything that happened for one resident within the merge window is one mail
/// with a line each.
public struct UpdateMailView: Sendable {
    public struct Item: Sendable {
        /// The case's page in the portal (its id is opaque), or the inbox for a message that is not about a case.
        let link: String
        /// The link is to the inbox.
        let inbox: Bool
        // One of these is true: what the line says.
        let status: Bool
        let correction: Bool
        let message: Bool
        let document: Bool
        let overdue: Bool

        public init(link: String, kind: NotificationKind, inbox: Bool = false) {
            self.link = link
            self.inbox = inbox
            self.status = kind == .status
            self.correction = kind == .correction
            self.message = kind == .message
            self.document = kind == .document
            self.overdue = kind == .overdue
        }
    }

    let items: [Item]
    /// The resident's mail settings page.
    let preferences: String
    /// How many cases the mail is about.
    let count: Int
    let merged: Bool
    /// Filled in for the HTML part's title, once the subject is rendered.
    var subject = ""

    public init(items: [Item], preferences: String) {
        self.items = items
        self.preferences = preferences
        self.count = Set(items.map(\.link)).count
        self.merged = self.count > 1
    }
}

extension UpdateMailView {
    /// The lines of a mail: one per case and kind, in order. A status and the correction of it in one mail are one
    /// new status (the resident never saw what was corrected).
    public static func lines(for items: [MailDelivery.Item]) -> [MailDelivery.Item] {
        var seen: Set<String> = []
        let withStatus = Set(items.filter { $0.kind == .status }.map(\.caseID))
        return items.compactMap { item in
            let kind: NotificationKind = item.kind == .correction && withStatus.contains(item.caseID) ? .status : item.kind
            guard seen.insert("\(item.caseID?.uuidString ?? "inbox") \(kind.rawValue)").inserted else { return nil }
            return MailDelivery.Item(kind: kind, caseID: item.caseID)
        }
    }
}

/// What the e-mail verification mail says: the code and how long it works.
public struct VerificationMailView: Sendable {
    let code: String
    let minutes: Int
    var subject = ""

    public init(code: String, minutes: Int) {
        self.code = code
        self.minutes = minutes
    }
}

// Templates read the views by name through `MustacheParent`, not by reflection (Mirror), which was a sixth of the
// notifier's CPU time per mail (docs/BENCHMARKS.md, "Mail").
extension UpdateMailView: MustacheParent {
    public func child(named name: String) -> Any? {
        switch name {
        case "items": self.items
        case "preferences": self.preferences
        case "count": self.count
        case "merged": self.merged
        case "subject": self.subject
        default: nil
        }
    }
}

extension UpdateMailView.Item: MustacheParent {
    public func child(named name: String) -> Any? {
        switch name {
        case "link": self.link
        case "inbox": self.inbox
        case "status": self.status
        case "correction": self.correction
        case "message": self.message
        case "document": self.document
        case "overdue": self.overdue
        default: nil
        }
    }
}

extension VerificationMailView: MustacheParent {
    public func child(named name: String) -> Any? {
        switch name {
        case "code": self.code
        case "minutes": self.minutes
        case "subject": self.subject
        default: nil
        }
    }
}

/// A rendered mail: subject, plain text and HTML.
public struct RenderedMail: Equatable, Sendable {
    public let subject: String
    public let text: String
    public let html: String
}

/// The mail templates: Mustache files named `<mail>.<language>.<part>.mustache` (parts `subject`, `text`, `html`),
/// bundled with the notifier (`Sources/Notifier/Templates/`) or read from `PORTAL_MAIL_TEMPLATES_DIR`, so an operator
/// can change the wording without a rebuild. Text parts start with `{{% CONTENT_TYPE: TEXT}}` (nothing escaped);
/// HTML parts escape every value.
public struct MailTemplates: Sendable {
    static let mails = ["update", "verification"]
    static let parts = ["subject", "text", "html"]

    private let library: MustacheLibrary

    /// Loads the templates from `directory`, or the bundled ones; every mail must have every part in both languages.
    public init(directory: String? = nil) async throws {
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

    public func update(_ view: UpdateMailView, language: Resident.Locale) throws -> RenderedMail {
        try self.mail("update", language: language, view) { $0.subject = $1 }
    }

    public func verification(_ view: VerificationMailView, language: Resident.Locale) throws -> RenderedMail {
        try self.mail("verification", language: language, view) { $0.subject = $1 }
    }

    /// Renders the three parts of `mail`; `title` puts the rendered subject into the view for the HTML part's title.
    private func mail<View>(
        _ mail: String, language: Resident.Locale, _ view: View, title: (inout View, String) -> Void
    ) throws -> RenderedMail {
        let prefix = "\(mail).\(language.rawValue)"
        let subject = try self.render(view, "\(prefix).subject")
            .replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        var titled = view
        title(&titled, subject)
        var html = try self.render(titled, "\(prefix).html")
        if !html.hasSuffix("\n") { html += "\n" }
        let text = try self.render(view, "\(prefix).text").trimmingCharacters(in: .newlines) + "\n"
        return RenderedMail(subject: subject, text: text, html: html)
    }

    private func render(_ value: Any, _ name: String) throws -> String {
        guard let rendered = self.library.render(value, withTemplate: name) else { throw TemplateError("no template \(name)") }
        return rendered
    }
}

public struct TemplateError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
