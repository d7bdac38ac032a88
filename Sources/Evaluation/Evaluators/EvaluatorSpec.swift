import Foundation

/// An evaluator's definition as stored and sent through the API:
/// `{"name": "answer_json", "type": "json_schema", "schema": {…}}`,
/// `{"name": "relevance", "type": "judge", "rubric": "relevance", "provider": "openai"}`,
/// `{"name": "polite", "type": "judge", "prompt": "Rate politeness … {{output}}", "provider": "claude"}`.
public struct EvaluatorSpec: Sendable, Codable, Hashable {
    public var name: String
    /// exact_match, contains, regex, json_valid, json_schema, length, latency, cost, refusal, pii,
    /// secrets, tool_call, judge.
    public var type: String
    public var value: String?
    public var ignoreCase: Bool?
    public var pattern: String?
    public var schema: JSON?
    public var min: Int?
    public var max: Int?
    public var maxMs: Double?
    public var maxUSD: Double?
    public var rubric: Rubric?
    /// Custom judge prompt template (placeholders {{input}} {{output}} {{expected}} {{context}} {{conversation}}).
    public var prompt: String?
    /// Judge provider name (see /api/providers).
    public var provider: String?
    public var model: String?
    public var passThreshold: Double?

    public init(name: String, type: String, value: String? = nil, ignoreCase: Bool? = nil, pattern: String? = nil, schema: JSON? = nil, min: Int? = nil, max: Int? = nil, maxMs: Double? = nil, maxUSD: Double? = nil, rubric: Rubric? = nil, prompt: String? = nil, provider: String? = nil, model: String? = nil, passThreshold: Double? = nil) {
        self.name = name
        self.type = type
        self.value = value
        self.ignoreCase = ignoreCase
        self.pattern = pattern
        self.schema = schema
        self.min = min
        self.max = max
        self.maxMs = maxMs
        self.maxUSD = maxUSD
        self.rubric = rubric
        self.prompt = prompt
        self.provider = provider
        self.model = model
        self.passThreshold = passThreshold
    }

    enum CodingKeys: String, CodingKey { case name, type, value, ignoreCase, pattern, schema, min, max, maxMs, maxUSD, rubric, prompt, provider, model, passThreshold }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        type = try c.decode(String.self, forKey: .type)
        value = try c.decodeIfPresent(String.self, forKey: .value)
        ignoreCase = try c.decodeIfPresent(Bool.self, forKey: .ignoreCase)
        pattern = try c.decodeIfPresent(String.self, forKey: .pattern)
        schema = try c.decodeIfPresent(JSON.self, forKey: .schema)
        min = try c.decodeCheckedInt(.min, field: "evaluator.min")
        max = try c.decodeCheckedInt(.max, field: "evaluator.max")
        maxMs = try c.decodeIfPresent(Double.self, forKey: .maxMs)
        maxUSD = try c.decodeIfPresent(Double.self, forKey: .maxUSD)
        rubric = try c.decodeIfPresent(Rubric.self, forKey: .rubric)
        prompt = try c.decodeIfPresent(String.self, forKey: .prompt)
        provider = try c.decodeIfPresent(String.self, forKey: .provider)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        passThreshold = try c.decodeIfPresent(Double.self, forKey: .passThreshold)
    }

    public static let heuristicTypes: Set<String> = ["exact_match", "contains", "regex", "json_valid", "json_schema", "length", "latency", "cost", "refusal", "pii", "secrets", "tool_call"]

    var isJudge: Bool { type == "judge" }

    /// Deterministic text of the definition (part of the result-cache key).
    var canonical: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? name
    }

    /// Bounds of the numeric fields (a definition outside them is refused when stored, with the
    /// field's name; evaluation converts nothing that was not checked here).
    static let maxLengthBound = 100_000_000
    static let maxLatencyMs = 1e10
    static let maxCostUSD = 1e9
    static let maxTextBytes = 100_000
    static let maxSchemaBytes = 256 << 10

    /// Checks the definition without building it (providers are checked at build time): names and
    /// texts bounded, every number finite and in its range, the regex and the schema usable.
    func validate() throws(EvaluationError) {
        guard !name.isEmpty, name.count <= 100 else { throw .invalidArgument("evaluator.name: 1–100 characters expected") }
        guard Self.heuristicTypes.contains(type) || type == "judge" || type == "custom" else {
            throw .invalidArgument("evaluator.type: '\(type.prefix(40))' is not one of \((Self.heuristicTypes.sorted() + ["judge", "custom"]).joined(separator: ", "))")
        }
        for (field, text) in [("value", value), ("prompt", prompt), ("model", model), ("provider", provider)] {
            if let t = text, t.utf8.count > Self.maxTextBytes { throw .invalidArgument("evaluator.\(field): at most \(Self.maxTextBytes) bytes, got \(t.utf8.count)") }
        }
        if let v = min, !(0...Self.maxLengthBound).contains(v) { throw .invalidArgument("evaluator.min: expected 0…\(Self.maxLengthBound), got \(v)") }
        if let v = max, !(0...Self.maxLengthBound).contains(v) { throw .invalidArgument("evaluator.max: expected 0…\(Self.maxLengthBound), got \(v)") }
        if let lo = min, let hi = max, lo > hi { throw .invalidArgument("evaluator.min: \(lo) is above evaluator.max \(hi)") }
        if let v = maxMs, !(v.isFinite && v >= 0 && v <= Self.maxLatencyMs) {
            throw .invalidArgument("evaluator.maxMs: expected a number of milliseconds in 0…\(Checked.text(Self.maxLatencyMs)), got \(Checked.text(v))")
        }
        if let v = maxUSD, !(v.isFinite && v >= 0 && v <= Self.maxCostUSD) {
            throw .invalidArgument("evaluator.maxUSD: expected a number of dollars in 0…\(Checked.text(Self.maxCostUSD)), got \(Checked.text(v))")
        }
        if let v = passThreshold, !(v.isFinite && (0...1).contains(v)) { throw .invalidArgument("evaluator.passThreshold: expected 0…1, got \(Checked.text(v))") }
        if let p = pattern {
            do { _ = try BoundedRegex(p) } catch { throw .invalidArgument("evaluator.pattern: \(error.message)") }
        }
        if let schema {
            let size = schema.text.utf8.count
            guard size <= Self.maxSchemaBytes else { throw .invalidArgument("evaluator.schema: at most \(Self.maxSchemaBytes) bytes of JSON, got \(size)") }
            try JSONSchemaValidator.checkDefinition(schema, field: "evaluator.schema")
        }
        if type == "judge" {
            guard rubric != nil || !(prompt ?? "").isEmpty else { throw .invalidArgument("evaluator '\(name)': a judge needs a rubric (\(Rubric.allCases.map(\.rawValue).joined(separator: ", "))) or a prompt") }
            guard let p = provider, !p.isEmpty else { throw .invalidArgument("evaluator '\(name)': a judge needs a provider (the name of a provider created with POST /api/providers)") }
        }
    }

    /// Builds the evaluator; `providers` resolves a judge's provider by name.
    func build(version: Int, providers: (String) -> ProviderClient?) throws -> any Evaluator {
        try validate()
        func need<T>(_ v: T?, _ field: String) throws -> T {
            guard let v else { throw EvaluationError.invalidArgument("evaluator '\(name)' (\(type)): '\(field)' is required") }
            return v
        }
        let check: Heuristic.Check
        switch type {
        case "exact_match": check = .exactMatch(value: value, ignoreCase: ignoreCase ?? false)
        case "contains": check = .contains(value: value, ignoreCase: ignoreCase ?? false)
        case "regex":
            let p = try need(pattern, "pattern")
            do { check = .regex(try BoundedRegex(p)) } catch { throw EvaluationError.invalidArgument("evaluator.pattern: \(error.message)") }
        case "json_valid": check = .jsonValid
        case "json_schema": check = .jsonSchema(try JSONSchemaValidator(schema: try need(schema, "schema")))
        case "length":
            guard min != nil || max != nil else { throw EvaluationError.invalidArgument("evaluator '\(name)' (length): 'min' or 'max' is required") }
            check = .length(min: min, max: max)
        case "latency": check = .latency(maxMs: try need(maxMs, "maxMs"))
        case "cost": check = .cost(maxUSD: try need(maxUSD, "maxUSD"))
        case "refusal": check = .refusal
        case "pii": check = .pii
        case "secrets": check = .secrets
        case "tool_call": check = .toolCall
        default:
            let providerName = try need(provider, "provider")
            guard let client = providers(providerName) else { throw EvaluationError.notFound("evaluator '\(name)': no provider named '\(providerName)'; create it with POST /api/providers") }
            return JudgeEvaluator(name: name, version: version, template: prompt.flatMap { $0.isEmpty ? nil : $0 } ?? rubric?.template ?? "", provider: client, model: model, passThreshold: passThreshold ?? 0.7)
        }
        let h = Heuristic(name: name, version: version, check: check)
        return h.matchesUserRegexes ? OffPoolHeuristic(heuristic: h) : h
    }
}
