import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Shared
import Synchronization

/// Measures the job queue through its real code path, against the database in `PORTAL_DATABASE_URL` (which it
/// empties of jobs first: point it at a benchmark database only). Prints one JSON object with the figures;
/// bench/queue.sh runs it next to pgbench and writes docs/BENCHMARKS.md.
///
/// Arguments: `[jobs] [workers]`, default 100000 jobs and 10 workers (the processor's concurrency).
@main
enum QueueBench {
    struct Empty: Codable, Sendable {}
    static let noop = JobKind<Empty>("bench.noop", queue: "bench", maxAttempts: 3)

    /// Progress on standard error, so a slow phase is visible while the figures stay on standard output.
    static func progress(_ message: String) {
        FileHandle.standardError.write(Data("QueueBench: \(message)\n".utf8))
    }

    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
        let total = arguments.first ?? 100_000
        let workers = arguments.dropFirst().first ?? 10
        let logger = {
            var logger = Logger(label: "QueueBench")
            logger.logLevel = .error
            return logger
        }()
        let configuration = EntryPoint.configuration(for: "QueueBench", defaultHTTPPort: 0)
        var database = configuration.database
        database.maximumConnections = max(workers + 4, 16)
        let client = PostgresClient(configuration: database.clientConfiguration, backgroundLogger: logger)
        let jobs = JobQueue(client: client, logger: logger)

        let figures = try await client.whileRunning {
            try await client.query("TRUNCATE jobs", logger: logger)
            var figures: [String: Double] = [:]

            // Enqueue, one job per transaction, 8 connections at once.
            let single = 5_000
            var start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        for _ in stride(from: task, to: single, by: 8) { try await jobs.enqueue(try NewJob(Self.noop, payload: Empty())) }
                    }
                }
                try await group.waitForAll()
            }
            Self.progress("enqueued \(single) jobs one by one")
            figures["enqueue_single_jobs_per_s"] = Double(single) / (ContinuousClock.now - start).seconds

            // Enqueue in batches of 1,000 (one multi-row insert each).
            start = ContinuousClock.now
            let batch = try (0..<1000).map { _ in try NewJob(Self.noop, payload: Empty()) }
            for _ in 0..<(total / 1000) {
                _ = try await client.withConnection { try await jobs.enqueue(batch, on: $0) }
            }
            Self.progress("enqueued \(total) jobs in batches")
            figures["enqueue_batch_jobs_per_s"] = Double(total / 1000 * 1000) / (ContinuousClock.now - start).seconds
            let queued = single + total / 1000 * 1000

            // Claim and complete everything with one processor of `workers` slots.
            let settings = JobSettings(defaultConcurrency: workers, pollInterval: .seconds(1))
            start = ContinuousClock.now
            try await Self.running(Self.processor(jobs, settings, logger), logger: logger) {
                while try await Self.completed(client) < queued { try await Task.sleep(for: .milliseconds(20)) }
            }
            Self.progress("drained the queue in \(ContinuousClock.now - start)")
            figures["claim_complete_jobs_per_s"] = Double(queued) / (ContinuousClock.now - start).seconds

            // Latency from enqueue to start while the queue is not saturated: 2,000 jobs at about 400 per second.
            try await client.query("TRUNCATE jobs", logger: logger)
            try await Self.running(Self.processor(jobs, settings, logger), logger: logger) {
                let paced = ContinuousClock.now
                for index in 0..<2000 {
                    try await jobs.enqueue(try NewJob(Self.noop, payload: Empty()))
                    let due = paced + .microseconds(2500 * (index + 1))
                    if due > ContinuousClock.now { try await Task.sleep(until: due) }
                }
                while try await Self.completed(client) < 2000 { try await Task.sleep(for: .milliseconds(20)) }
            }
            let rows = try await client.query(
                """
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at))::float8,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at))::float8
                FROM jobs WHERE state = 'completed'
                """,
                logger: logger
            ).collect()
            let (p50, p99) = try rows[0].decode((Double, Double).self)
            figures["start_latency_p50_ms"] = p50 * 1000
            figures["start_latency_p99_ms"] = p99 * 1000
            try await client.query("TRUNCATE jobs", logger: logger)
            return figures
        }
        var object = figures.mapValues { ($0 * 10).rounded() / 10 }
        object["jobs"] = Double(total)
        object["workers"] = Double(workers)
        let json = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    static let registry: JobRegistry = {
        var registry = JobRegistry()
        registry.register(Self.noop) { _, _ in }
        return registry
    }()

    /// A new processor for each phase: a processor is one service lifetime, it does not restart.
    static func processor(_ jobs: JobQueue, _ settings: JobSettings, _ logger: Logger) -> JobProcessor {
        JobProcessor(jobs: jobs, registry: Self.registry, queues: ["bench"], settings: settings, logger: logger)
    }

    static func completed(_ client: PostgresClient) async throws -> Int {
        try await client.query("SELECT count(*) FROM jobs WHERE state = 'completed'").collect()[0].decode(Int.self)
    }

    /// Runs the processor while `body` runs, then shuts it down gracefully.
    static func running(_ processor: JobProcessor, logger: Logger, _ body: @Sendable () async throws -> Void) async throws {
        let group = ServiceGroup(configuration: .init(services: [processor], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
