import EvalForgeCore

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

    /// The key of `f`'s minute. A start past the Int64-nanosecond range (refused at ingest, but
    /// possible in records written by older builds) counts in the range's last minute.
    public init(_ f: SpanFacts) {
        let seconds = Int64(clamping: f.startUnixNanos / 1_000_000_000)
        self.init(
            minuteUnix: Swift.min(seconds, Int64.max / 1_000_000_000) / 60 * 60,
            project: f.project, service: f.service, provider: f.provider, model: f.model, isError: f.isError)
    }
}

/// Exact sums and mergeable latency / TTFT sketches for one `RollupKey`. Sums saturate (at
/// `UInt64.max`, and costs at `maxCostUSD`) instead of trapping: they come from outside data.
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

    /// The largest cost sum a rollup keeps (USD); beyond it the sum stays at this value.
    public static let maxCostUSD = 1e15

    public mutating func add(_ f: SpanFacts) {
        requests.addSaturating(1)
        if f.isError { errors.addSaturating(1) }
        inputTokens.addSaturating(Self.tokens(f.usage.input))
        outputTokens.addSaturating(Self.tokens(f.usage.output))
        cacheReadTokens.addSaturating(Self.tokens(f.usage.cacheRead))
        cacheCreationTokens.addSaturating(Self.tokens(f.usage.cacheCreation))
        reasoningTokens.addSaturating(Self.tokens(f.usage.reasoning))
        if let c = f.costUSD, c.isFinite, c >= 0 { addCost(c) } else { costUnknownRequests.addSaturating(1) }
        latencyMs.add(Double(f.durationNanos) / 1e6)
        if let t = f.timeToFirstChunkSeconds, t.isFinite, t >= 0 { ttftMs.add(t * 1000) }
    }

    /// A token count as a sum term: negatives (never normalized, but possible from other callers) add nothing.
    @inline(__always) static func tokens(_ n: Int?) -> UInt64 { UInt64(clamping: Swift.max(0, n ?? 0)) }

    @inline(__always) mutating func addCost(_ c: Double) {
        // A non-finite or negative term (only possible from callers that skipped validation) adds nothing.
        guard c.isFinite, c >= 0 else { return }
        costUSD = Swift.min(costUSD + c, Self.maxCostUSD)
    }

    /// Adds `o`'s sums and sketches. Returns false when a sketch of `o` has another alpha (its
    /// sums are added, that sketch is not); decoded rollups are validated first, so this only
    /// happens for callers that built sketches with another alpha.
    @discardableResult
    public mutating func merge(_ o: RollupValue) -> Bool {
        requests.addSaturating(o.requests)
        errors.addSaturating(o.errors)
        inputTokens.addSaturating(o.inputTokens)
        outputTokens.addSaturating(o.outputTokens)
        cacheReadTokens.addSaturating(o.cacheReadTokens)
        cacheCreationTokens.addSaturating(o.cacheCreationTokens)
        reasoningTokens.addSaturating(o.reasoningTokens)
        addCost(o.costUSD)
        costUnknownRequests.addSaturating(o.costUnknownRequests)
        let l = latencyMs.merge(o.latencyMs)
        let t = ttftMs.merge(o.ttftMs)
        return l && t
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
