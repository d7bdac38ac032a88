/// What the mock answers to one request, decided deterministically from (seed, request) before it is
/// rendered in a provider's format: text chunks or a tool call, token usage, finish reason, latency,
/// fault.
struct AnswerPlan {
    enum Content {
        /// Text, one chunk per output token.
        case text([String])
        /// `input` is the arguments object; `arguments` its JSON text.
        case toolCall(id: String, name: String, input: JSONValue, arguments: String)
    }

    enum Finish {
        case stop
        case length
        case toolCalls
    }

    var id: String
    var model: String
    var stream: Bool
    var includeUsage: Bool
    var content: Content
    var finish: Finish
    var inputTokens: Int
    var cachedTokens: Int
    /// All generated tokens, reasoning included (OpenAI `completion_tokens`, Anthropic `output_tokens`).
    var outputTokens: Int
    var reasoningTokens: Int
    var fault: MockFault?
    var ttftMs: Double
    var interChunkDelay: Duration
    /// Seeds the provider-specific ids (tool call ids, request ids).
    var idSeed: UInt64

    var text: String {
        if case .text(let chunks) = content { return chunks.joined() }
        return ""
    }
}

enum Planner {
    /// Longest answer when the request sets no limit.
    static let defaultMaxTokens = 4096

    static func plan(
        _ request: ChatRequest, overrides: RequestOverrides, configuration c: MockLLMConfiguration,
        faults: FaultInjector, idPrefix: String
    ) throws -> AnswerPlan {
        let seed = overrides.seed ?? c.seed
        let hash = request.contentHash
        var rng = MockRNG(seed: seed, body: withUnsafeBytes(of: hash.littleEndian) { Array($0) })

        let input = TokenCounter.promptTokens(messages: request.messages, tools: request.tools)
        let cached = min(overrides.cachedTokens ?? TokenCounter.cachedTokens(input: input), input)
        let ttft = overrides.latencyMs ?? c.latency.sample(rng.unit(), rng.unit())
        let gap = overrides.interTokenMs.map { Duration.milliseconds($0) } ?? c.interChunkDelay
        let id = idPrefix + (idPrefix == "msg_" ? "01" + rng.base62(22) : rng.base62(29))
        let idSeed = rng.next()

        var plan = AnswerPlan(
            id: id, model: request.model, stream: request.stream, includeUsage: request.includeUsage,
            content: .text([]), finish: .stop, inputTokens: input, cachedTokens: cached, outputTokens: 0,
            reasoningTokens: 0, fault: faults.fault(forced: overrides.fault, seed: seed, requestHash: hash),
            ttftMs: max(0, ttft), interChunkDelay: gap, idSeed: idSeed)

        let limit = max(1, request.maxTokens ?? defaultMaxTokens)
        if request.awaitsToolCall, request.toolChoice != .none, !request.tools.isEmpty {
            let forced: String?
            switch request.toolChoice {
            case .named(let name): forced = name
            case .required: forced = request.tools.first?.name
            default: forced = nil
            }
            if let tool = ToolCallSynthesizer.choose(request.tools, forced: forced, &rng) {
                let input = ToolCallSynthesizer.arguments(for: tool, &rng)
                let arguments = input.text
                plan.content = .toolCall(id: rng.base62(24), name: tool.name, input: input, arguments: arguments)
                plan.finish = .toolCalls
                plan.outputTokens = 8 + TokenCounter.tokens(tool.name) + TokenCounter.tokens(arguments)
                return plan
            }
        }

        let reasoning = TokenCounter.isReasoningModel(request.model)
        var chunks: [String]
        if request.jsonMode {
            let prompt = request.messages.map(\.text).joined(separator: "\n")
            chunks = pieces(TextGenerator.jsonAnswer(prompt: prompt, &rng), size: 4)
        } else {
            chunks = TextGenerator.tokens(rng.int(10...50), &rng)
        }
        // Reasoning models spend twice the visible tokens thinking; all of it counts against the limit.
        var visible = chunks.count
        var thinking = reasoning ? 2 * visible : 0
        if visible + thinking > limit {
            plan.finish = .length
            visible = reasoning ? max(1, limit / 3) : limit
            thinking = reasoning ? max(0, limit - visible) : 0
            chunks.removeLast(max(0, chunks.count - visible))
        }
        plan.content = .text(chunks)
        plan.reasoningTokens = thinking
        plan.outputTokens = visible + thinking
        return plan
    }

    /// `text` in pieces of `size` characters (one token each).
    static func pieces(_ text: String, size: Int) -> [String] {
        var out: [String] = []
        var current = ""
        for ch in text {
            current.append(ch)
            if current.count >= size {
                out.append(current)
                current = ""
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}
