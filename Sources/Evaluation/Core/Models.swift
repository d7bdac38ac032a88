import Foundation

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

    enum CodingKeys: String, CodingKey { case type, provider, model, system, prompt, temperature, maxTokens, url, headers, timeoutMs }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        provider = try c.decodeIfPresent(String.self, forKey: .provider)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        system = try c.decodeIfPresent(String.self, forKey: .system)
        prompt = try c.decodeIfPresent(String.self, forKey: .prompt)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        maxTokens = try c.decodeCheckedInt(.maxTokens, field: "target.maxTokens")
        url = try c.decodeIfPresent(String.self, forKey: .url)
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers)
        timeoutMs = try c.decodeCheckedInt(.timeoutMs, field: "target.timeoutMs")
    }

    /// Bounds of the numeric settings, checked when the experiment is stored.
    static let maxTokensBound = 1_000_000
    static let maxTimeoutMs = 600_000

    func validate() throws(EvaluationError) {
        switch type {
        case "recorded": break
        case "provider":
            guard let p = provider, !p.isEmpty else { throw .invalidArgument("target.provider: required for a provider target") }
        case "http":
            guard let u = url, u.utf8.count <= 2048, u.hasPrefix("http://") || u.hasPrefix("https://"), URL(string: u)?.host != nil else {
                throw .invalidArgument("target.url: an http(s) URL is required for an http target")
            }
        default: throw .invalidArgument("target.type: expected recorded, provider or http, got '\(type.prefix(40))'")
        }
        for (field, text) in [("provider", provider), ("model", model), ("system", system), ("prompt", prompt)] {
            if let t = text, t.utf8.count > EvaluatorSpec.maxTextBytes { throw .invalidArgument("target.\(field): at most \(EvaluatorSpec.maxTextBytes) bytes, got \(t.utf8.count)") }
        }
        if let v = temperature, !(v.isFinite && (0...2).contains(v)) { throw .invalidArgument("target.temperature: expected 0…2, got \(Checked.text(v))") }
        if let v = maxTokens, !(1...Self.maxTokensBound).contains(v) { throw .invalidArgument("target.maxTokens: expected 1…\(Self.maxTokensBound), got \(v)") }
        if let v = timeoutMs, !(100...Self.maxTimeoutMs).contains(v) { throw .invalidArgument("target.timeoutMs: expected 100…\(Self.maxTimeoutMs), got \(v)") }
        if let h = headers { try ProviderConfig.checkHeaders(h, field: "target.headers") }
    }

    /// The per-call timeout, clamped (a stored configuration is read back, not trusted).
    var clampedTimeoutMs: Int64 { Int64(Swift.min(Swift.max(timeoutMs ?? 30_000, 100), Self.maxTimeoutMs)) }
    /// The answer's token budget, clamped.
    var clampedMaxTokens: Int { Swift.min(Swift.max(maxTokens ?? 512, 1), Self.maxTokensBound) }
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
        /// Model calls (judges, a provider target) made while evaluating items again after their
        /// first claim was lost (the backend evaluating them stopped): what a crash cost twice.
        public var callsRepeated: Int
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

    /// Checks the filter when a rule is stored: texts bounded, thresholds finite and ≥ 0.
    func validate() throws(EvaluationError) {
        for (field, text) in [("service", service), ("model", model), ("provider", provider), ("operation", operation), ("nameContains", nameContains), ("tag", tag), ("status", status)] {
            if let t = text, t.utf8.count > 1000 { throw .invalidArgument("filter.\(field): at most 1000 bytes, got \(t.utf8.count)") }
        }
        if let v = minCostUSD, !(v.isFinite && v >= 0) { throw .invalidArgument("filter.minCostUSD: expected a finite number ≥ 0, got \(Checked.text(v))") }
        if let v = minDurationMs, !(v.isFinite && v >= 0) { throw .invalidArgument("filter.minDurationMs: expected a finite number ≥ 0, got \(Checked.text(v))") }
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
