/// What an evaluator looks at: one model interaction (a span, a dataset item's answer).
public struct EvaluationInput: Sendable, Hashable {
    /// The prompt / user input as text (the last user turn for conversations).
    public var input: String
    /// The model's answer as text.
    public var output: String
    /// Reference answer (datasets), or nil.
    public var expected: String?
    /// Retrieved / provided context the answer must be faithful to, or nil.
    public var context: String?
    /// The whole conversation, oldest first (for multi-turn coherence), or empty.
    public var conversation: [Message]
    /// Tool calls the answer made.
    public var toolCalls: [ToolCall]
    /// Tools declared to the model: name → JSON schema of the arguments.
    public var tools: [String: JSON]
    public var latencyMs: Double?
    public var costUSD: Double?

    public struct Message: Sendable, Hashable {
        public var role: String
        public var content: String
        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    public struct ToolCall: Sendable, Hashable, Codable {
        public var name: String
        /// The arguments as the model sent them (JSON text).
        public var arguments: String
        public init(name: String, arguments: String) {
            self.name = name
            self.arguments = arguments
        }
    }

    public init(input: String, output: String, expected: String? = nil, context: String? = nil, conversation: [Message] = [], toolCalls: [ToolCall] = [], tools: [String: JSON] = [:], latencyMs: Double? = nil, costUSD: Double? = nil) {
        self.input = input
        self.output = output
        self.expected = expected
        self.context = context
        self.conversation = conversation
        self.toolCalls = toolCalls
        self.tools = tools
        self.latencyMs = latencyMs
        self.costUSD = costUSD
    }
}

/// Tokens and cost of the judge calls behind one result.
public struct JudgeUsage: Sendable, Hashable, Codable {
    public var calls: Int = 0
    public var inputTokens: Int64 = 0
    public var outputTokens: Int64 = 0
    public var costUSD: Double = 0
    /// Total judge call latency, milliseconds.
    public var latencyMs: Double = 0

    public init() {}

    /// Saturating: token counts and costs come from provider answers.
    public static func + (a: JudgeUsage, b: JudgeUsage) -> JudgeUsage {
        var r = a
        r.calls = a.calls.addingSaturated(b.calls)
        r.inputTokens = a.inputTokens.addingSaturated(b.inputTokens)
        r.outputTokens = a.outputTokens.addingSaturated(b.outputTokens)
        r.costUSD = Checked.add(a.costUSD, b.costUSD)
        r.latencyMs = Checked.add(a.latencyMs, b.latencyMs)
        return r
    }
}

/// One evaluator's verdict: a score in 0…1 (or a raw measurement), a label and an explanation; or an
/// evaluation error with its reason (the error is recorded, never thrown out of a run).
public struct EvaluationResult: Sendable, Hashable, Codable {
    public var evaluator: String
    public var version: Int
    public var score: Double?
    public var label: String
    public var explanation: String
    /// Set when the evaluation could not be made: "timeout: …", "malformed_answer: …".
    public var error: String?
    public var usage: JudgeUsage
    /// True when served from the result cache (no judge call).
    public var cached: Bool
    /// The model calls behind the result (judge evaluators), stored as spans.
    public var calls: [ModelCall] = []

    public init(evaluator: String, version: Int, score: Double?, label: String, explanation: String = "", error: String? = nil, usage: JudgeUsage = JudgeUsage(), cached: Bool = false) {
        self.evaluator = evaluator
        self.version = version
        self.score = score
        self.label = label
        self.explanation = explanation
        self.error = error
        self.usage = usage
        self.cached = cached
    }

    static func pass(_ e: any Evaluator, _ ok: Bool, _ explanation: String) -> EvaluationResult {
        EvaluationResult(evaluator: e.name, version: e.version, score: ok ? 1 : 0, label: ok ? "pass" : "fail", explanation: explanation)
    }

    static func failure(_ e: any Evaluator, _ error: EvaluationError, usage: JudgeUsage = JudgeUsage()) -> EvaluationResult {
        EvaluationResult(evaluator: e.name, version: e.version, score: nil, label: "error", explanation: "", error: error.description, usage: usage)
    }
}

/// An evaluator. Conform to add a custom one in Swift and register it with
/// `EvaluationService.register(_:)`; its `name` is then usable in rules and experiments.
public protocol Evaluator: Sendable {
    /// Unique name within a project, e.g. "relevance", "json_valid".
    var name: String { get }
    /// Bumped whenever the evaluator's behaviour changes (part of the result-cache key).
    var version: Int { get }
    /// True when results are worth caching (judge calls); heuristics are cheaper than a lookup.
    var isCacheable: Bool { get }
    /// Never throws: failures are results with `error` set.
    func evaluate(_ input: EvaluationInput) async -> EvaluationResult
}

/// An evaluator that needs no I/O; evaluated inline.
public protocol HeuristicEvaluator: Evaluator {
    func evaluateNow(_ input: EvaluationInput) -> EvaluationResult
}

extension HeuristicEvaluator {
    public var isCacheable: Bool { false }
    public func evaluate(_ input: EvaluationInput) async -> EvaluationResult { evaluateNow(input) }
}
