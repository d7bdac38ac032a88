import EvalForgeCore

/// Head sampling by trace id, deterministic across processes: a trace is kept when the low 56 bits of
/// its id fall under `ratio × 2^56` (the randomness bits of W3C trace ids). An incoming parent with
/// `sampled=0` declines the trace instead (when `respectParentSampled`). Errors and slow spans are kept
/// whatever the ratio or the parent when the configuration says so.
struct Sampler: Sendable {
    let threshold: UInt64
    let keepAll: Bool
    let keepErrors: Bool
    let slowNanos: UInt64?
    let respectParent: Bool

    init(_ c: EvalForge.Configuration.Sampling) {
        let r = c.ratio.isNaN ? 1 : min(1, max(0, c.ratio))
        keepAll = r >= 1
        // r < 1 here, so the product is below 2^56 and converts exactly.
        threshold = UInt64(r * Double(UInt64(1) << 56))
        keepErrors = c.keepErrors
        slowNanos = c.keepSlowerThan.map(\.saturatingNanoseconds)
        respectParent = c.respectParentSampled
    }

    @inline(__always) static func traceRatioKeeps(_ traceID: TraceID, threshold: UInt64) -> Bool {
        (traceID.low & 0x00FF_FFFF_FFFF_FFFF) < threshold
    }

    @inline(__always) func keeps(traceID: TraceID, isError: Bool, durationNanos: UInt64, parentDeclined: Bool = false) -> Bool {
        if keepAll && !parentDeclined { return true }
        if keepErrors && isError { return true }
        if let slowNanos, durationNanos >= slowNanos { return true }
        return !parentDeclined && Self.traceRatioKeeps(traceID, threshold: threshold)
    }
}
