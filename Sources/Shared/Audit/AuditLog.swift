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

/// Writes audit records. A record of processing done in a transaction is written on that transaction's connection,
/// so it exists exactly when the processing it describes was committed. A record of a read, which has no transaction
/// to share, is committed on its own before the data is sent; the records of concurrent reads share one multi-row
/// `INSERT` and one commit (``GroupCommit``), so a busy API does not pay a durable commit per read.
public struct AuditLog: Sendable {
    public let hasher: SubjectHasher
    private let reads: GroupCommit<AuditRecord, Void>

    /// Columns per record in the `INSERT`.
    private static let columns = 8
    /// Records per `INSERT`, well within PostgreSQL's 65,535 parameters.
    private static let maximumRows = 1000

    public init(hasher: SubjectHasher, database: PostgresClient) {
        self.hasher = hasher
        self.reads = GroupCommit(maximumBatch: Self.maximumRows) { records, logger in
            try await database.query(Self.insert(records, hasher: hasher), logger: logger)
            return records.map { _ in () }
        }
    }

    /// Writes `record` on its own; committed when this returns. Call it before sending the data, so nothing is
    /// disclosed without its record.
    public func record(_ record: AuditRecord, logger: Logger) async throws {
        try await self.reads.submit(record, logger: logger)
    }

    /// Writes `record` in the transaction of `connection`.
    public func record(_ record: AuditRecord, on connection: PostgresConnection, logger: Logger) async throws {
        try await self.record([record], on: connection, logger: logger)
    }

    /// Writes `records` in the transaction of `connection`, with one statement.
    public func record(_ records: [AuditRecord], on connection: PostgresConnection, logger: Logger) async throws {
        for start in stride(from: 0, to: records.count, by: Self.maximumRows) {
            let rows = Array(records[start..<min(start + Self.maximumRows, records.count)])
            try await connection.query(Self.insert(rows, hasher: self.hasher), logger: logger)
        }
    }

    private static func insert(_ records: [AuditRecord], hasher: SubjectHasher) -> PostgresQuery {
        var sql = """
            INSERT INTO audit_log (activity, actor_kind, actor_id, subject_hash, object_type, object_id, result, trace_id)
            VALUES
            """
        var bindings = PostgresBindings(capacity: records.count * Self.columns)
        for (index, record) in records.enumerated() {
            let (actorKind, actorID): (String, String) =
                switch record.actor {
                case .resident(let id): ("resident", id.uuidString.lowercased())
                case .department(let id): ("department", id.uuidString.lowercased())
                case .operator(let name): ("operator", name)
                case .system(let name): ("system", name)
                }
            bindings.append(record.activity)
            bindings.append(actorKind)
            bindings.append(actorID)
            bindings.append(record.subject.map(hasher.hash))
            bindings.append(record.objectType)
            bindings.append(record.objectID)
            bindings.append(record.result.rawValue)
            bindings.append(record.traceID)
            let first = index * Self.columns
            let placeholders = (1...Self.columns).map { "$\(first + $0)" }.joined(separator: ", ")
            sql += index == 0 ? " (\(placeholders))" : ", (\(placeholders))"
        }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }
}
