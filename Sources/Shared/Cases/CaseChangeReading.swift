public import Foundation
public import Logging
public import PostgresNIO

/// The identifiers departments choose.
public enum CaseCodes {
    /// Codes of case types and status types: letters, digits, `.`, `_`, `-`.
    public static func isCode(_ text: String) -> Bool {
        (1...100).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// A department's case reference, as it appears in the URL.
    public static func isReference(_ text: String) -> Bool {
        (1...200).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._~:-".contains($0)) }
    }
}

/// Reading a case, a status event and a contact as departments send them, the same whether they push them to the
/// API (`PUT /department/cases/{reference}`, `POST .../statuses`, the batch) or the sync worker pulls them from a feed.
extension JSONFields {
    /// Reads a case body: the case (nil when a field is invalid; the errors are in `body`), and the case type code on
    /// its own, so that an unknown case type can be reported together with the other errors.
    public mutating func caseInput() -> (input: CaseInput?, caseTypeCode: String?) {
        let subject = self.subject("subject", required: true)
        let caseTypeCode = self.string("caseType", required: true, maxLength: 100)
        let title = self.string("title", required: true, maxLength: 200)
        if title?.isEmpty == true { self.fail("title", "required", "A title is required.") }
        let submittedAt = self.timestamp("submittedAt", required: true)
        let dueDate = self.date("dueDate")
        let language = self.choice("language", Resident.Locale.self) ?? .nl
        let contactEmail = self.email("contactEmail")
        let handler = self.nested("handler") { $0.contact() }
        guard let subject, let caseTypeCode, let title, !title.isEmpty, let submittedAt else { return (nil, caseTypeCode) }
        let input = CaseInput(
            subject: subject,
            caseTypeCode: caseTypeCode,
            title: title,
            submittedAt: submittedAt,
            dueDate: dueDate,
            language: language,
            contactEmail: contactEmail,
            handler: handler
        )
        return (input, caseTypeCode)
    }

    /// Reads a contact: `name` (required), `phone`, `email`, `hours`.
    public mutating func contact() -> Contact? {
        let name = self.string("name", required: true, maxLength: 200)
        let phone = self.string("phone", maxLength: 50)
        let email = self.email("email")
        let hours = self.string("hours", maxLength: 200)
        return name.map { Contact(name: $0, phone: phone, email: email, hours: hours) }
    }

    /// Reads a status event body; nil when a field is invalid (the errors are in `body`).
    public mutating func statusEvent() -> NewStatusEvent? {
        let eventID = self.string("eventId", required: true, maxLength: 200)
        let statusCode = self.string("statusType", required: true, maxLength: 100)
        let setAt = self.timestamp("setAt", required: true)
        let text = self.localized("text", required: true, maxLength: 2000)
        let explanation = self.localized("explanation", maxLength: 4000)
        let informs = self.bool("informs")
        let corrects = self.string("corrects", maxLength: 200)
        guard let eventID, let statusCode, let setAt, let text else { return nil }
        return NewStatusEvent(
            eventID: eventID,
            statusCode: statusCode,
            text: text,
            explanation: explanation,
            setAt: setAt,
            informs: informs,
            corrects: corrects
        )
    }

    /// One item of a batch or a change feed: `{"reference", "case", "statuses"}`, at least a case or a status. The
    /// item is nil when a field is invalid (the errors are in `self`); the reference is there when it was readable.
    public mutating func caseChange() -> (reference: String?, item: CaseChangeItem?) {
        let reference = self.string("reference", required: true, maxLength: 200)
        if let reference, !CaseCodes.isReference(reference) {
            self.fail("reference", "invalid", "Letters, digits and '._~:-' only.")
        }
        let input = self.nested("case") { $0.caseInput().input }
        let statuses = self.objects("statuses", count: 0...100) { $0.statusEvent() } ?? []
        if !self.contains("case") && statuses.isEmpty && self.allErrors.isEmpty {
            self.fail("case", "required", "Give a case, at least one status, or both.")
        }
        guard self.allErrors.isEmpty, let reference else { return (reference, nil) }
        return (reference, CaseChangeItem(reference: reference, input: input, statuses: statuses))
    }
}

/// A change as a department sends it, read but not yet matched to its case type.
public struct CaseChangeItem: Sendable, Equatable {
    public var reference: String
    public var input: CaseInput?
    public var statuses: [NewStatusEvent]

    public init(reference: String, input: CaseInput?, statuses: [NewStatusEvent]) {
        self.reference = reference
        self.input = input
        self.statuses = statuses
    }
}

extension CaseTypeStore {
    /// Turns items read from a department into changes, looking up each case type named once. An item that names a
    /// case type the department has not defined is refused with ``CaseError/unknownCaseType(_:)``.
    public func changes(
        for items: [CaseChangeItem], departmentID: UUID, on connection: PostgresConnection, logger: Logger
    ) async throws -> [Result<CaseChange, CaseError>] {
        var caseTypes: [String: CaseType?] = [:]
        for code in Set(items.compactMap(\.input?.caseTypeCode)) {
            caseTypes[code] = try await self.find(departmentID: departmentID, code: code, on: connection, logger: logger)
        }
        return items.map { item in
            var fields: CaseChange.CaseFields?
            if let input = item.input {
                guard let caseType = caseTypes[input.caseTypeCode] ?? nil else { return .failure(.unknownCaseType(input.caseTypeCode)) }
                fields = CaseChange.CaseFields(input, caseType: caseType)
            }
            return .success(CaseChange(reference: item.reference, fields: fields, statuses: item.statuses))
        }
    }
}

extension CaseChange {
    /// Consecutive runs of at most `size` items in which no case appears twice (a case named again starts a new run),
    /// so that ``CaseStore/apply(_:departmentID:jobs:traceID:on:logger:)``, which takes one change per case, applies
    /// them run by run in the order given.
    public static func chunks<Item>(_ items: [Item], size: Int, reference: (Item) -> String) -> [[Item]] {
        var chunks: [[Item]] = []
        var current: [Item] = []
        var references: Set<String> = []
        for item in items {
            if current.count == size || references.contains(reference(item)) {
                chunks.append(current)
                current = []
                references = []
            }
            current.append(item)
            references.insert(reference(item))
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }
}
