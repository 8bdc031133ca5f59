public import Foundation
public import Logging
public import PostgresNIO

/// One processing of personal data, as the Logboek dataverwerkingen standard describes it: what was done, by whom,
/// whose data, on which object, with what result, and the trace id that ties it to the request or job.
public struct AuditRecord: Sendable {
    /// Who did it.
    public enum Actor: Sendable, Equatable {
        /// A resident or business, through a session or a bearer token; the id is `residents.id`.
        case resident(UUID)
        /// A department's system, with its department id.
        case department(UUID)
        /// An operator command, with the command's name.
        case `operator`(String)
        /// The portal itself (a job, a schedule), with the component's name.
        case system(String)
    }

    public enum Result: String, Sendable {
        case success
        case refused
        case failed
    }

    /// A dotted name such as `resident.login`; the list is in docs/SECURITY.md.
    public var activity: String
    public var actor: Actor
    /// Whose data; stored only as a keyed hash.
    public var subject: Subject?
    public var objectType: String?
    public var objectID: String?
    public var result: Result
    public var traceID: String

    public init(
        activity: String,
        actor: Actor,
        subject: Subject?,
        objectType: String? = nil,
        objectID: String? = nil,
        result: Result = .success,
        traceID: String
    ) {
        self.activity = activity
        self.actor = actor
        self.subject = subject
        self.objectType = objectType
        self.objectID = objectID
        self.result = result
        self.traceID = traceID
    }
}

/// Writes audit records. Each call takes the connection of the transaction that does the processing, so a record
/// exists exactly when the processing it describes was committed.
public struct AuditLog: Sendable {
    public let hasher: SubjectHasher

    public init(hasher: SubjectHasher) {
        self.hasher = hasher
    }

    /// Writes a record on its own, committed when this returns: for reads, which have no transaction of their own to
    /// share; call it before sending the data, so nothing is disclosed without its record. One round trip.
    public func record(_ record: AuditRecord, client: PostgresClient, logger: Logger) async throws {
        try await client.query(self.insert(record), logger: logger)
    }

    public func record(_ record: AuditRecord, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(self.insert(record), logger: logger)
    }

    private func insert(_ record: AuditRecord) -> PostgresQuery {
        let (actorKind, actorID): (String, String) =
            switch record.actor {
            case .resident(let id): ("resident", id.uuidString.lowercased())
            case .department(let id): ("department", id.uuidString.lowercased())
            case .operator(let name): ("operator", name)
            case .system(let name): ("system", name)
            }
        let subjectHash = record.subject.map(self.hasher.hash)
        return """
            INSERT INTO audit_log (activity, actor_kind, actor_id, subject_hash, object_type, object_id, result, trace_id)
            VALUES (\(record.activity), \(actorKind), \(actorID), \(subjectHash), \(record.objectType), \(record.objectID),
                    \(record.result.rawValue), \(record.traceID))
            """
    }
}
