import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

@testable import Shared
@testable import SyncWorker

/// The sync worker, built by the same builder as the executable, running in this test process against a test
/// database.
enum SyncHarness {
    static func with<T: Sendable>(
        _ database: TestDatabase, settings: SyncSettings = SyncSettings(), concurrency: Int = 4,
        _ body: @Sendable () async throws -> T
    ) async throws -> T {
        var jobs = JobSettings()
        jobs.pollInterval = .milliseconds(100)
        jobs.concurrency = [Queues.sync: concurrency]
        let configuration = PortalConfiguration(
            database: database.settings, httpPort: 0, publicURL: URL(string: APIHarness.publicURL)!, jobs: jobs)
        let process = PortalProcess(name: "SyncWorker", configuration: configuration, logger: database.logger)
        let group = ServiceGroup(configuration: .init(services: [buildSyncWorker(process, settings: settings)], logger: process.logger))
        return try await whileRunning(group) { try await body() }
    }

    /// A department with a case type `vergunning` (steps `ontvangen`, `in-behandeling`, `besluit`), connected to
    /// `feed`; returns its id.
    static func feedDepartment(
        _ database: TestDatabase, name: String = "Vergunningen", feed: URL, interval: Duration = .seconds(1), token: String? = nil
    ) async throws -> UUID {
        let issued = try await DepartmentStore().add(name: name, client: database.client, logger: database.logger)
        let id = issued.department.id
        try await database.client.transaction(logger: database.logger) { connection in
            _ = try await CaseTypeStore().put(
                departmentID: id, code: "vergunning", name: LocalizedText(nl: "Vergunning"), termDays: 56,
                statusTypes: [
                    StatusType(code: "ontvangen", name: LocalizedText(nl: "Ontvangen")),
                    StatusType(code: "in-behandeling", name: LocalizedText(nl: "In behandeling")),
                    StatusType(code: "besluit", name: LocalizedText(nl: "Besluit"), final: true),
                ],
                on: connection, logger: database.logger)
        }
        let connector = Connector(
            departmentID: id, kind: .feed, settings: Connector.Settings(url: feed), secret: token, interval: interval,
            maxConcurrent: 2, maxPerSecond: 1000)
        _ = try await ConnectorStore().connect(connector, jobs: database.jobs, client: database.client, logger: database.logger)
        return id
    }

    /// A change as the feed contract shapes it: a case (when `bsn` is given) and one status.
    static func change(_ reference: String, bsn: String? = nil, event: String, status: String, at: String) -> String {
        let `case` =
            bsn.map {
                #""case": {"subject": {"bsn": "\#($0)"}, "caseType": "vergunning", "title": "Omgevingsvergunning", "submittedAt": "2026-11-01T09:00:00Z"}, "#
            } ?? ""
        return
            #"{"reference": "\#(reference)", \#(`case`)"statuses": [{"eventId": "\#(event)", "statusType": "\#(status)", "setAt": "\#(at)", "text": {"nl": "\#(status)"}}]}"#
    }

    /// The `n`-th valid BSN (nine digits passing the elfproef) from 100000000 upwards.
    static func bsn(_ n: Int) -> String {
        var candidate = 10_000_000 + n * 10
        while true {
            let digits = String(candidate).compactMap(\.wholeNumberValue)
            let sum = zip(digits, [9, 8, 7, 6, 5, 4, 3, 2]).reduce(0) { $0 + $1.0 * $1.1 }
            if sum % 11 < 10 { return String(candidate) + String(sum % 11) }
            candidate += 1
        }
    }
}
