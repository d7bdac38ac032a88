import EvalForgeCore

/// Head sampling by trace id, deterministic across processes: a trace is kept when the low 56 bits of
/// its id fall under `ratio × 2^56` (the randomness bits of W3C trace ids). Errors and slow spans are
/// kept whatever the ratio when the configuration says so.
struct Sampler: Sendable {
    let threshold: UInt64
    let keepAll: Bool
    let keepErrors: Bool
    let slowNanos: UInt64?

    init(_ c: EvalForge.Configuration.Sampling) {
        let r = min(1, max(0, c.ratio))
        keepAll = r >= 1
        threshold = UInt64(r * Double(UInt64(1) << 56))
        keepErrors = c.keepErrors
        slowNanos = c.keepSlowerThan.map { d in
            let (s, a) = d.components
            return UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, a) / 1_000_000_000)
        }
    }

    @inline(__always) static func traceRatioKeeps(_ traceID: TraceID, threshold: UInt64) -> Bool {
        (traceID.low & 0x00FF_FFFF_FFFF_FFFF) < threshold
    }

    @inline(__always) func keeps(traceID: TraceID, isError: Bool, durationNanos: UInt64) -> Bool {
        if keepAll { return true }
        if keepErrors && isError { return true }
        if let slowNanos, durationNanos >= slowNanos { return true }
        return Self.traceRatioKeeps(traceID, threshold: threshold)
    }
}
