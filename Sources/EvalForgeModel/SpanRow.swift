/// One stored span: the typed columns queries filter and aggregate on, plus attributes and content
/// kept apart. Both stores hold exactly these fields.
public struct SpanRow: Sendable, Hashable, Codable {
    /// The project the API key that delivered the span belongs to (never taken from the span itself).
    public var projectID: String
    /// 32 lowercase hex digits.
    public var traceID: String
    /// 16 lowercase hex digits.
    public var spanID: String
    /// 16 lowercase hex digits, or "" for a root span.
    public var parentSpanID: String
    public var startUnixNanos: Int64
    public var durationNanos: Int64
    public var service: String
    public var name: String
    public var kind: SpanKind
    public var status: SpanStatus
    public var statusMessage: String
    /// `gen_ai.operation.name` ("chat", "embeddings", "execute_tool", "invoke_agent", …) or "".
    public var operation: String
    public var provider: String
    public var model: String
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var cacheReadTokens: Int64
    public var cacheCreationTokens: Int64
    public var reasoningTokens: Int64
    /// Cost in USD; nil when unknown (model not priced and no cost on the span). Never 0 for unknown.
    public var costUSD: Double?
    /// Time to first token/chunk in nanoseconds, for streamed calls.
    public var ttftNanos: Int64?
    public var userID: String
    public var sessionID: String
    public var tags: [String]
    /// Every other attribute as a JSON object (string values, numbers, booleans, arrays).
    public var attributesJSON: String
    /// The LLM input (`gen_ai.input.messages`, JSON) or "" when not recorded.
    public var input: String
    /// The LLM output (`gen_ai.output.messages`, JSON) or "".
    public var output: String
    /// Span events as a JSON array of `{"name":…,"timeUnixNano":…,"attributes":{…}}`.
    public var eventsJSON: String

    public init(projectID: String, traceID: String, spanID: String, parentSpanID: String = "", startUnixNanos: Int64, durationNanos: Int64, service: String = "", name: String = "", kind: SpanKind = .internal, status: SpanStatus = .unset, statusMessage: String = "", operation: String = "", provider: String = "", model: String = "", inputTokens: Int64 = 0, outputTokens: Int64 = 0, cacheReadTokens: Int64 = 0, cacheCreationTokens: Int64 = 0, reasoningTokens: Int64 = 0, costUSD: Double? = nil, ttftNanos: Int64? = nil, userID: String = "", sessionID: String = "", tags: [String] = [], attributesJSON: String = "{}", input: String = "", output: String = "", eventsJSON: String = "[]") {
        self.projectID = projectID
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.startUnixNanos = startUnixNanos
        self.durationNanos = durationNanos
        self.service = service
        self.name = name
        self.kind = kind
        self.status = status
        self.statusMessage = statusMessage
        self.operation = operation
        self.provider = provider
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadTokens = cacheReadTokens
        self.cacheCreationTokens = cacheCreationTokens
        self.reasoningTokens = reasoningTokens
        self.costUSD = costUSD
        self.ttftNanos = ttftNanos
        self.userID = userID
        self.sessionID = sessionID
        self.tags = tags
        self.attributesJSON = attributesJSON
        self.input = input
        self.output = output
        self.eventsJSON = eventsJSON
    }

    public var isRoot: Bool { parentSpanID.isEmpty }
    public var isError: Bool { status == .error }
    public var endUnixNanos: Int64 { startUnixNanos.addingSaturated(durationNanos) }
    /// True for model calls (the spans rollups count as requests).
    public var isLLMCall: Bool { !model.isEmpty || !provider.isEmpty }
}

/// OTLP span kind, stored as its number.
public enum SpanKind: Int8, Sendable, Hashable, Codable, CaseIterable {
    case unspecified = 0, `internal` = 1, server = 2, client = 3, producer = 4, consumer = 5

    public var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .internal: "internal"
        case .server: "server"
        case .client: "client"
        case .producer: "producer"
        case .consumer: "consumer"
        }
    }
}

/// OTLP status code, stored as its number.
public enum SpanStatus: Int8, Sendable, Hashable, Codable, CaseIterable {
    case unset = 0, ok = 1, error = 2

    public var name: String {
        switch self {
        case .unset: "unset"
        case .ok: "ok"
        case .error: "error"
        }
    }
}
