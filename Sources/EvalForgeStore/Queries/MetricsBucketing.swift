import EvalForgeModel

/// Merges per-minute rollups into interval buckets per group; shared by the stores that aggregate
/// rollups in process.
public struct MetricsBucketing: Sendable {
    public let query: MetricsQuery
    private var table: [BucketKey: RollupValue] = [:]

    private struct BucketKey: Hashable, Sendable {
        var bucket: Int64
        var group: String
    }

    public init(query: MetricsQuery) {
        self.query = query
    }

    /// Checks the interval (a positive multiple of 60 s), the range (`from` < `to`, at most 400 days)
    /// and the number of buckets (at most 10,000).
    public static func validate(_ q: MetricsQuery) throws {
        // At most 400 days, so aligning a bucket (`unix % i + i`) cannot overflow.
        guard q.intervalSeconds >= 60, q.intervalSeconds % 60 == 0, q.intervalSeconds <= 400 * 86_400 else {
            throw StoreError.invalidArgument("interval must be a positive multiple of 60 seconds up to 400 days, got \(q.intervalSeconds)")
        }
        // Within ±9.2e9 s, so the stores' `* 1_000_000_000` to nanoseconds cannot overflow.
        guard (-9_200_000_000...9_200_000_000).contains(q.fromUnix), (-9_200_000_000...9_200_000_000).contains(q.toUnix) else {
            throw StoreError.invalidArgument("time range outside 1678…2261 (Int64 nanoseconds): \(q.fromUnix)…\(q.toUnix)")
        }
        guard q.fromUnix < q.toUnix else { throw StoreError.invalidArgument("time range is empty: from must be before to") }
        guard q.toUnix - q.fromUnix <= 400 * 86_400 else { throw StoreError.invalidArgument("time range longer than 400 days") }
        guard (q.toUnix - q.fromUnix) / q.intervalSeconds <= 10_000 else {
            throw StoreError.invalidArgument("too many buckets: choose an interval of at least \((q.toUnix - q.fromUnix) / 10_000) seconds")
        }
    }

    /// Start of the bucket holding `unix`, aligned to the interval since the epoch.
    public func bucket(of unix: Int64) -> Int64 {
        let i = query.intervalSeconds
        return unix - ((unix % i) + i) % i
    }

    public mutating func add(minuteUnix: Int64, group: String, value: RollupValue) {
        table[BucketKey(bucket: bucket(of: minuteUnix), group: group), default: RollupValue()].merge(value)
    }

    /// Adds every bucket of `other` (same query).
    public mutating func merge(_ other: MetricsBucketing) {
        for (k, v) in other.table { table[k, default: RollupValue()].merge(v) }
    }

    /// Buckets ordered by time, then group.
    public func buckets() -> [MetricsBucket] {
        table.map { MetricsBucket(bucketUnix: $0.key.bucket, group: $0.key.group, value: $0.value) }
            .sorted { ($0.bucketUnix, $0.group) < ($1.bucketUnix, $1.group) }
    }
}
