import EvalForgeCore
import Metrics
import Synchronization

/// The collector's counters, exported through swift-metrics (Prometheus in the executable) and
/// readable directly for tests and /healthz.
final class CollectorMetrics: Sendable {
    let spansReceived: Counter
    let spansRejected: Counter
    let requestsRejected: Counter
    let duplicates: Counter
    let sampledIn: Counter
    let sampledOut: Counter
    let batchesForwarded: Counter
    let forwardErrors: Counter
    let forwardLatency: Metrics.Timer
    let queueDepth: Gauge
    let queueBytes: Gauge
    let pendingTraces: Gauge
    let deadLetters: Counter
    /// Entries that could not be written to the dead-letter file (disk full, permissions): a
    /// forwarded batch stays held; a WAL record or gap is only in the log line.
    let deadLetterWriteFailures: Counter
    let forwardBlocked: Counter
    let forwardDegraded: Gauge
    let walMissingRecords: Counter
    /// Deliveries moved to another backend after a transport error or a 5xx.
    let forwardFailovers: Counter
    /// Requests refused before their body was read: no or a bad key, another project, Host/Origin
    /// (401/403), or the key could not be verified (503).
    let requestsRefusedAuth: Counter

    let received = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let duplicateCount = Atomic<Int>(0)
    let keptCount = Atomic<Int>(0)
    let droppedCount = Atomic<Int>(0)
    let forwardedBatches = Atomic<Int>(0)
    let forwardedSpans = Atomic<Int>(0)
    let forwardFailures = Atomic<Int>(0)
    let deadLetterCount = Atomic<Int>(0)
    let walMissingCount = Atomic<Int>(0)
    let failoverCount = Atomic<Int>(0)

    init(factory: any MetricsFactory) {
        spansReceived = Counter(label: "evalforge_collector_spans_received_total", factory: factory)
        spansRejected = Counter(label: "evalforge_collector_spans_rejected_total", factory: factory)
        requestsRejected = Counter(label: "evalforge_collector_requests_rejected_total", factory: factory)
        requestsRefusedAuth = Counter(label: "evalforge_collector_requests_refused_auth_total", factory: factory)
        duplicates = Counter(label: "evalforge_collector_spans_duplicate_total", factory: factory)
        sampledIn = Counter(label: "evalforge_collector_spans_sampled_in_total", factory: factory)
        sampledOut = Counter(label: "evalforge_collector_spans_sampled_out_total", factory: factory)
        batchesForwarded = Counter(label: "evalforge_collector_batches_forwarded_total", factory: factory)
        forwardErrors = Counter(label: "evalforge_collector_forward_errors_total", factory: factory)
        forwardLatency = Metrics.Timer(label: "evalforge_collector_forward_latency_seconds", factory: factory)
        queueDepth = Gauge(label: "evalforge_collector_queue_depth_records", factory: factory)
        queueBytes = Gauge(label: "evalforge_collector_queue_bytes", factory: factory)
        pendingTraces = Gauge(label: "evalforge_collector_sampling_pending_traces", factory: factory)
        deadLetters = Counter(label: "evalforge_collector_dead_letters_total", factory: factory)
        deadLetterWriteFailures = Counter(label: "evalforge_collector_dead_letter_write_failures_total", factory: factory)
        forwardBlocked = Counter(label: "evalforge_collector_forward_refused_total", factory: factory)
        forwardDegraded = Gauge(label: "evalforge_collector_forward_degraded", factory: factory)
        walMissingRecords = Counter(label: "evalforge_collector_wal_missing_records_total", factory: factory)
        forwardFailovers = Counter(label: "evalforge_collector_forward_failovers_total", factory: factory)
    }
}

/// A snapshot of the collector's counters.
public struct CollectorStatistics: Sendable, Hashable, Codable {
    public var spansReceived: Int
    public var spansRejected: Int
    public var duplicatesDropped: Int
    public var sampledIn: Int
    public var sampledOut: Int
    public var batchesForwarded: Int
    public var spansForwarded: Int
    public var forwardFailures: Int
    public var queueDepthRecords: Int
    public var queueBytes: Int
    public var pendingTraces: Int
    /// Entries written to the dead-letter file beside the WAL since start (unreadable WAL records,
    /// damaged WAL bytes, sequence gaps, batches the backend proved malformed).
    public var deadLetters: Int = 0
    /// WAL records found missing (sequence gaps) at the last replay.
    public var walMissingRecords: Int = 0
    /// "ok", or "degraded" while forwarding is held: the backend refuses batches (401, 403, 413,
    /// other permanent answers) or cannot be reached; nothing is released meanwhile.
    public var status: String = "ok"
    /// Why forwarding is degraded (the backend's answer and what is held), nil when ok.
    public var degradedReason: String?
    /// False while the WAL is full and spans are refused with 503 (`/readyz` then answers 503).
    public var ready: Bool = true
    /// Why not ready, nil when ready.
    public var notReadyReason: String?
    /// Deliveries moved to another backend after a transport error or a 5xx.
    public var failovers: Int = 0
    /// Each configured backend and whether batches go to it (`BackendPool`).
    public var backends: [BackendStatus] = []
    /// This build (`EvalForgeVersion`).
    public var version: String = EvalForgeVersion.release
    /// The formats this collector writes: `forward_protocol` (the batches it sends) and
    /// `queue_format` (its WAL and outbox records).
    public var schema: [String: Int] = ["forward_protocol": EvalForgeVersion.forwardProtocol, "queue_format": EvalForgeVersion.collectorQueueFormat]
}
