import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

@testable import Shared

/// Runs a ``JobProcessor`` in this test process inside a real `ServiceGroup`, with its own metrics registry.
struct ProcessorHarness: Sendable {
    let database: TestDatabase
    let prometheus = PrometheusCollectorRegistry()
    let processor: JobProcessor

    init(database: TestDatabase, registry: JobRegistry, queues: [String] = ["test"], settings: JobSettings) {
        self.database = database
        self.processor = JobProcessor(
            jobs: database.jobs,
            registry: registry,
            queues: queues,
            settings: settings,
            metrics: JobMetrics(factory: PrometheusMetricsFactory(registry: self.prometheus)),
            logger: database.logger
        )
    }

    /// Runs the processor while `body` runs; `body` gets the group to trigger a graceful shutdown itself.
    /// Returns after the processor has stopped.
    func run<T: Sendable>(_ body: @Sendable (ServiceGroup) async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: [self.processor], logger: self.database.logger))
        return try await whileRunning(group) { try await body(group) }
    }

    /// The value of one Prometheus sample line, e.g. `portal_job_runs_total{queue="test",kind="x",outcome="dead"}`.
    func metric(_ name: String, _ labels: [String: String]) -> Double? {
        let text = self.prometheus.emitToString()
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            let labelText = line.drop(while: { $0 != "{" }).prefix(while: { $0 != "}" })
            if labels.allSatisfy({ labelText.contains("\($0.key)=\"\($0.value)\"") }) {
                return line.split(separator: " ").last.flatMap { Double($0) }
            }
        }
        return nil
    }
}

/// Counts how many handlers run at once, and the most that ever did.
final class ConcurrencyCounter: Sendable {
    private let state = Mutex<(current: Int, peak: Int, finished: Int)>((0, 0, 0))

    func enter() {
        self.state.withLock {
            $0.current += 1; $0.peak = max($0.peak, $0.current)
        }
    }
    func leave() {
        self.state.withLock {
            $0.current -= 1; $0.finished += 1
        }
    }
    /// Counts one event that has no duration.
    func tick() {
        self.enter()
        self.leave()
    }
    var current: Int { self.state.withLock { $0.current } }
    var peak: Int { self.state.withLock { $0.peak } }
    var finished: Int { self.state.withLock { $0.finished } }
}

/// Runs `group` while `body` runs, then shuts it down gracefully and waits until it stopped, as a process would.
func whileRunning<T: Sendable>(_ group: ServiceGroup, _ body: () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let result = try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}
