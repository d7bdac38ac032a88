import EvalForgeModel
import EvalForgeStore
import Foundation

// The JSON shapes of the query API. Property names are encoded in snake_case (`JSONEncoder.api`):
// `traceID` → `trace_id`, `costUSD` → `cost_usd`. docs/openapi.yaml describes each of them.

struct ErrorBody: Codable, Sendable {
    struct Detail: Codable, Sendable { var message: String }
    var error: Detail
}

struct PageDTO<Item: Codable & Sendable>: Codable, Sendable {
    var items: [Item]
    /// Pass as `cursor` to read the next page; null on the last page.
    var nextCursor: String?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(items, forKey: .items)
        try c.encode(nextCursor, forKey: .nextCursor)  // null, not absent
    }
}

struct TraceSummaryDTO: Codable, Sendable {
    var traceID: String
    var name: String
    var service: String
    var startUnixNanos: Int64
    var durationMs: Double
    var spanCount: Int
    var llmCalls: Int
    var errorCount: Int
    var status: String
    var inputTokens: Int64
    var outputTokens: Int64
    var costUSD: Double
    var costUnknownSpans: Int
    var userID: String
    var sessionID: String
    var tags: [String]
    var models: [String]

    init(_ t: TraceSummary) {
        traceID = t.traceID
        name = t.name
        service = t.service
        startUnixNanos = t.startUnixNanos
        durationMs = Double(t.durationNanos) / 1e6
        spanCount = t.spanCount
        llmCalls = t.llmCalls
        errorCount = t.errorCount
        status = t.errorCount > 0 ? "error" : "ok"
        inputTokens = t.inputTokens
        outputTokens = t.outputTokens
        costUSD = t.costUSD.isFinite ? t.costUSD : 0
        costUnknownSpans = t.costUnknownSpans
        userID = t.userID
        sessionID = t.sessionID
        tags = t.tags
        models = t.models
    }
}

struct ScoreDTO: Codable, Sendable {
    var id: String
    var traceID: String
    var spanID: String
    var sessionID: String
    var name: String
    var value: Double?
    var label: String
    var dataType: String
    var source: String
    var comment: String
    var evaluator: String
    var runID: String
    var createdUnixNanos: Int64

    init(_ s: ScoreRow) {
        id = s.id
        traceID = s.traceID
        spanID = s.spanID
        sessionID = s.sessionID
        name = s.name
        value = s.value.flatMap { $0.isFinite ? $0 : nil }
        label = s.label
        dataType = s.dataType.rawValue
        source = s.source.rawValue
        comment = s.comment
        evaluator = s.evaluator
        runID = s.runID
        createdUnixNanos = s.createdUnixNanos
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(traceID, forKey: .traceID)
        try c.encode(spanID, forKey: .spanID)
        try c.encode(sessionID, forKey: .sessionID)
        try c.encode(name, forKey: .name)
        try c.encode(value, forKey: .value)
        try c.encode(label, forKey: .label)
        try c.encode(dataType, forKey: .dataType)
        try c.encode(source, forKey: .source)
        try c.encode(comment, forKey: .comment)
        try c.encode(evaluator, forKey: .evaluator)
        try c.encode(runID, forKey: .runID)
        try c.encode(createdUnixNanos, forKey: .createdUnixNanos)
    }
}

/// One span with everything stored about it, as a node of the trace tree.
struct SpanDTO: Codable, Sendable {
    var traceID: String
    var spanID: String
    var parentSpanID: String
    var name: String
    var service: String
    var kind: String
    var status: String
    var statusMessage: String
    var startUnixNanos: Int64
    /// Start relative to the trace's first span, milliseconds.
    var offsetMs: Double
    var durationMs: Double
    /// Depth in the tree (0 for roots).
    var depth: Int
    var operation: String
    var provider: String
    var model: String
    var inputTokens: Int64
    var outputTokens: Int64
    var cacheReadTokens: Int64
    var cacheCreationTokens: Int64
    var reasoningTokens: Int64
    var costUSD: Double?
    var ttftMs: Double?
    var userID: String
    var sessionID: String
    var tags: [String]
    var attributes: [String: JSONValue]
    /// The LLM input messages (OTel GenAI JSON), or null when not recorded.
    var input: JSONValue?
    var output: JSONValue?
    var events: [JSONValue]
    var scores: [ScoreDTO]
    var children: [SpanDTO]

    init(_ s: SpanRow, traceStart: Int64, depth: Int, scores: [ScoreDTO]) {
        traceID = s.traceID
        spanID = s.spanID
        parentSpanID = s.parentSpanID
        name = s.name
        service = s.service
        kind = s.kind.name
        status = s.status.name
        statusMessage = s.statusMessage
        startUnixNanos = s.startUnixNanos
        offsetMs = (Double(s.startUnixNanos) - Double(traceStart)) / 1e6
        durationMs = Double(s.durationNanos) / 1e6
        self.depth = depth
        operation = s.operation
        provider = s.provider
        model = s.model
        inputTokens = s.inputTokens
        outputTokens = s.outputTokens
        cacheReadTokens = s.cacheReadTokens
        cacheCreationTokens = s.cacheCreationTokens
        reasoningTokens = s.reasoningTokens
        costUSD = s.costUSD.flatMap { $0.isFinite ? $0 : nil }
        ttftMs = s.ttftNanos.map { Double($0) / 1e6 }
        userID = s.userID
        sessionID = s.sessionID
        tags = s.tags
        attributes = JSONValue.parse(s.attributesJSON)?.objectValue ?? [:]
        input = Self.content(s.input)
        output = Self.content(s.output)
        events = JSONValue.parse(s.eventsJSON)?.arrayValue ?? []
        self.scores = scores
        children = []
    }

    /// Content as parsed JSON, or as a string when it is not JSON; nil when empty.
    static func content(_ text: String) -> JSONValue? {
        if text.isEmpty { return nil }
        return JSONValue.parse(text) ?? .string(text)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(traceID, forKey: .traceID)
        try c.encode(spanID, forKey: .spanID)
        try c.encode(parentSpanID, forKey: .parentSpanID)
        try c.encode(name, forKey: .name)
        try c.encode(service, forKey: .service)
        try c.encode(kind, forKey: .kind)
        try c.encode(status, forKey: .status)
        try c.encode(statusMessage, forKey: .statusMessage)
        try c.encode(startUnixNanos, forKey: .startUnixNanos)
        try c.encode(offsetMs, forKey: .offsetMs)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(depth, forKey: .depth)
        try c.encode(operation, forKey: .operation)
        try c.encode(provider, forKey: .provider)
        try c.encode(model, forKey: .model)
        try c.encode(inputTokens, forKey: .inputTokens)
        try c.encode(outputTokens, forKey: .outputTokens)
        try c.encode(cacheReadTokens, forKey: .cacheReadTokens)
        try c.encode(cacheCreationTokens, forKey: .cacheCreationTokens)
        try c.encode(reasoningTokens, forKey: .reasoningTokens)
        try c.encode(costUSD, forKey: .costUSD)
        try c.encode(ttftMs, forKey: .ttftMs)
        try c.encode(userID, forKey: .userID)
        try c.encode(sessionID, forKey: .sessionID)
        try c.encode(tags, forKey: .tags)
        try c.encode(attributes, forKey: .attributes)
        try c.encode(input ?? .null, forKey: .input)
        try c.encode(output ?? .null, forKey: .output)
        try c.encode(events, forKey: .events)
        try c.encode(scores, forKey: .scores)
        try c.encode(children, forKey: .children)
    }
}

struct TraceDetailDTO: Codable, Sendable {
    var trace: TraceSummaryDTO
    /// Root spans (spans whose parent is absent from the trace count as roots), children nested.
    var spans: [SpanDTO]
    /// Trace-level scores (span-level scores are on their spans).
    var scores: [ScoreDTO]
}

struct SessionSummaryDTO: Codable, Sendable {
    var sessionID: String
    var userID: String
    var firstUnixNanos: Int64
    var lastUnixNanos: Int64
    var traceCount: Int
    var llmCalls: Int
    var errorCount: Int
    var inputTokens: Int64
    var outputTokens: Int64
    var costUSD: Double

    init(_ s: SessionSummary) {
        sessionID = s.sessionID
        userID = s.userID
        firstUnixNanos = s.firstUnixNanos
        lastUnixNanos = s.lastUnixNanos
        traceCount = s.traceCount
        llmCalls = s.llmCalls
        errorCount = s.errorCount
        inputTokens = s.inputTokens
        outputTokens = s.outputTokens
        costUSD = s.costUSD.isFinite ? s.costUSD : 0
    }
}

/// One model call of a conversation.
struct TurnDTO: Codable, Sendable {
    var traceID: String
    var spanID: String
    var name: String
    var startUnixNanos: Int64
    var durationMs: Double
    var status: String
    var provider: String
    var model: String
    var inputTokens: Int64
    var outputTokens: Int64
    var costUSD: Double?
    var input: JSONValue?
    var output: JSONValue?

    init(_ s: SpanRow) {
        traceID = s.traceID
        spanID = s.spanID
        name = s.name
        startUnixNanos = s.startUnixNanos
        durationMs = Double(s.durationNanos) / 1e6
        status = s.status.name
        provider = s.provider
        model = s.model
        inputTokens = s.inputTokens
        outputTokens = s.outputTokens
        costUSD = s.costUSD.flatMap { $0.isFinite ? $0 : nil }
        input = SpanDTO.content(s.input)
        output = SpanDTO.content(s.output)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(traceID, forKey: .traceID)
        try c.encode(spanID, forKey: .spanID)
        try c.encode(name, forKey: .name)
        try c.encode(startUnixNanos, forKey: .startUnixNanos)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(status, forKey: .status)
        try c.encode(provider, forKey: .provider)
        try c.encode(model, forKey: .model)
        try c.encode(inputTokens, forKey: .inputTokens)
        try c.encode(outputTokens, forKey: .outputTokens)
        try c.encode(costUSD, forKey: .costUSD)
        try c.encode(input ?? .null, forKey: .input)
        try c.encode(output ?? .null, forKey: .output)
    }
}

struct SessionDetailDTO: Codable, Sendable {
    var session: SessionSummaryDTO
    var turns: [TurnDTO]
    /// `traceIds`, not `traceIDs`: the snake_case conversion would give `trace_i_ds`.
    var traceIds: [String]
    var scores: [ScoreDTO]
}

struct UserSummaryDTO: Codable, Sendable {
    var userID: String
    var firstUnixNanos: Int64
    var lastUnixNanos: Int64
    var traceCount: Int
    var sessionCount: Int
    var llmCalls: Int
    var errorCount: Int
    var inputTokens: Int64
    var outputTokens: Int64
    var costUSD: Double

    init(_ u: UserSummary) {
        userID = u.userID
        firstUnixNanos = u.firstUnixNanos
        lastUnixNanos = u.lastUnixNanos
        traceCount = u.traceCount
        sessionCount = u.sessionCount
        llmCalls = u.llmCalls
        errorCount = u.errorCount
        inputTokens = u.inputTokens
        outputTokens = u.outputTokens
        costUSD = u.costUSD.isFinite ? u.costUSD : 0
    }
}

struct UserDetailDTO: Codable, Sendable {
    var user: UserSummaryDTO
    var sessions: [SessionSummaryDTO]
    var traces: [TraceSummaryDTO]
}

/// Aggregates of one bucket (or of a whole range): counts, tokens, cost, and percentiles read from
/// the merged latency and time-to-first-token sketches (null when there is no sample).
struct MetricsValuesDTO: Codable, Sendable {
    var requests: UInt64
    var errors: UInt64
    var errorRate: Double
    var inputTokens: UInt64
    var outputTokens: UInt64
    var totalTokens: UInt64
    var cacheReadTokens: UInt64
    var reasoningTokens: UInt64
    var costUSD: Double
    var costUnknownRequests: UInt64
    var latencyP50Ms: Double?
    var latencyP95Ms: Double?
    var latencyP99Ms: Double?
    var latencyMeanMs: Double?
    var ttftP50Ms: Double?
    var ttftP95Ms: Double?
    var ttftP99Ms: Double?

    init(_ v: RollupValue) {
        requests = v.requests
        errors = v.errors
        errorRate = v.requests == 0 ? 0 : Double(v.errors) / Double(v.requests)
        inputTokens = v.inputTokens
        outputTokens = v.outputTokens
        totalTokens = v.inputTokens.addingSaturated(v.outputTokens)
        cacheReadTokens = v.cacheReadTokens
        reasoningTokens = v.reasoningTokens
        costUSD = v.costUSD.isFinite ? v.costUSD : 0
        costUnknownRequests = v.costUnknownRequests
        func q(_ s: DDSketch, _ p: Double) -> Double? { s.quantile(p).flatMap { $0.isFinite ? $0 : nil } }
        latencyP50Ms = q(v.latencyMs, 0.5)
        latencyP95Ms = q(v.latencyMs, 0.95)
        latencyP99Ms = q(v.latencyMs, 0.99)
        latencyMeanMs = v.latencyMs.count == 0 ? nil : CheckedNumbers.finite(v.latencyMs.sum / Double(v.latencyMs.count))
        ttftP50Ms = q(v.ttftMs, 0.5)
        ttftP95Ms = q(v.ttftMs, 0.95)
        ttftP99Ms = q(v.ttftMs, 0.99)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(requests, forKey: .requests)
        try c.encode(errors, forKey: .errors)
        try c.encode(errorRate, forKey: .errorRate)
        try c.encode(inputTokens, forKey: .inputTokens)
        try c.encode(outputTokens, forKey: .outputTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
        try c.encode(cacheReadTokens, forKey: .cacheReadTokens)
        try c.encode(reasoningTokens, forKey: .reasoningTokens)
        try c.encode(costUSD, forKey: .costUSD)
        try c.encode(costUnknownRequests, forKey: .costUnknownRequests)
        try c.encode(latencyP50Ms, forKey: .latencyP50Ms)
        try c.encode(latencyP95Ms, forKey: .latencyP95Ms)
        try c.encode(latencyP99Ms, forKey: .latencyP99Ms)
        try c.encode(latencyMeanMs, forKey: .latencyMeanMs)
        try c.encode(ttftP50Ms, forKey: .ttftP50Ms)
        try c.encode(ttftP95Ms, forKey: .ttftP95Ms)
        try c.encode(ttftP99Ms, forKey: .ttftP99Ms)
    }
}

struct MetricsPointDTO: Codable, Sendable {
    /// Bucket start, Unix seconds.
    var t: Int64
    var values: MetricsValuesDTO
}

struct MetricsSeriesDTO: Codable, Sendable {
    /// Value of the grouping dimension ("" when not grouped, or for spans without it).
    var group: String
    /// Buckets with at least one request, by time (empty buckets are left out).
    var points: [MetricsPointDTO]
    /// The series merged over the whole range.
    var totals: MetricsValuesDTO
}

struct MetricsDTO: Codable, Sendable {
    var fromUnix: Int64
    var toUnix: Int64
    var intervalSeconds: Int64
    var groupBy: String
    /// One series per group, largest cost first (then by name).
    var series: [MetricsSeriesDTO]
    /// Everything merged over the range and the groups.
    var totals: MetricsValuesDTO
    /// Every group merged over time, by bucket (the overall time series).
    var overall: [MetricsPointDTO]
}
