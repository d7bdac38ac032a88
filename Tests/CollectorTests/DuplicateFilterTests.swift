@testable import Collector
import EvalForgeCore
import Testing

@Suite("Deduplication state")
struct DuplicateFilterTests {
    @Test("FingerprintSet answers like Set<UInt64> through growth, zero and clearing")
    func fingerprintSetMatchesSet() {
        var rng = SystemRandomNumberGenerator()
        var set = FingerprintSet()
        var reference = Set<UInt64>()
        // Small values collide in the low bits (same slot), random ones spread; 0 and 1 share a key.
        let values: [UInt64] = (0..<20_000).map { i in i % 3 == 0 ? UInt64(i % 4096) << 20 : rng.next() } + [0, 1, .max]
        for v in values {
            let expected = reference.insert(v == 0 ? 1 : v).inserted
            #expect(set.insert(v) == expected)
        }
        #expect(set.count == reference.count)
        for v in values { #expect(set.contains(v)) }
        for _ in 0..<20_000 {
            let v = rng.next()
            #expect(set.contains(v) == reference.contains(v))
        }
        set.removeAll()
        #expect(set.count == 0 && !set.contains(values[5]) && !set.contains(0))
        #expect(set.insert(values[5]) && set.contains(values[5]))
    }

    @Test("a clock reading older than the generation's start (read before the caller's lock) does not rotate again")
    func olderClockReadingAfterRotation() {
        let second: UInt64 = 1_000_000_000
        var d = DuplicateFilter(window: .seconds(600), maxIDs: 32)  // 16 ids per generation
        let ids = (0..<40).map { DuplicateFilter.fingerprint(TraceID(high: 7, low: 9), UInt64($0 + 1)) }
        for id in ids[0..<16] { d.insert(id, nowNanos: 100 * second) }
        // The 17th fills the count: a rotation at t = 101 s; the first 16 move to the previous generation.
        d.insert(ids[16], nowNanos: 101 * second)
        // Another request read the clock before that one (t = 100.5 s) and inserts after it.
        d.insert(ids[17], nowNanos: 100 * second + second / 2)
        for id in ids[0..<18] { #expect(d.contains(id)) }
    }

    @Test("an id is a duplicate within the window and forgotten after it; memory stays bounded")
    func windowAndBound() {
        let second: UInt64 = 1_000_000_000
        var d = DuplicateFilter(window: .seconds(10), maxIDs: 1_000)
        let a = DuplicateFilter.fingerprint(TraceID(high: 1, low: 2), 3)
        #expect(!d.contains(a))
        d.insert(a, nowNanos: 1 * second)
        #expect(d.contains(a))
        // Half a window later the generation rotates: still remembered (previous generation)...
        d.insert(DuplicateFilter.fingerprint(TraceID(high: 1, low: 2), 4), nowNanos: 7 * second)
        #expect(d.contains(a))
        // ...and forgotten after the next rotation.
        d.insert(DuplicateFilter.fingerprint(TraceID(high: 1, low: 2), 5), nowNanos: 13 * second)
        #expect(!d.contains(a))
        // A flood rotates early: at most maxIDs fingerprints are held, the newest ones.
        for i in 0..<5_000 { d.insert(DuplicateFilter.fingerprint(TraceID(high: 9, low: UInt64(i)), 1), nowNanos: 14 * second) }
        #expect(d.contains(DuplicateFilter.fingerprint(TraceID(high: 9, low: 4_999), 1)))
        #expect(!d.contains(DuplicateFilter.fingerprint(TraceID(high: 9, low: 0), 1)))
    }
}
