import Foundation
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
            let abandoned = try await self.services.documents.abandoned(
                olderThan: self.age, client: self.services.database, logger: self.logger)
            // The content first, then the rows: a file whose removal failed keeps its row, and is tried again next time.
            var removable: [UUID] = []
            for (id, kind) in abandoned {
                guard kind == .directory else {
                    removable.append(id)
                    continue
                }
                do {
                    try await self.services.storages[.directory]?.delete([id])
                    removable.append(id)
                } catch {
                    self.logger.warning("removing an unfinished upload's file failed", metadata: ["error": "\(error)"])
                }
            }
            try await self.services.documents.removeAbandoned(removable, client: self.services.database, logger: self.logger)
            if !removable.isEmpty {
                self.logger.info("removed unfinished uploads", metadata: ["portal.documents.removed": "\(removable.count)"])
            }
        } catch {
            self.logger.warning("removing unfinished uploads failed", metadata: ["error": "\(error)"])
        }
    }
}
