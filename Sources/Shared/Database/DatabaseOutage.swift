import PostgresNIO

/// Whether an error says that the database could not be used at all (the connection was lost or could not be made,
/// the pool is closed, the server is shutting down or still starting), rather than that a statement failed. Such a
/// request did nothing and may simply be tried again: the API answers it 503 with `Retry-After`, not 500.
public enum DatabaseOutage {
    public static func caused(_ error: any Error) -> Bool {
        if let error = error as? PSQLError {
            switch error.code {
            case .clientClosedConnection, .serverClosedConnection, .connectionError, .uncleanShutdown, .poolClosed:
                return true
            case .server:
                // 57P01 to 57P05: admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped,
                // idle_session_timeout; class 08: connection exceptions. Not 57014 (a statement cancelled).
                guard let state = error.serverInfo?[.sqlState] else { return false }
                return state.hasPrefix("57P") || state.hasPrefix("08")
            default:
                return false
            }
        }
        if let error = error as? PostgresTransactionError {
            return [error.beginError, error.closureError, error.commitError].contains { $0.map(Self.caused) ?? false }
        }
        return false
    }
}
