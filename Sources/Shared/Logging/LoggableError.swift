import PostgresNIO

/// How an error appears in a log line.
///
/// PostgreSQL's own messages can quote the data a statement carried: a constraint violation's detail repeats the
/// failing row, which may hold a BSN. So a `PSQLError` is described by what identifies the failure without data (its
/// code, SQLSTATE, constraint, table and column, and the statement's SQL, whose values are always bind parameters),
/// never by the server's message or detail. `PSQLError`'s plain description says nothing at all, and its
/// reflection says everything; this is the useful middle.
public enum LoggableError {
    public static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            var parts = ["code: \(error.code)"]
            let fields: [(String, PSQLError.ServerInfo.Field)] = [
                ("sqlState", .sqlState), ("constraint", .constraintName), ("table", .tableName), ("column", .columnName),
            ]
            for (name, field) in fields {
                if let value = error.serverInfo?[field] { parts.append("\(name): \(value)") }
            }
            if let query = error.query {
                parts.append("sql: \(query.sql.split(whereSeparator: \.isWhitespace).joined(separator: " "))")
            }
            if let underlying = error.underlying { parts.append("underlying: \(self.describe(underlying))") }
            return "PSQLError(\(parts.joined(separator: ", ")))"
        }
        if let error = error as? PostgresTransactionError {
            let inner = [error.beginError, error.closureError, error.rollbackError, error.commitError].compactMap { $0 }
            return "PostgresTransactionError(\(inner.map(self.describe).joined(separator: "; ")))"
        }
        return String(describing: error)
    }
}
