/// Exponential backoff with jitter between attempts: the n-th retry waits between half and all of
/// `base * 2^(n-1)`, capped at `maximum`. The jitter spreads retries of jobs that failed together (a department
/// outage) so they do not return together.
public struct RetryPolicy: Sendable, Equatable {
    public var base: Duration
    public var maximum: Duration

    public init(base: Duration = .seconds(1), maximum: Duration = .seconds(3600)) {
        self.base = base
        self.maximum = maximum
    }

    /// The delay before the attempt after `attempt` (1-based), with `random` in 0...1 choosing the jitter.
    public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let exponent = min(max(attempt - 1, 0), 40)
        let ceiling = min(self.base.seconds * Double(1 << UInt64(exponent)), self.maximum.seconds)
        return .milliseconds(Int64(ceiling * (0.5 + 0.5 * random) * 1000))
    }
}
