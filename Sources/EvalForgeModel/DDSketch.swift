import Foundation

/// A mergeable quantile sketch with relative-error guarantees (DDSketch): every quantile it reports is
/// within `alpha` (default 1%) of the true value, and two sketches with the same `alpha` merge exactly
/// by adding bucket counts — so latency percentiles merge across collectors and minutes.
///
/// Buckets are a dense array from `offset`; values ≤ `minIndexable` count as zero.
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

    /// Values at or below this are counted as zero (1 ns when recording milliseconds).
    public static let minIndexable = 1e-6
    /// Upper bound on buckets: alpha 1% spans 1e-6…1e12 in about 2,100 buckets.
    public static let maxBuckets = 4096

    public init(alpha: Double = 0.01) {
        self.alpha = alpha
        gamma = (1 + alpha) / (1 - alpha)
        logGamma = Foundation.log(gamma)
    }

    @inline(__always) func index(_ v: Double) -> Int32 {
        Int32(Foundation.ceil(Foundation.log(v) / logGamma))
    }

    public mutating func add(_ value: Double, count n: UInt64 = 1) {
        guard value.isFinite, n > 0 else { return }
        count += n
        sum += value * Double(n)
        if value < min { min = value }
        if value > max { max = value }
        guard value > Self.minIndexable else {
            zeroCount += n
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
        if i < offset {
            let grow = Int(offset - i)
            guard counts.count + grow <= Self.maxBuckets else {
                // Collapse the lowest buckets: precision is lost only at the low end.
                counts[0] += n
                return
            }
            counts.insert(contentsOf: repeatElement(0, count: grow), at: 0)
            offset = i
        } else if Int(i - offset) >= counts.count {
            let grow = Int(i - offset) - counts.count + 1
            guard counts.count + grow <= Self.maxBuckets else {
                counts[counts.count - 1] += n
                return
            }
            counts.append(contentsOf: repeatElement(0, count: grow))
        }
        counts[Int(i - offset)] += n
    }

    /// Adds `other`'s values. Both must have the same alpha.
    public mutating func merge(_ other: DDSketch) {
        precondition(other.alpha == alpha || other.count == 0, "DDSketch alphas differ")
        guard other.count > 0 else { return }
        count += other.count
        sum += other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        zeroCount += other.zeroCount
        for (k, c) in other.counts.enumerated() where c > 0 {
            addToBucket(other.offset + Int32(k), c)
        }
    }

    /// The value at quantile `q` (0...1), within `alpha` relative error; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        if q <= 0 { return min }
        if q >= 1 { return max }
        let rank = UInt64(Foundation.floor(q * Double(count - 1))) + 1
        var seen = zeroCount
        if rank <= seen { return Swift.max(0, min) }
        for (k, c) in counts.enumerated() {
            seen += c
            if seen >= rank {
                let i = Double(offset) + Double(k)
                let v = 2 * Foundation.pow(gamma, i) / (1 + gamma)
                return Swift.min(Swift.max(v, min), max)
            }
        }
        return max
    }

    /// Rebuilds a sketch from its wire form; nil when the fields are inconsistent.
    public init?(alpha: Double, count: UInt64, sum: Double, min: Double, max: Double, zeroCount: UInt64, offset: Int32, counts: [UInt64]) {
        guard alpha > 0, alpha < 1, counts.count <= Self.maxBuckets else { return nil }
        let total = counts.reduce(zeroCount) { $0 &+ $1 }
        guard total == count else { return nil }
        self.init(alpha: alpha)
        self.count = count
        self.sum = sum
        self.min = count == 0 ? .infinity : min
        self.max = count == 0 ? -.infinity : max
        self.zeroCount = zeroCount
        self.offset = offset
        self.counts = counts
    }
}
