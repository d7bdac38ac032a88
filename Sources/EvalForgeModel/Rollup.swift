/// The grouping of a rollup row: one minute × project × service × provider × model × status.
public struct RollupKey: Hashable, Sendable {
    public var minuteUnix: Int64
    public var project: String
    public var service: String
    public var provider: String
    public var model: String
    public var isError: Bool

    public init(minuteUnix: Int64, project: String, service: String, provider: String, model: String, isError: Bool) {
        self.minuteUnix = minuteUnix
        self.project = project
        self.service = service
        self.provider = provider
        self.model = model
        self.isError = isError
    }

    public init(_ f: SpanFacts) {
        self.init(
            minuteUnix: Int64(f.startUnixNanos / 1_000_000_000) / 60 * 60,
            project: f.project, service: f.service, provider: f.provider, model: f.model, isError: f.isError)
    }
}

/// Exact sums and mergeable latency / TTFT sketches for one `RollupKey`.
public struct RollupValue: Sendable, Equatable {
    public var requests: UInt64 = 0
    public var errors: UInt64 = 0
    public var inputTokens: UInt64 = 0
    public var outputTokens: UInt64 = 0
    public var cacheReadTokens: UInt64 = 0
    public var cacheCreationTokens: UInt64 = 0
    public var reasoningTokens: UInt64 = 0
    public var costUSD: Double = 0
    public var costUnknownRequests: UInt64 = 0
    public var latencyMs = DDSketch()
    public var ttftMs = DDSketch()

    public init() {}

    public mutating func add(_ f: SpanFacts) {
        requests += 1
        if f.isError { errors += 1 }
        inputTokens += UInt64(max(0, f.usage.input ?? 0))
        outputTokens += UInt64(max(0, f.usage.output ?? 0))
        cacheReadTokens += UInt64(max(0, f.usage.cacheRead ?? 0))
        cacheCreationTokens += UInt64(max(0, f.usage.cacheCreation ?? 0))
        reasoningTokens += UInt64(max(0, f.usage.reasoning ?? 0))
        if let c = f.costUSD { costUSD += c } else { costUnknownRequests += 1 }
        latencyMs.add(Double(f.durationNanos) / 1e6)
        if let t = f.timeToFirstChunkSeconds { ttftMs.add(t * 1000) }
    }

    public mutating func merge(_ o: RollupValue) {
        requests += o.requests
        errors += o.errors
        inputTokens += o.inputTokens
        outputTokens += o.outputTokens
        cacheReadTokens += o.cacheReadTokens
        cacheCreationTokens += o.cacheCreationTokens
        reasoningTokens += o.reasoningTokens
        costUSD += o.costUSD
        costUnknownRequests += o.costUnknownRequests
        latencyMs.merge(o.latencyMs)
        ttftMs.merge(o.ttftMs)
    }
}

/// Rollups of a set of spans. Only model calls (`SpanFacts.isLLMCall`) are counted as requests.
public struct RollupTable: Sendable, Equatable {
    public private(set) var rows: [RollupKey: RollupValue] = [:]
    public init() {}

    public mutating func add(_ f: SpanFacts) {
        guard f.isLLMCall else { return }
        rows[RollupKey(f), default: RollupValue()].add(f)
    }

    public mutating func merge(_ other: RollupTable) {
        for (k, v) in other.rows { rows[k, default: RollupValue()].merge(v) }
    }

    public mutating func merge(key: RollupKey, value: RollupValue) {
        rows[key, default: RollupValue()].merge(value)
    }

    public var isEmpty: Bool { rows.isEmpty }
}
