import EvalForgeCore

/// What the pipeline needs to know about one span after normalization: identity, grouping keys,
/// status, timing, tokens and cost. Extracted once per span; the OTLP span itself travels on
/// untouched except for the normalized attributes.
public struct SpanFacts: Sendable, Hashable {
    public var traceID: TraceID
    public var spanID: UInt64
    public var parentSpanID: UInt64
    public var project: String
    public var service: String
    public var provider: String
    public var model: String
    public var operation: String
    /// True for model calls (chat, completion, embeddings…), the spans rollups count as requests.
    public var isLLMCall: Bool
    public var isError: Bool
    public var startUnixNanos: UInt64
    public var endUnixNanos: UInt64
    public var usage: TokenUsage
    public var costUSD: Double?
    public var timeToFirstChunkSeconds: Double?

    public init(traceID: TraceID, spanID: UInt64, parentSpanID: UInt64 = 0, project: String = "", service: String = "", provider: String = "", model: String = "", operation: String = "", isLLMCall: Bool = false, isError: Bool = false, startUnixNanos: UInt64 = 0, endUnixNanos: UInt64 = 0, usage: TokenUsage = TokenUsage(), costUSD: Double? = nil, timeToFirstChunkSeconds: Double? = nil) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.project = project
        self.service = service
        self.provider = provider
        self.model = model
        self.operation = operation
        self.isLLMCall = isLLMCall
        self.isError = isError
        self.startUnixNanos = startUnixNanos
        self.endUnixNanos = endUnixNanos
        self.usage = usage
        self.costUSD = costUSD
        self.timeToFirstChunkSeconds = timeToFirstChunkSeconds
    }

    /// Why the span cannot be accepted (the field and its value), nil when it can: its start and end
    /// must be within the Int64-nanosecond range (before 2262-04-11), which every store and every
    /// time computation downstream relies on; a value past it is also what a negative Int64 sent as
    /// fixed64 looks like.
    public var problem: String? {
        if startUnixNanos > UInt64(Int64.max) { return "start_time_unix_nano \(startUnixNanos) is beyond the Int64-nanosecond range (\(Int64.max))" }
        if endUnixNanos > UInt64(Int64.max) { return "end_time_unix_nano \(endUnixNanos) is beyond the Int64-nanosecond range (\(Int64.max))" }
        return nil
    }

    public var durationNanos: UInt64 { endUnixNanos >= startUnixNanos ? endUnixNanos - startUnixNanos : 0 }
    public var isRoot: Bool { parentSpanID == 0 }
}
