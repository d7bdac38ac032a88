import EvalForgeCore

/// Head sampling by trace id, deterministic across processes: a trace is kept when the low 56 bits of
/// its id fall under `ratio × 2^56` (the randomness bits of W3C trace ids). An incoming parent with
/// `sampled=0` declines the trace instead (when `respectParentSampled`). Errors and slow spans are kept
/// whatever the ratio or the parent when the configuration says so (the local rule), and then
/// `TraceKeeper` keeps the rest of their trace.
struct Sampler: Sendable {
    let threshold: UInt64
    let keepAll: Bool
    let keepErrors: Bool
    let slowNanos: UInt64?
    let respectParent: Bool
    /// Unsampled spans wait in the buffer for a local-rule decision on their trace instead of being
    /// dropped at once: true when a local rule exists and `keepTraceOfKeptSpans` is on.
    let holdsUnsampled: Bool

    init(_ c: EvalForge.Configuration.Sampling) {
        let r = c.ratio.isNaN ? 1 : min(1, max(0, c.ratio))
        keepAll = r >= 1
        // r < 1 here, so the product is below 2^56 and converts exactly.
        threshold = UInt64(r * Double(UInt64(1) << 56))
        keepErrors = c.keepErrors
        slowNanos = c.keepSlowerThan.map(\.saturatingNanoseconds)
        respectParent = c.respectParentSampled
        holdsUnsampled = c.keepTraceOfKeptSpans && (c.keepErrors || c.keepSlowerThan != nil)
    }

    @inline(__always) static func traceRatioKeeps(_ traceID: TraceID, threshold: UInt64) -> Bool {
        (traceID.low & 0x00FF_FFFF_FFFF_FFFF) < threshold
    }

    /// The decision for one ended span: no allocation, no lock.
    @inline(__always) func decide(traceID: TraceID, isError: Bool, durationNanos: UInt64, parentDeclined: Bool = false) -> SamplingDecision {
        if !parentDeclined && (keepAll || Self.traceRatioKeeps(traceID, threshold: threshold)) { return .sampled }
        if keepErrors && isError { return .keptByRule }
        if let slowNanos, durationNanos >= slowNanos { return .keptByRule }
        return .notSampled
    }

    @inline(__always) func keeps(traceID: TraceID, isError: Bool, durationNanos: UInt64, parentDeclined: Bool = false) -> Bool {
        decide(traceID: traceID, isError: isError, durationNanos: durationNanos, parentDeclined: parentDeclined) != .notSampled
    }
}

/// What head sampling and the local rule decided for a span.
enum SamplingDecision: UInt8, Sendable {
    /// Kept by the trace-id ratio (and not declined by the incoming parent).
    case sampled
    /// Not sampled, but kept by the local rule (an error, or slower than `keepSlowerThan`): its trace's
    /// other spans are kept too.
    case keptByRule
    /// Not sampled: exported only when the local rule keeps a span of the same trace.
    case notSampled
}
