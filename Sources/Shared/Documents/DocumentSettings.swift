import Foundation
public import Logging
public import PostgresNIO

/// How documents are accepted and kept: `PORTAL_UPLOAD_MAX_BYTES`, `PORTAL_UPLOAD_MAX_FILES_PER_CASE`,
/// `PORTAL_UPLOAD_MAX_BYTES_PER_CASE`, `PORTAL_CLAMD_ADDRESS`, `PORTAL_CLAMD_TIMEOUT_SECONDS`,
/// `PORTAL_DOCUMENT_STORAGE` and `PORTAL_DOCUMENT_DIRECTORY` (docs/CONFIGURATION.md).
public struct DocumentSettings: Sendable {
    /// The largest file accepted, in bytes (default 25 MiB).
    public var maxBytes: Int
    /// How many files one resident may upload to one case.
    public var maxFilesPerCase: Int
    /// How many bytes one resident may upload to one case in all.
    public var maxBytesPerCase: Int
    /// Nil: files are stored unscanned (`scan` is `not-scanned`).
    public var clamd: ClamdScanner?
    public var storage: StorageChoice
    /// `PORTAL_DOCUMENT_DIRECTORY` when set: documents stored there are read from there, also after switching new
    /// documents to PostgreSQL.
    public var directory: String?

    public enum StorageChoice: Sendable, Equatable {
        case postgres
        case directory(String)
    }

    public init(
        maxBytes: Int = 25 * 1024 * 1024,
        maxFilesPerCase: Int = 20,
        maxBytesPerCase: Int = 100 * 1024 * 1024,
        clamd: ClamdScanner? = nil,
        storage: StorageChoice = .postgres
    ) {
        self.maxBytes = maxBytes
        self.maxFilesPerCase = maxFilesPerCase
        self.maxBytesPerCase = maxBytesPerCase
        self.clamd = clamd
        self.storage = storage
    }

    public init(_ environment: EnvironmentReader) throws(ConfigurationError) {
        let maxBytes = try environment.integer("PORTAL_UPLOAD_MAX_BYTES", default: 25 * 1024 * 1024, in: 1024...1024 * 1024 * 1024)
        let maxFiles = try environment.integer("PORTAL_UPLOAD_MAX_FILES_PER_CASE", default: 20, in: 1...10_000)
        let maxBytesPerCase = try environment.integer(
            "PORTAL_UPLOAD_MAX_BYTES_PER_CASE", default: max(100 * 1024 * 1024, maxBytes), in: 1024...100 * 1024 * 1024 * 1024)
        var clamd: ClamdScanner?
        if let text = environment.string("PORTAL_CLAMD_ADDRESS") {
            guard let address = ClamdAddress(text) else {
                throw ConfigurationError(
                    variable: "PORTAL_CLAMD_ADDRESS",
                    problem: "must look like tcp://127.0.0.1:3310, 127.0.0.1:3310 or unix:/run/clamav/clamd.ctl")
            }
            let timeout = try environment.seconds("PORTAL_CLAMD_TIMEOUT_SECONDS", default: .seconds(60), in: 1...600)
            clamd = ClamdScanner(address: address, timeout: timeout)
        }
        let storage: StorageChoice
        switch environment.string("PORTAL_DOCUMENT_STORAGE", default: "postgres") {
        case "postgres": storage = .postgres
        case "directory":
            guard let folder = environment.string("PORTAL_DOCUMENT_DIRECTORY"), folder.hasPrefix("/") else {
                throw ConfigurationError(
                    variable: "PORTAL_DOCUMENT_DIRECTORY", problem: "must be an absolute path when PORTAL_DOCUMENT_STORAGE is directory")
            }
            storage = .directory(folder)
        case let other:
            throw ConfigurationError(variable: "PORTAL_DOCUMENT_STORAGE", problem: "must be postgres or directory, got \"\(other)\"")
        }
        self.init(maxBytes: maxBytes, maxFilesPerCase: maxFiles, maxBytesPerCase: maxBytesPerCase, clamd: clamd, storage: storage)
        if let folder = environment.string("PORTAL_DOCUMENT_DIRECTORY") {
            guard folder.hasPrefix("/") else {
                throw ConfigurationError(variable: "PORTAL_DOCUMENT_DIRECTORY", problem: "must be an absolute path")
            }
            self.directory = folder
        }
    }

    /// The storage these settings name, for new documents.
    public func makeStorage(database: PostgresClient, logger: Logger) -> any DocumentStorage {
        switch self.storage {
        case .postgres: PostgresDocumentStorage(client: database, logger: logger)
        case .directory(let root): DirectoryDocumentStorage(root: root)
        }
    }

    /// Checks at start that a storage folder exists and can be written to.
    public func checkStorage() async throws(ConfigurationError) {
        if case .directory(let root) = self.storage { try await DirectoryDocumentStorage.check(root: root) }
    }

    /// Both storages, for reading: a document is read from the one it was stored in, so an operator can switch
    /// storage without moving old files.
    public func storages(database: PostgresClient, logger: Logger) -> [DocumentStorageKind: any DocumentStorage] {
        var result: [DocumentStorageKind: any DocumentStorage] = [.postgres: PostgresDocumentStorage(client: database, logger: logger)]
        var folder = self.directory
        if case .directory(let root) = self.storage { folder = root }
        if let folder { result[.directory] = DirectoryDocumentStorage(root: folder) }
        return result
    }
}
