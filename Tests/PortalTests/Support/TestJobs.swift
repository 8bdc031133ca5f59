import Foundation

@testable import Shared

/// Job kinds used by the queue tests.
enum TestJobs {
    struct Payload: Codable, Sendable, Equatable {
        var value: Int
    }

    static let work = JobKind<Payload>(
        "test.work", queue: "test", maxAttempts: 3, retryPolicy: RetryPolicy(base: .milliseconds(10), maximum: .milliseconds(50)))
    static let other = JobKind<Payload>("test.other", queue: "other", maxAttempts: 3)

    static func job(_ value: Int = 0, runAt: Date? = nil, uniqueKey: String? = nil, priority: Int16? = nil) throws -> NewJob {
        try NewJob(self.work, payload: Payload(value: value), runAt: runAt, uniqueKey: uniqueKey, priority: priority)
    }
}
