public import Logging
public import PostgresNIO

extension PostgresClient {
    /// `withTransaction`, but an error thrown by `body` comes out as itself once the rollback succeeded, so that
    /// callers can catch their own error types (PostgresNIO wraps every error in `PostgresTransactionError`).
    public func transaction<Result: Sendable>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await self.withTransaction(logger: logger, isolation: isolation, body)
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError, error.rollbackError == nil { throw closureError }
            throw error
        }
    }
}
