import EvalForgeCore
import Foundation

/// A mergeable quantile sketch with relative-error guarantees (DDSketch): every quantile it reports is
/// within `alpha` (default 1%) of the true value, and two sketches with the same `alpha` merge exactly
/// by adding bucket counts — so latency percentiles merge across collectors and minutes.
///
/// Buckets are a dense array from `offset`; values ≤ `minIndexable` count as zero. Nothing a sketch
/// is given traps: values are clamped into `0...maxValue`, counts saturate, and merging a sketch
/// with another alpha is refused (`merge` returns false) — sketches from outside are validated when
/// decoded (`RollupCoding.decodeSketch`), so a mismatch is reported there as a 4xx.
public struct DDSketch: Sendable, Equatable {
    public let alpha: Double
    let gamma: Double
    let logGamma: Double
    public private(set) var count: UInt64 = 0
    public private(set) var sum: Double = 0
    public private(set) var min: Double = .infinity
    public private(set) var max: Double = -.infinity
    public private(set) var zeroCount: UInt64 = 0
    public private(set) var offset: Int32 = 0
    public private(set) var counts: [UInt64] = []

    /// The alpha every EvalForge sketch uses (collector, backend and stores must agree to merge).
    public static let defaultAlpha = 0.01
    /// Values at or below this are counted as zero (1 ns when recording milliseconds).
    public static let minIndexable = 1e-6
    /// Values above this are recorded as this (about 31.7 years in milliseconds; a span's duration
    /// cannot exceed the Int64-nanosecond range, 2.9e5 years, but nothing useful lies beyond this).
    /// Keeps `sum` finite: `maxValue` × `UInt64.max` is about 1.8e34.
    public static let maxValue = 1e12
    /// Upper bound on buckets: alpha 1% spans 1e-6…1e12 in about 2,100 buckets.
    public static let maxBuckets = 4096
    /// Bucket indices a decoded sketch may use: alpha 1% puts 1e-6 at −691 and 1e12 at 1,382.
    public static let indexRange: ClosedRange<Int32> = -8192...8192

    /// A sketch with `alpha` (clamped into 0.0001…0.5, where the index arithmetic is safe;
    /// non-finite alphas give the default).
    public init(alpha: Double = DDSketch.defaultAlpha) {
        let a = alpha.isFinite ? Swift.min(Swift.max(alpha, 0.0001), 0.5) : Self.defaultAlpha
        self.alpha = a
        gamma = (1 + a) / (1 - a)
        logGamma = Foundation.log(gamma)
    }

    @inline(__always) func index(_ v: Double) -> Int32 {
        // v is within minIndexable…maxValue, so the index is within a few thousand of zero.
        let i = Foundation.ceil(Foundation.log(v) / logGamma)
        return i.clampedInteger(Int32.self) ?? 0
    }

    /// Records `value` `n` times. NaN is ignored; negatives count as zero; values above `maxValue`
    /// as `maxValue`.
    public mutating func add(_ value: Double, count n: UInt64 = 1) {
        guard !value.isNaN, n > 0 else { return }
        let value = Swift.min(Swift.max(value, 0), Self.maxValue)
        count.addSaturating(n)
        sum += value * Double(n)
        if value < min { min = value }
        if value > max { max = value }
        guard value > Self.minIndexable else {
            zeroCount.addSaturating(n)
            return
        }
        addToBucket(index(value), n)
    }

    private mutating func addToBucket(_ i: Int32, _ n: UInt64) {
        if counts.isEmpty {
            offset = i
            counts = [n]
            return
        }
        let rel = Int(i) - Int(offset)
        if rel < 0 {
            let grow = -rel
            guard counts.count + grow <= Self.maxBuckets else {
                // Collapse the lowest buckets: precision is lost only at the low end.
                counts[0].addSaturating(n)
                return
            }
            counts.insert(contentsOf: repeatElement(0, count: grow), at: 0)
            offset = i
        } else if rel >= counts.count {
            let grow = rel - counts.count + 1
            guard counts.count + grow <= Self.maxBuckets else {
                counts[counts.count - 1].addSaturating(n)
                return
            }
            counts.append(contentsOf: repeatElement(0, count: grow))
        }
        counts[Int(i) - Int(offset)].addSaturating(n)
    }

    /// Adds `other`'s values. Returns false, changing nothing, when `other` has values and another
    /// alpha (its buckets mean other ranges); counts saturate.
    @discardableResult
    public mutating func merge(_ other: DDSketch) -> Bool {
        guard other.count > 0 else { return true }
        guard other.alpha == alpha else { return false }
        count.addSaturating(other.count)
        sum = Swift.min(sum + other.sum, .greatestFiniteMagnitude)
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        zeroCount.addSaturating(other.zeroCount)
        for (k, c) in other.counts.enumerated() where c > 0 {
            let i = Int(other.offset) + k
            addToBucket(Int32(clamping: i), c)
        }
        return true
    }

    /// The value at quantile `q` (0...1), within `alpha` relative error; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0, !q.isNaN else { return nil }
        if q <= 0 { return min }
        if q >= 1 { return max }
        let rank = (q * Double(count - 1)).rounded(.down).clampedInteger(UInt64.self).map { $0.addingSaturated(1) } ?? 1
        var seen = zeroCount
        if rank <= seen { return Swift.max(0, min) }
        for (k, c) in counts.enumerated() {
            seen.addSaturating(c)
            if seen >= rank {
                let i = Double(offset) + Double(k)
                let v = 2 * Foundation.pow(gamma, i) / (1 + gamma)
                return Swift.min(Swift.max(v, min), max)
            }
        }
        return max
    }

    /// Rebuilds a sketch from its stored or wire form; nil when the fields are inconsistent or out
    /// of range (see `validate` for the reason).
    public init?(alpha: Double, count: UInt64, sum: Double, min: Double, max: Double, zeroCount: UInt64, offset: Int32, counts: [UInt64]) {
        guard Self.problem(alpha: alpha, count: count, sum: sum, min: min, max: max, zeroCount: zeroCount, offset: offset, counts: counts) == nil else { return nil }
        self.init(unchecked: alpha, count: count, sum: sum, min: min, max: max, zeroCount: zeroCount, offset: offset, counts: counts)
    }

    package init(unchecked alpha: Double, count: UInt64, sum: Double, min: Double, max: Double, zeroCount: UInt64, offset: Int32, counts: [UInt64]) {
        self.init(alpha: alpha)
        self.count = count
        self.sum = count == 0 ? 0 : sum
        self.min = count == 0 ? .infinity : min
        self.max = count == 0 ? -.infinity : max
        self.zeroCount = zeroCount
        self.offset = offset
        self.counts = counts
    }

    /// What is wrong with these sketch fields (the field's name and why), nil when they form a
    /// sketch this build can merge: alpha equal to `defaultAlpha`, at most `maxBuckets` buckets
    /// within `indexRange`, bucket and zero counts adding up to `count` without overflow, finite
    /// sum, min and max with min ≤ max.
    public static func problem(alpha: Double, count: UInt64, sum: Double, min: Double, max: Double, zeroCount: UInt64, offset: Int32, counts: [UInt64]) -> String? {
        guard alpha == defaultAlpha else { return "alpha \(alpha) differs from this build's \(defaultAlpha) (sketches with different alphas cannot be merged)" }
        guard counts.count <= maxBuckets else { return "counts has \(counts.count) buckets, more than \(maxBuckets)" }
        guard indexRange.contains(offset), Int(offset) + counts.count <= Int(indexRange.upperBound) + 1 else {
            return "offset \(offset) with \(counts.count) buckets is outside \(indexRange.lowerBound)…\(indexRange.upperBound)"
        }
        var total = zeroCount
        for c in counts {
            let (t, overflow) = total.addingReportingOverflow(c)
            guard !overflow else { return "counts overflow a 64-bit total" }
            total = t
        }
        guard total == count else { return "count \(count) differs from zero_count plus bucket counts (\(total))" }
        guard count > 0 else { return nil }
        guard sum.isFinite else { return "sum \(sum) is not finite" }
        guard min.isFinite else { return "min \(min) is not finite" }
        guard max.isFinite, max >= min else { return "max \(max) is not a finite number at least min (\(min))" }
        return nil
    }
}
