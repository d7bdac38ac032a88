import EvalForgeCore

/// Drops spans whose (trace id, span id) was seen within the window, in bounded memory.
///
/// Two generations of 64-bit fingerprints: an id is a duplicate if either generation holds it; the
/// older generation is discarded when the current one is older than half the window or holds
/// `maxIDs / 2` ids. So an id is remembered for between half the window and the whole window
/// (less under a flood that fills a generation early), and memory never exceeds `maxIDs`
/// fingerprints: 8-byte slots in power-of-two tables at most 3/4 full, so 10.7–21.3 bytes per id
/// at the bound (4,000,000 ids: 2 × 4,194,304 slots = 64 MiB).
/// Fingerprints are a 64-bit mix of the 192-bit id; two different spans collide with probability
/// about n/2^64 — one in 10^12 at ten million remembered ids.
///
/// Not thread-safe: the pipeline calls it from its single ingest critical section.
struct DuplicateFilter {
    private var current = FingerprintSet()
    private var previous = FingerprintSet()
    private var generationStartNanos: UInt64 = 0
    let halfWindowNanos: UInt64
    let maxPerGeneration: Int

    init(window: Duration, maxIDs: Int) {
        let (s, a) = window.components
        halfWindowNanos = UInt64(max(1, s.multipliedSaturated(by: 1_000_000_000).addingSaturated(a / 1_000_000_000))) / 2
        maxPerGeneration = max(16, maxIDs / 2)
        current = FingerprintSet(minimumCapacity: min(maxPerGeneration, 1 << 16))
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

    /// Remembers a fingerprint. `nowNanos` may be a little older than a time already seen (callers
    /// read the clock before taking their lock): such a time never starts a generation.
    mutating func insert(_ fp: UInt64, nowNanos: UInt64) {
        if current.count >= maxPerGeneration {
            rotate(max(nowNanos, generationStartNanos))
        } else if nowNanos > generationStartNanos, nowNanos - generationStartNanos >= halfWindowNanos {
            rotate(nowNanos)
        }
        _ = current.insert(fp)
    }

    private mutating func rotate(_ now: UInt64) {
        swap(&previous, &current)
        current.removeAll()
        generationStartNanos = now
    }
}

/// A set of 64-bit fingerprints: open addressing with linear probing over a power-of-two table,
/// indexed by the fingerprint's own bits (they are already a strong mix, so no hashing), grown
/// by doubling past 3/4 full. Zero marks an empty slot, so the fingerprint 0 is stored as 1 (one
/// more collision in 2^64).
struct FingerprintSet {
    private var slots: [UInt64]
    private var mask: Int
    private(set) var count = 0

    init(minimumCapacity: Int = 16) {
        var size = 16
        while size * 3 / 4 < minimumCapacity { size <<= 1 }
        slots = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always) private static func key(_ fp: UInt64) -> UInt64 { fp == 0 ? 1 : fp }

    func contains(_ fp: UInt64) -> Bool {
        let k = Self.key(fp)
        return slots.withUnsafeBufferPointer { s in
            var i = Int(truncatingIfNeeded: k) & mask
            while true {
                let v = s[i]
                if v == k { return true }
                if v == 0 { return false }
                i = (i + 1) & mask
            }
        }
    }

    /// Adds `fp`; false when it was already there.
    @discardableResult
    mutating func insert(_ fp: UInt64) -> Bool {
        if (count + 1) * 4 > slots.count * 3 { grow() }
        let k = Self.key(fp)
        let m = mask
        let added = slots.withUnsafeMutableBufferPointer { s -> Bool in
            var i = Int(truncatingIfNeeded: k) & m
            while true {
                let v = s[i]
                if v == k { return false }
                if v == 0 {
                    s[i] = k
                    return true
                }
                i = (i + 1) & m
            }
        }
        if added { count += 1 }
        return added
    }

    /// Empties the set, keeping its table.
    mutating func removeAll() {
        slots.withUnsafeMutableBufferPointer { s in s.update(repeating: 0) }
        count = 0
    }

    private mutating func grow() {
        let old = slots
        slots = [UInt64](repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for k in old where k != 0 { insert(k) }
    }
}

extension UInt64 {
    @inline(__always) func rotateLeft(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
