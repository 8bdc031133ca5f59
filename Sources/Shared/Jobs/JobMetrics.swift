public import CoreMetrics
import Synchronization

/// The job queue's metrics, with OpenTelemetry-style names, exported for Prometheus as:
///
/// - `portal_job_runs_total{queue, kind, outcome}`: finished attempts; outcome is `completed`, `retried`, `dead`,
///   `snoozed`, `released` or `lease_lost`;
/// - `portal_job_duration_seconds{queue, kind}`: how long handlers ran;
/// - `portal_job_start_delay_seconds{queue}`: from when a job was due to when it was claimed;
/// - `portal_job_rescues_total{queue}`: jobs taken back from workers that stopped sending heartbeats;
/// - `portal_jobs{queue, state}`: queue depth, state `available`, `scheduled`, `running` or `dead`;
/// - `portal_job_oldest_available_seconds{queue}`: age of the oldest runnable job.
public struct JobMetrics: Sendable {
    private let factory: any MetricsFactory
    /// Remembers which (queue, state) gauges were reported, so a queue that empties reports 0 instead of its last
    /// value.
    private let reportedQueues = ReportedQueues()

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    func recordRun(queue: String, kind: String, outcome: String, duration: Duration?) {
        Counter(
            label: "portal_job_runs_total", dimensions: [("queue", queue), ("kind", kind), ("outcome", outcome)], factory: self.factory
        )
        .increment()
        if let duration {
            Timer(label: "portal_job_duration_seconds", dimensions: [("queue", queue), ("kind", kind)], factory: self.factory)
                .recordNanoseconds(duration.nanoseconds)
        }
    }

    func recordStart(_ job: ClaimedJob) {
        Timer(label: "portal_job_start_delay_seconds", dimensions: [("queue", job.queue)], factory: self.factory)
            .recordNanoseconds(job.startDelay.nanoseconds)
    }

    func recordRescue(queue: String) {
        Counter(label: "portal_job_rescues_total", dimensions: [("queue", queue)], factory: self.factory).increment()
    }

    /// Reports queue depth. `served` are this process's own queues: they are reported (as 0) even when empty, so
    /// a dashboard shows a quiet queue rather than a missing one.
    func recordDepth(_ reported: [QueueDepth], served: [String] = []) {
        let known = Set(reported.map(\.queue))
        let depths =
            reported
            + served.filter { !known.contains($0) }.map {
                QueueDepth(queue: $0, available: 0, scheduled: 0, running: 0, dead: 0, oldestAvailableSeconds: 0)
            }
        let present = Set(depths.map(\.queue))
        let vanished = self.reportedQueues.state.withLock { reported in
            defer { reported = present }
            return reported.subtracting(present)
        }
        for depth in depths {
            self.gauge(depth.queue, "available").record(depth.available)
            self.gauge(depth.queue, "scheduled").record(depth.scheduled)
            self.gauge(depth.queue, "running").record(depth.running)
            self.gauge(depth.queue, "dead").record(depth.dead)
            Gauge(label: "portal_job_oldest_available_seconds", dimensions: [("queue", depth.queue)], factory: self.factory)
                .record(depth.oldestAvailableSeconds)
        }
        for queue in vanished {
            for state in ["available", "scheduled", "running", "dead"] { self.gauge(queue, state).record(0) }
            Gauge(label: "portal_job_oldest_available_seconds", dimensions: [("queue", queue)], factory: self.factory).record(0)
        }
    }

    private func gauge(_ queue: String, _ state: String) -> Gauge {
        Gauge(label: "portal_jobs", dimensions: [("queue", queue), ("state", state)], factory: self.factory)
    }
}

/// The queues whose depth gauges were last reported (a class, so that the metrics value can be copied).
private final class ReportedQueues: Sendable {
    let state = Mutex<Set<String>>([])
}
