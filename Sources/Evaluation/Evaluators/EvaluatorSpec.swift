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

    public static let heuristicTypes: Set<String> = ["exact_match", "contains", "regex", "json_valid", "json_schema", "length", "latency", "cost", "refusal", "pii", "secrets", "tool_call"]

    var isJudge: Bool { type == "judge" }

    /// Deterministic text of the definition (part of the result-cache key).
    var canonical: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? name
    }

    /// Checks the definition without building it (providers are checked at build time).
    func validate() throws {
        guard !name.isEmpty, name.count <= 100 else { throw EvaluationError.invalidArgument("evaluator.name: 1–100 characters expected") }
        guard Self.heuristicTypes.contains(type) || type == "judge" || type == "custom" else {
            throw EvaluationError.invalidArgument("evaluator.type: '\(type)' is not one of \((Self.heuristicTypes.sorted() + ["judge"]).joined(separator: ", "))")
        }
        if type == "judge" {
            guard rubric != nil || !(prompt ?? "").isEmpty else { throw EvaluationError.invalidArgument("evaluator '\(name)': a judge needs a rubric (\(Rubric.allCases.map(\.rawValue).joined(separator: ", "))) or a prompt") }
            guard let p = provider, !p.isEmpty else { throw EvaluationError.invalidArgument("evaluator '\(name)': a judge needs a provider (the name of a provider created with POST /api/providers)") }
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
            do { check = .regex(NSRegularExpressionBox(try NSRegularExpression(pattern: p)), pattern: p) } catch {
                throw EvaluationError.invalidArgument("evaluator '\(name)': pattern '\(p)' is not a valid regular expression")
            }
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
        return Heuristic(name: name, version: version, check: check)
    }
}
