/// A dataset of evaluation items.
public struct Dataset: Sendable, Codable, Hashable {
    public var id: String
    public var name: String
    public var description: String
    public var itemCount: Int
    public var createdUnixMs: Int64
}

/// One dataset item. `input` is a string or a list of chat messages (`[{"role","content"}]`), or an
/// object `{"messages": […], "tools": […]}`; `output` is a recorded answer (items made from traces,
/// or for the "recorded" target); `context` is what the answer must be faithful to.
public struct DatasetItem: Sendable, Codable, Hashable {
    public var id: String
    public var input: JSON
    public var expected: String?
    public var output: String?
    public var context: String?
    public var metadata: JSON
    public var sourceTraceID: String
    public var sourceSpanID: String

    public init(id: String = "", input: JSON, expected: String? = nil, output: String? = nil, context: String? = nil, metadata: JSON = .object([:]), sourceTraceID: String = "", sourceSpanID: String = "") {
        self.id = id
        self.input = input
        self.expected = expected
        self.output = output
        self.context = context
        self.metadata = metadata
        self.sourceTraceID = sourceTraceID
        self.sourceSpanID = sourceSpanID
    }

    enum CodingKeys: String, CodingKey { case id, input, expected, output, context, metadata, sourceTraceID, sourceSpanID }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        input = try c.decode(JSON.self, forKey: .input)
        expected = try c.decodeIfPresent(String.self, forKey: .expected)
        output = try c.decodeIfPresent(String.self, forKey: .output)
        context = try c.decodeIfPresent(String.self, forKey: .context)
        metadata = try c.decodeIfPresent(JSON.self, forKey: .metadata) ?? .object([:])
        sourceTraceID = try c.decodeIfPresent(String.self, forKey: .sourceTraceID) ?? ""
        sourceSpanID = try c.decodeIfPresent(String.self, forKey: .sourceSpanID) ?? ""
    }
}

/// What an experiment runs for each item.
public struct Target: Sendable, Codable, Hashable {
    /// "recorded" (the item's recorded output; nothing is called), "provider" (a prompt and model
    /// configuration against a provider) or "http" (POST to an endpoint).
    public var type: String
    public var provider: String?
    public var model: String?
    public var system: String?
    /// User prompt template; {{input}} is the item's input text. Default "{{input}}".
    public var prompt: String?
    public var temperature: Double?
    public var maxTokens: Int?
    /// "http": URL receiving `{"input": …, "metadata": …, "itemId": …}`; it answers `{"output": "…"}` or text.
    public var url: String?
    public var headers: [String: String]?
    public var timeoutMs: Int?

    public init(type: String, provider: String? = nil, model: String? = nil, system: String? = nil, prompt: String? = nil, temperature: Double? = nil, maxTokens: Int? = nil, url: String? = nil, headers: [String: String]? = nil, timeoutMs: Int? = nil) {
        self.type = type
        self.provider = provider
        self.model = model
        self.system = system
        self.prompt = prompt
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.url = url
        self.headers = headers
        self.timeoutMs = timeoutMs
    }

    func validate() throws {
        switch type {
        case "recorded": break
        case "provider":
            guard let p = provider, !p.isEmpty else { throw EvaluationError.invalidArgument("target.provider: required for a provider target") }
        case "http":
            guard let u = url, u.hasPrefix("http://") || u.hasPrefix("https://") else { throw EvaluationError.invalidArgument("target.url: an http(s) URL is required for an http target") }
        default: throw EvaluationError.invalidArgument("target.type: expected recorded, provider or http, got '\(type)'")
        }
    }
}

public struct Experiment: Sendable, Codable, Hashable {
    public var id: String
    public var name: String
    public var datasetID: String
    public var target: Target
    /// Evaluator names (created with POST /api/evaluators).
    public var evaluators: [String]
    /// Items in flight at once. Default 256.
    public var concurrency: Int
    public var createdUnixMs: Int64
}

/// The configuration a run was started with (snapshotted so a resumed run behaves the same).
struct RunConfig: Sendable, Codable, Hashable {
    var target: Target
    var evaluators: [VersionedSpec]
    var concurrency: Int
}

struct VersionedSpec: Sendable, Codable, Hashable {
    var spec: EvaluatorSpec
    var version: Int
}

public enum RunStatus: String, Sendable, Codable, Hashable {
    case pending, running, completed, failed, cancelled
    var isFinal: Bool { self == .completed || self == .failed || self == .cancelled }
}

public struct Run: Sendable, Codable, Hashable {
    public var id: String
    public var experimentID: String
    public var datasetID: String
    public var name: String
    public var status: RunStatus
    public var total: Int
    public var done: Int
    public var errors: Int
    public var judge: JudgeTotals
    public var cacheHits: Int
    public var error: String
    public var createdUnixMs: Int64
    public var startedUnixMs: Int64?
    public var finishedUnixMs: Int64?
    /// Per evaluator: mean score, pass rate, counts (filled by GET /api/runs/{id}).
    public var aggregates: [EvaluatorAggregate]?

    public struct JudgeTotals: Sendable, Codable, Hashable {
        public var calls: Int
        public var inputTokens: Int64
        public var outputTokens: Int64
        public var costUSD: Double
        public var meanLatencyMs: Double
    }
}

public struct EvaluatorAggregate: Sendable, Codable, Hashable {
    public var evaluator: String
    public var count: Int
    public var scored: Int
    public var errors: Int
    public var mean: Double?
    public var min: Double?
    public var max: Double?
    public var passRate: Double?
    public var labels: [String: Int]
}

/// One item's result in a run.
public struct RunItemResult: Sendable, Codable, Hashable {
    public var itemID: String
    public var seq: Int
    public var state: String
    public var output: String?
    public var latencyMs: Double?
    public var error: String?
    public var results: [EvaluationResult]
}

/// Which spans an online rule looks at. Every set field must match.
public struct RuleFilter: Sendable, Codable, Hashable {
    public var service: String?
    public var model: String?
    public var provider: String?
    public var operation: String?
    public var nameContains: String?
    public var tag: String?
    /// "ok", "error" or "unset".
    public var status: String?
    /// Only model calls (spans with a model or provider). Default true.
    public var llmOnly: Bool?
    public var minCostUSD: Double?
    public var minDurationMs: Double?

    public init(service: String? = nil, model: String? = nil, provider: String? = nil, operation: String? = nil, nameContains: String? = nil, tag: String? = nil, status: String? = nil, llmOnly: Bool? = nil, minCostUSD: Double? = nil, minDurationMs: Double? = nil) {
        self.service = service
        self.model = model
        self.provider = provider
        self.operation = operation
        self.nameContains = nameContains
        self.tag = tag
        self.status = status
        self.llmOnly = llmOnly
        self.minCostUSD = minCostUSD
        self.minDurationMs = minDurationMs
    }
}

public struct OnlineRule: Sendable, Codable, Hashable {
    public var id: String
    public var name: String
    public var filter: RuleFilter
    /// Fraction of matching traces evaluated (0…1), decided on the trace id (a trace is all in or out).
    public var samplingRate: Double
    public var evaluators: [String]
    public var enabled: Bool
    public var createdUnixMs: Int64
}

public struct Webhook: Sendable, Codable, Hashable {
    public var id: String
    public var url: String
    /// Shown once, on creation; "" afterwards.
    public var secret: String
    /// run.started, run.progress, run.completed, run.failed (empty = all).
    public var events: [String]
    public var enabled: Bool
    public var createdUnixMs: Int64
}

public struct Delivery: Sendable, Codable, Hashable {
    public var id: String
    public var webhookID: String
    public var event: String
    public var status: String
    public var attempts: Int
    public var lastStatusCode: Int?
    public var lastError: String
    public var log: JSON
    public var payload: String
    public var createdUnixMs: Int64
    public var updatedUnixMs: Int64
}
