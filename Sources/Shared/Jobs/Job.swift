public import Foundation

/// The database id of a job.
public struct JobID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public var description: String { String(self.rawValue) }
    public static func < (lhs: JobID, rhs: JobID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A kind of job: its name, the queue it runs on, and its retry budget. Declared once, next to its handler, and
/// used both to enqueue (with a typed payload) and to register the handler.
public struct JobKind<Payload: Codable & Sendable>: Sendable {
    public let name: String
    public let queue: String
    /// Attempts before the job is dead. A lease that expires counts as an attempt.
    public let maxAttempts: Int
    public let priority: Int16
    public let retryPolicy: RetryPolicy

    public init(_ name: String, queue: String, maxAttempts: Int = 20, priority: Int16 = 0, retryPolicy: RetryPolicy = .init()) {
        precondition(maxAttempts >= 1, "a job needs at least one attempt")
        self.name = name
        self.queue = queue
        self.maxAttempts = maxAttempts
        self.priority = priority
        self.retryPolicy = retryPolicy
    }
}

/// A job to enqueue.
public struct NewJob: Sendable {
    public var queue: String
    public var kind: String
    /// The payload as JSON text.
    public var payload: String
    public var priority: Int16
    /// When the job may run first; `nil` is now (the database's clock).
    public var runAt: Date?
    public var maxAttempts: Int
    /// While a job with this key is pending or running, enqueueing another is a no-op.
    public var uniqueKey: String?
    public var traceID: String?

    public init<Payload>(
        _ kind: JobKind<Payload>,
        payload: Payload,
        runAt: Date? = nil,
        uniqueKey: String? = nil,
        priority: Int16? = nil,
        traceID: String? = nil
    ) throws {
        self.queue = kind.queue
        self.kind = kind.name
        self.payload = String(decoding: try JSONEncoder.jobs.encode(payload), as: UTF8.self)
        self.priority = priority ?? kind.priority
        self.runAt = runAt
        self.maxAttempts = kind.maxAttempts
        self.uniqueKey = uniqueKey
        self.traceID = traceID
    }
}

/// What happened to one enqueued job.
public enum EnqueueResult: Sendable, Equatable {
    case enqueued(JobID)
    /// A job with the same unique key is already pending or running; nothing was added.
    case duplicate(uniqueKey: String)

    public var jobID: JobID? {
        if case .enqueued(let id) = self { return id }
        return nil
    }
}

/// One attempt of a job: what every state change of a running job is fenced on, with the lease owner.
public struct JobAttempt: Hashable, Sendable {
    public let id: JobID
    public let attempt: Int

    public init(id: JobID, attempt: Int) {
        self.id = id
        self.attempt = attempt
    }
}

/// A job claimed by this process: it holds the lease until it completes, fails, snoozes or releases it.
public struct ClaimedJob: Sendable {
    public let id: JobID
    public let queue: String
    public let kind: String
    public let payload: String
    /// This attempt's number, from 1. Together with ``leaseOwner`` it fences every state change.
    public let attempt: Int
    public let maxAttempts: Int
    public let leaseOwner: String
    public let createdAt: Date
    /// How long the job waited between being due and being claimed.
    public let startDelay: Duration
    /// The trace of the request that enqueued the job, or for a job enqueued outside any (a schedule), a new trace
    /// for this attempt: its log lines, audit records, calls and follow-up jobs all carry one.
    public let traceID: String

    /// This claim's fence (with ``leaseOwner``).
    public var fence: JobAttempt { JobAttempt(id: self.id, attempt: self.attempt) }

    public func decodePayload<Payload: Decodable>(as type: Payload.Type = Payload.self) throws -> Payload {
        try JSONDecoder.jobs.decode(Payload.self, from: Data(self.payload.utf8))
    }
}

/// Thrown by a handler when retrying cannot help (a malformed payload, a 5xx SMTP reply): the job goes straight to
/// `dead`, keeping this message for operators.
public struct PermanentJobError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Thrown by a handler to run the job again later without spending an attempt (a rate limit, a paused department).
public struct JobSnooze: Error {
    public let delay: Duration
    public init(for delay: Duration) { self.delay = delay }
}

extension JSONEncoder {
    static let jobs: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()
}

extension JSONDecoder {
    static let jobs: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
