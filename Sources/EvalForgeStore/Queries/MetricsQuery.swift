import EvalForgeModel

/// What a metrics breakdown groups by.
public enum MetricsDimension: String, Sendable, Hashable, Codable, CaseIterable {
    case none, model, provider, service, user
}

/// A time series over rollups: buckets of `intervalSeconds` (a multiple of 60) between `from` and
/// `to` (Unix seconds, `from` inclusive, `to` exclusive), one series per group.
///
/// Every dimension but `.user` reads the exact rollups; `.user` reads stored spans (rollups carry no
/// user), so under tail sampling it covers the kept traces only.
public struct MetricsQuery: Sendable, Hashable, Codable {
    public var projectID: String
    public var fromUnix: Int64
    public var toUnix: Int64
    public var intervalSeconds: Int64
    public var groupBy: MetricsDimension
    public var service: String?
    public var provider: String?
    public var model: String?

    public init(projectID: String, fromUnix: Int64, toUnix: Int64, intervalSeconds: Int64, groupBy: MetricsDimension = .none, service: String? = nil, provider: String? = nil, model: String? = nil) {
        self.projectID = projectID
        self.fromUnix = fromUnix
        self.toUnix = toUnix
        self.intervalSeconds = intervalSeconds
        self.groupBy = groupBy
        self.service = service
        self.provider = provider
        self.model = model
    }
}

/// One bucket of one group: the merged rollup values (counts, tokens, cost and the latency and
/// time-to-first-token sketches, from which percentiles are read).
public struct MetricsBucket: Sendable, Equatable {
    /// Start of the bucket, Unix seconds, aligned to the interval.
    public var bucketUnix: Int64
    /// Value of the grouping dimension ("" for `.none`).
    public var group: String
    public var value: RollupValue

    public init(bucketUnix: Int64, group: String, value: RollupValue) {
        self.bucketUnix = bucketUnix
        self.group = group
        self.value = value
    }
}
