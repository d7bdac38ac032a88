import EvalForgeCore
import Synchronization

/// Trace and span ids without a syscall per id: a process-wide counter pushed through a bijective
/// 64-bit mixer keyed by a random seed. Ids are unique within the process and look random
/// across processes (so trace-id-ratio sampling stays uniform).
enum IDGenerator {
    private static let counter = Atomic<UInt64>(0)
    private static let seed: (UInt64, UInt64) = (UInt64.random(in: 1...UInt64.max), UInt64.random(in: 1...UInt64.max))

    @inline(__always) private static func mix(_ x: UInt64) -> UInt64 {
        // SplitMix64 finalizer: a bijection, so distinct inputs give distinct outputs.
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) private static func next() -> UInt64 {
        counter.wrappingAdd(1, ordering: .relaxed).newValue
    }

    @inline(__always) private static func spanID(_ n: UInt64) -> UInt64 {
        let id = mix(n ^ seed.0)
        return id == 0 ? 1 : id
    }

    @inline(__always) private static func traceID(_ n: UInt64) -> TraceID {
        TraceID(high: mix(n ^ seed.1) | 1, low: mix(n ^ seed.0 ^ 0x5555_5555_5555_5555))
    }

    @inline(__always) static func spanID() -> UInt64 { spanID(next()) }

    @inline(__always) static func traceID() -> TraceID { traceID(next()) }

    /// A new trace's id and its root span's id from one counter step (one atomic instead of two on
    /// the recording path). Span ids stay unique: each comes from its own counter value through the
    /// same bijection; trace ids likewise (their low half is a bijection of the counter).
    @inline(__always) static func rootIDs() -> (trace: TraceID, span: UInt64) {
        let n = next()
        return (traceID(n), spanID(n))
    }
}
