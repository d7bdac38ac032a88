import Synchronization

extension EvalForge {
    /// Counters of a pipeline since it started.
    public struct Statistics: Sendable, Hashable {
        /// Spans ended and offered to the buffer.
        public var recorded: Int
        /// Spans dropped by head sampling.
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
        /// Spans waiting in the buffer now.
        public var buffered: Int
    }
}

/// Lock-free counters behind `EvalForge.Statistics`.
final class PipelineCounters: Sendable {
    let recorded = Atomic<Int>(0)
    let sampledOut = Atomic<Int>(0)
    let droppedBufferFull = Atomic<Int>(0)
    let exported = Atomic<Int>(0)
    let exportFailed = Atomic<Int>(0)
    let exportRequests = Atomic<Int>(0)
    let exportRetries = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)
}
