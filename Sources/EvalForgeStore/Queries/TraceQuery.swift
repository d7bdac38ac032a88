import EvalForgeModel
/// Which traces (or spans) a query selects. Every field narrows the selection; nil means any.
/// Times are Unix nanoseconds and apply to a trace's start (its earliest span).
public struct TraceFilter: Sendable, Hashable, Codable {
    public var projectID: String
    public var from: Int64?
    public var to: Int64?
    /// A trace matches when any of its spans has this service / provider / model.
    public var service: String?
    public var provider: String?
    public var model: String?
    /// `.error`: traces with at least one error span; `.ok`: traces without one.
    public var status: SpanStatus?
    public var userID: String?
    public var sessionID: String?
    /// A trace matches when any span carries this tag.
    public var tag: String?
    /// Minimum total cost of the trace in USD.
    public var minCostUSD: Double?
    /// Minimum trace duration in nanoseconds.
    public var minDurationNanos: Int64?
    /// Score range: traces with a score named `scoreName` whose value is within [minScore, maxScore].
    public var scoreName: String?
    public var minScore: Double?
    public var maxScore: Double?
    /// Case-insensitive substring of any span's input or output content.
    public var text: String?

    public init(projectID: String, from: Int64? = nil, to: Int64? = nil, service: String? = nil, provider: String? = nil, model: String? = nil, status: SpanStatus? = nil, userID: String? = nil, sessionID: String? = nil, tag: String? = nil, minCostUSD: Double? = nil, minDurationNanos: Int64? = nil, scoreName: String? = nil, minScore: Double? = nil, maxScore: Double? = nil, text: String? = nil) {
        self.projectID = projectID
        self.from = from
        self.to = to
        self.service = service
        self.provider = provider
        self.model = model
        self.status = status
        self.userID = userID
        self.sessionID = sessionID
        self.tag = tag
        self.minCostUSD = minCostUSD
        self.minDurationNanos = minDurationNanos
        self.scoreName = scoreName
        self.minScore = minScore
        self.maxScore = maxScore
        self.text = text
    }
}

/// Order of a trace list. Ties break on trace id so pages never overlap or skip.
public enum TraceSort: String, Sendable, Hashable, Codable, CaseIterable {
    case startDesc = "start_desc"
    case startAsc = "start_asc"
    case costDesc = "cost_desc"
    case durationDesc = "duration_desc"
}

/// One row of the trace list.
public struct TraceSummary: Sendable, Hashable, Codable {
    public var traceID: String
    /// Name of the root span (or of the earliest span when the root is missing).
    public var name: String
    public var service: String
    public var startUnixNanos: Int64
    public var durationNanos: Int64
    public var spanCount: Int
    public var llmCalls: Int
    public var errorCount: Int
    public var inputTokens: Int64
    public var outputTokens: Int64
    /// Sum of the known span costs; `costUnknownSpans` counts LLM spans without a price.
    public var costUSD: Double
    public var costUnknownSpans: Int
    public var userID: String
    public var sessionID: String
    public var tags: [String]
    public var models: [String]

    public init(traceID: String, name: String, service: String, startUnixNanos: Int64, durationNanos: Int64, spanCount: Int, llmCalls: Int, errorCount: Int, inputTokens: Int64, outputTokens: Int64, costUSD: Double, costUnknownSpans: Int, userID: String, sessionID: String, tags: [String], models: [String]) {
        self.traceID = traceID
        self.name = name
        self.service = service
        self.startUnixNanos = startUnixNanos
        self.durationNanos = durationNanos
        self.spanCount = spanCount
        self.llmCalls = llmCalls
        self.errorCount = errorCount
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costUSD = costUSD
        self.costUnknownSpans = costUnknownSpans
        self.userID = userID
        self.sessionID = sessionID
        self.tags = tags
        self.models = models
    }
}

/// A page of results and the opaque cursor of the next page (nil on the last page).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

/// Which spans a span list or export selects: the trace filter's fields applied to single spans
/// (times to the span's start, cost and duration to the span's own).
public struct SpanFilter: Sendable, Hashable, Codable {
    public var trace: TraceFilter
    /// Only model calls (spans with a provider or model).
    public var llmCallsOnly: Bool
    /// Only these traces (empty: any).
    public var traceIDs: [String]

    public init(trace: TraceFilter, llmCallsOnly: Bool = false, traceIDs: [String] = []) {
        self.trace = trace
        self.llmCallsOnly = llmCallsOnly
        self.traceIDs = traceIDs
    }
}
