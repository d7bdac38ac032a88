import CoreMetrics
import Synchronization

extension EvalForge {
    /// Counters of a pipeline since it started.
    public struct Statistics: Sendable, Hashable {
        /// Spans ended and offered to the buffer.
        public var recorded: Int
        /// Spans dropped by head sampling (unsampled spans held for their trace are counted when dropped).
        public var sampledOut: Int
        /// Spans dropped because the buffer was full.
        public var droppedBufferFull: Int
        /// Spans the collector accepted.
        public var exported: Int
        /// Spans given up on: rejected by the collector or still failing after every retry.
        public var exportFailed: Int
        /// Export requests sent, and how many of them were retries.
        public var exportRequests: Int
        public var exportRetries: Int
        /// Spans waiting for export now: in the buffer, and unsampled spans held at the exporter until
        /// their trace's fate is known (`sampling.keepTraceOfKeptSpans`).
        public var buffered: Int
    }
}

/// Lock-free counters behind `EvalForge.Statistics`.
final class PipelineCounters: Sendable {
    let sampledOut = Atomic<Int>(0)
    /// The part of `sampledOut` dropped when the span ended (not held for its trace): with the buffer's
    /// accepted count and `droppedBufferFull`, it makes `Statistics.recorded`.
    let sampledOutAtEnd = Atomic<Int>(0)
    let droppedBufferFull = Atomic<Int>(0)
    let exported = Atomic<Int>(0)
    let exportFailed = Atomic<Int>(0)
    let exportRequests = Atomic<Int>(0)
    let exportRetries = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)
}

/// Publishes the pipeline's counters through swift-metrics (whatever backend the process bootstrapped),
/// as deltas once per export-loop wake-up — never per span.
final class MetricsPublisher: Sendable {
    private let recorded = Counter(label: "evalforge_sdk_spans_recorded_total")
    private let sampledOut = Counter(label: "evalforge_sdk_spans_sampled_out_total")
    private let dropped = Counter(label: "evalforge_sdk_spans_dropped_total", dimensions: [("reason", "buffer_full")])
    private let exported = Counter(label: "evalforge_sdk_spans_exported_total")
    private let failed = Counter(label: "evalforge_sdk_spans_export_failed_total")
    private let requests = Counter(label: "evalforge_sdk_export_requests_total")
    private let buffered = Gauge(label: "evalforge_sdk_buffered_spans")
    private let last = Mutex(EvalForge.Statistics(recorded: 0, sampledOut: 0, droppedBufferFull: 0, exported: 0, exportFailed: 0, exportRequests: 0, exportRetries: 0, buffered: 0))

    func publish(_ now: EvalForge.Statistics) {
        let before = last.withLock { l -> EvalForge.Statistics in
            defer { l = now }
            return l
        }
        if now.recorded > before.recorded { recorded.increment(by: now.recorded - before.recorded) }
        if now.sampledOut > before.sampledOut { sampledOut.increment(by: now.sampledOut - before.sampledOut) }
        if now.droppedBufferFull > before.droppedBufferFull { dropped.increment(by: now.droppedBufferFull - before.droppedBufferFull) }
        if now.exported > before.exported { exported.increment(by: now.exported - before.exported) }
        if now.exportFailed > before.exportFailed { failed.increment(by: now.exportFailed - before.exportFailed) }
        if now.exportRequests > before.exportRequests { requests.increment(by: now.exportRequests - before.exportRequests) }
        buffered.record(now.buffered)
    }
}
