import Foundation

/// What the mock will answer to one request, decided deterministically before rendering it in a
/// provider's format: text chunks or a tool call, token usage, finish reason, fault.
struct AnswerPlan {
    enum Fault: String { case none, rateLimited = "429", serverError = "500", overloaded = "529", cut, malformed }

    var model: String
    var stream: Bool
    var chunks: [String] = []
    var toolCall: (id: String, name: String, arguments: String)?
    var inputTokens: Int
    var outputTokens: Int
    var cachedTokens: Int
    var reasoningTokens: Int
    var truncated: Bool
    var fault: Fault
    var ttftMs: Double
    var id: String
    var includeUsage: Bool

    var text: String { chunks.joined() }
}

/// A request the mock refuses, in the provider's terms.
struct MockRequestError: Error {
    let status: Int
    let message: String
}

enum Planner {
    /// Builds the plan from a parsed request. `messages` are (role, text) pairs; `tools` are
    /// (name, JSON schema); `lastIsToolResult` says whether the conversation awaits a final answer.
    static func plan(
        body: [UInt8], object o: [String: Any], messages: [(String, String)], tools: [(String, Any?)],
        forcedTool: String?, toolsDisabled: Bool, lastIsToolResult: Bool, maxTokens: Int?, jsonMode: Bool,
        headers: (String) -> String?, configuration c: MockLLMConfiguration, idPrefix: String, sequence: UInt64
    ) throws -> AnswerPlan {
        guard let model = o["model"] as? String, !model.isEmpty else { throw MockRequestError(status: 400, message: "'model' is required and must be a non-empty string") }
        let seed = headers("x-mock-seed").flatMap(UInt64.init) ?? c.seed
        // The same conversation gives the same answer streamed or not: hash the request without
        // its streaming options.
        var canonical = o
        canonical.removeValue(forKey: "stream")
        canonical.removeValue(forKey: "stream_options")
        var rng = MockRNG(seed: seed, body: Array(Generator.json(canonical).utf8))
        let promptText = messages.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
        let input = Generator.tokens(promptText) + 3 * messages.count + tools.reduce(0) { $0 + Generator.tokens($1.0) + 20 }
        let cached = headers("x-mock-cached-tokens").flatMap(Int.init).map { min($0, input) } ?? Generator.cachedTokens(input: input)

        // Fault: a header forces it; otherwise the configured rates decide.
        var fault = AnswerPlan.Fault.none
        if let f = headers("x-mock-fault") {
            guard let parsed = AnswerPlan.Fault(rawValue: f) else {
                throw MockRequestError(status: 400, message: "x-mock-fault '\(f)': expected 429, 500, 529, cut or malformed")
            }
            fault = parsed
        } else {
            // Fault draws follow the request sequence (seeded), so a retried request can succeed.
            var faultRNG = MockRNG(seed: seed, body: withUnsafeBytes(of: sequence.littleEndian) { Array($0) })
            let u = faultRNG.unit()
            let r = c.faults
            if u < r.rate429 { fault = .rateLimited }
            else if u < r.rate429 + r.rate500 { fault = .serverError }
            else if u < r.rate429 + r.rate500 + r.rate529 { fault = .overloaded }
            else if u < r.rate429 + r.rate500 + r.rate529 + r.rateStreamCut { fault = .cut }
        }

        let ttft = headers("x-mock-latency-ms").flatMap(Double.init) ?? c.latency.sample(rng.unit(), rng.unit())
        let stream = (o["stream"] as? Bool) ?? false
        var plan = AnswerPlan(
            model: model, stream: stream, inputTokens: input, outputTokens: 0, cachedTokens: cached, reasoningTokens: 0,
            truncated: false, fault: fault, ttftMs: max(0, ttft), id: idPrefix + rng.hex(24),
            includeUsage: ((o["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false)

        if !tools.isEmpty && !toolsDisabled && !lastIsToolResult {
            let chosen = forcedTool.flatMap { name in tools.first { $0.0 == name } } ?? tools[Int(rng.next() % UInt64(tools.count))]
            let args = Generator.json(Generator.arguments(schema: chosen.1, &rng))
            plan.toolCall = (id: "call_" + rng.hex(24), name: chosen.0, arguments: args)
            plan.outputTokens = Generator.tokens(chosen.0) + Generator.tokens(args) + 5
            return plan
        }
        let limit = max(1, min(maxTokens ?? 4096, 4096))
        var wanted = rng.int(12...60)
        if jsonMode {
            let answer = Generator.jsonAnswer(prompt: promptText, &rng)
            // Stream JSON in small pieces.
            var pieces: [String] = []
            var current = ""
            for ch in answer {
                current.append(ch)
                if current.count >= 6 { pieces.append(current); current = "" }
            }
            if !current.isEmpty { pieces.append(current) }
            plan.chunks = pieces
            wanted = Generator.tokens(answer)
        } else {
            plan.chunks = Generator.sentences(min(wanted, limit), &rng)
            plan.truncated = wanted > limit
        }
        let visible = jsonMode ? wanted : plan.chunks.count
        plan.reasoningTokens = Generator.isReasoningModel(model) ? visible * 2 : 0
        plan.outputTokens = visible + plan.reasoningTokens
        return plan
    }
}
