public import Foundation

/// Whom a resident can ask about a case: the handler, a team, or the department's general contact.
public struct Contact: Sendable, Equatable, Codable {
    public var name: String
    public var phone: String?
    public var email: String?
    /// Opening hours, as the department writes them ("ma-vr 9-17").
    public var hours: String?

    public init(name: String, phone: String? = nil, email: String? = nil, hours: String? = nil) {
        self.name = name
        self.phone = phone
        self.email = email
        self.hours = hours
    }
}

/// What a department sends to create or update a case.
public struct CaseInput: Sendable, Equatable {
    public var subject: Subject
    public var caseTypeCode: String
    public var title: String
    public var submittedAt: Date
    /// `YYYY-MM-DD`; nil: submitted date plus the case type's term, if it has one.
    public var dueDate: String?
    public var language: Resident.Locale
    public var contactEmail: String?
    public var handler: Contact?

    public init(
        subject: Subject,
        caseTypeCode: String,
        title: String,
        submittedAt: Date,
        dueDate: String? = nil,
        language: Resident.Locale = .nl,
        contactEmail: String? = nil,
        handler: Contact? = nil
    ) {
        self.subject = subject
        self.caseTypeCode = caseTypeCode
        self.title = title
        self.submittedAt = submittedAt
        self.dueDate = dueDate
        self.language = language
        self.contactEmail = contactEmail
        self.handler = handler
    }
}

/// The status a case is in now.
public struct CurrentStatus: Sendable, Equatable {
    public var code: String
    public var text: LocalizedText
    public var setAt: Date
    public var final: Bool
}

/// A case as the portal holds it.
public struct CaseRecord: Sendable, Equatable {
    /// The opaque id residents see.
    public var id: UUID
    public var departmentID: UUID
    public var reference: String
    public var subject: Subject
    public var caseTypeID: UUID
    public var caseTypeCode: String
    public var title: String
    public var submittedAt: Date
    public var dueDate: String?
    public var language: Resident.Locale
    public var contactEmail: String?
    public var handler: Contact?
    public var status: CurrentStatus?
}

/// A status a department reports.
public struct NewStatusEvent: Sendable, Equatable {
    /// The department's id for this event; the idempotency key.
    public var eventID: String
    public var statusCode: String
    public var text: LocalizedText
    /// Why, and what the resident can do now. A rejection must carry one.
    public var explanation: LocalizedText?
    public var setAt: Date
    /// Overrides the status type's `informs`.
    public var informs: Bool?
    /// The event id this one corrects.
    public var corrects: String?

    public init(
        eventID: String,
        statusCode: String,
        text: LocalizedText,
        explanation: LocalizedText? = nil,
        setAt: Date,
        informs: Bool? = nil,
        corrects: String? = nil
    ) {
        self.eventID = eventID
        self.statusCode = statusCode
        self.text = text
        self.explanation = explanation
        self.setAt = setAt
        self.informs = informs
        self.corrects = corrects
    }
}

/// A stored status event.
public struct StatusEvent: Sendable, Equatable {
    public var id: Int64
    public var caseID: UUID
    public var eventID: String
    public var statusCode: String
    public var text: LocalizedText
    public var explanation: LocalizedText?
    public var setAt: Date
    public var final: Bool
    public var informs: Bool
    public var corrects: String?
}

/// What adding a status event did.
public enum StatusOutcome: Sendable, Equatable {
    /// Stored (and, when it became an informing current status, announced with a notification).
    case added(StatusEvent)
    /// The event id was seen before: nothing changed, this is the original.
    case replayed(StatusEvent)
}
