import EvalForgeCore

/// Drops spans whose (trace id, span id) was seen within the window, in bounded memory.
///
/// Two generations of 64-bit fingerprints: an id is a duplicate if either generation holds it; the
/// older generation is discarded when the current one is older than half the window or holds
/// `maxIDs / 2` ids. So an id is remembered for between half the window and the whole window
/// (less under a flood that fills a generation early), and memory never exceeds `maxIDs`
/// fingerprints: about 12 bytes each (8-byte key in a hash table kept under 3/4 full).
/// Fingerprints are a 64-bit mix of the 192-bit id; two different spans collide with probability
/// about n/2^64 — one in 10^12 at ten million remembered ids.
///
/// Not thread-safe: the pipeline calls it from its single ingest critical section.
struct DuplicateFilter {
    private var current: Set<UInt64> = []
    private var previous: Set<UInt64> = []
    private var generationStartNanos: UInt64 = 0
    let halfWindowNanos: UInt64
    let maxPerGeneration: Int

    init(window: Duration, maxIDs: Int) {
        let (s, a) = window.components
        halfWindowNanos = UInt64(max(1, s * 1_000_000_000 + a / 1_000_000_000)) / 2
        maxPerGeneration = max(16, maxIDs / 2)
        current.reserveCapacity(min(maxPerGeneration, 1 << 16))
    }

    @inline(__always) static func fingerprint(_ traceID: TraceID, _ spanID: UInt64) -> UInt64 {
        var z = traceID.high &* 0x9E37_79B9_7F4A_7C15 ^ traceID.low.rotateLeft(29) ^ spanID &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True when the fingerprint was seen within the window.
    func contains(_ fp: UInt64) -> Bool {
        current.contains(fp) || previous.contains(fp)
    }

    /// Remembers a fingerprint.
    mutating func insert(_ fp: UInt64, nowNanos: UInt64) {
        if nowNanos &- generationStartNanos >= halfWindowNanos || current.count >= maxPerGeneration {
            rotate(nowNanos)
        }
        current.insert(fp)
    }


    private mutating func rotate(_ now: UInt64) {
        swap(&previous, &current)
        current.removeAll(keepingCapacity: true)
        generationStartNanos = now
    }
}

extension UInt64 {
    @inline(__always) func rotateLeft(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
