public import PostgresNIO

extension PostgresClient {
    /// Runs the client for the duration of `body`: for commands and tests that are not a long-running
    /// `ServiceGroup` (which runs the client as a service instead).
    public func whileRunning<Result: Sendable>(_ body: @Sendable () async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}
