import Foundation
import Logging
import ServiceLifecycle
import Shared
import UnixSignals

/// A worker process for tests and benchmarks: the real ``JobProcessor`` on the `probe` queue with two kinds.
///
/// - `probe.hold`: on its first attempt, holds its slot until cancelled (a job in progress when the process is
///   killed); on later attempts it completes at once.
/// - `probe.noop`: completes at once (queue throughput).
///
/// Configured like every portal process through `PORTAL_*` variables. Prints `owner <lease owner>` on standard
/// output once it runs, so a test knows which jobs it holds.
@main
enum JobProbe {
    struct HoldPayload: Codable, Sendable {}

    static let hold = JobKind<HoldPayload>("probe.hold", queue: "probe", maxAttempts: 5)
    static let noop = JobKind<HoldPayload>("probe.noop", queue: "probe", maxAttempts: 5)

    static func main() async {
        let configuration = EntryPoint.configuration(for: "JobProbe", defaultHTTPPort: 0)
        var logger = Logger(label: "JobProbe")
        logger.logLevel = configuration.logLevel
        let process = PortalProcess(name: "JobProbe", configuration: configuration, logger: logger)

        var registry = JobRegistry()
        registry.register(self.hold) { _, context in
            if context.job.attempt == 1 {
                try await Task.sleep(for: .seconds(3600))
            }
        }
        registry.register(self.noop) { _, _ in }
        let processor = JobProcessor(
            jobs: process.jobs,
            registry: registry,
            queues: ["probe"],
            settings: configuration.jobs,
            metrics: process.jobMetrics,
            logger: logger,
            preflight: { try await process.requireCurrentSchema() }
        )
        FileHandle.standardOutput.write(Data("owner \(processor.owner)\n".utf8))
        let group = ServiceGroup(
            configuration: .init(services: [process.database, processor], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            EntryPoint.fail("JobProbe", error, status: 1)
        }
    }
}
