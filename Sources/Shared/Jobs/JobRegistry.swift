public import Logging

/// What a handler gets besides its payload.
public struct JobContext: Sendable {
    public let job: ClaimedJob
    /// Carries `portal.job.id`, `portal.job.kind`, `portal.job.queue` and `portal.job.attempt` on every line.
    public let logger: Logger
}

/// The handlers one process runs, by job kind.
public struct JobRegistry: Sendable {
    typealias Handler = @Sendable (ClaimedJob, JobContext) async throws -> Void

    struct Entry: Sendable {
        let handler: Handler
        let retryPolicy: RetryPolicy
    }

    private(set) var entries: [String: Entry] = [:]

    public init() {}

    /// Registers the handler for `kind`; its payload is decoded before the handler is called, and a payload that
    /// does not decode fails the job for good (retrying cannot fix it).
    public mutating func register<Payload>(
        _ kind: JobKind<Payload>,
        handler: @escaping @Sendable (Payload, JobContext) async throws -> Void
    ) {
        precondition(self.entries[kind.name] == nil, "job kind \(kind.name) registered twice")
        self.entries[kind.name] = Entry(
            handler: { job, context in
                let payload: Payload
                do {
                    payload = try job.decodePayload(as: Payload.self)
                } catch {
                    throw PermanentJobError("the payload of this \(kind.name) job does not decode: \(error)")
                }
                try await handler(payload, context)
            },
            retryPolicy: kind.retryPolicy
        )
    }

    func entry(for kind: String) -> Entry? { self.entries[kind] }
}
