import Logging
import PostgresNIO
import ServiceLifecycle
import Shared

/// Removes uploads that never finished: a document still `receiving` an hour after it started belongs to an upload
/// whose process died (a live one is refused long before, by its size limit and the server's timeouts). Its chunks
/// go with its row; content in a folder is removed here. Every API replica runs one; removing twice does no harm.
struct UploadJanitor: Service {
    let services: DocumentServices
    let logger: Logger
    var interval: Duration = .seconds(600)
    var age: Duration = .seconds(3600)

    func run() async throws {
        try await PeriodicWork(every: self.interval) { await self.cleanOnce() }.run()
    }

    func cleanOnce() async {
        do {
            let removed = try await self.services.documents.removeAbandoned(
                olderThan: self.age, client: self.services.database, logger: self.logger)
            for (id, kind) in removed where kind == .directory {
                try await self.services.storages[.directory]?.delete([id])
            }
            if !removed.isEmpty {
                self.logger.info("removed unfinished uploads", metadata: ["portal.documents.removed": "\(removed.count)"])
            }
        } catch {
            self.logger.warning("removing unfinished uploads failed", metadata: ["error": "\(error)"])
        }
    }
}
