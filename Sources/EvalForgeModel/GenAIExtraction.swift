import EvalForgeCore

/// An attribute value as the normalizer reads it, whether decoded or still on the wire.
protocol GenAIAttributeValue {
    /// The string, or "" when the value is not a string.
    var stringValue: String { get }
    /// Integer value of an int, a whole double, or a numeric string (some instrumentations send strings).
    var intLike: Int? { get }
    var doubleLike: Double? { get }
}

/// What the normalizer gathers from one span's attributes, and the rules that turn it into one
/// model (shared by the decoded-message and the wire paths, so both give the same result).
struct GenAIExtraction {
    var provider = ""
    var legacySystem = ""
    var model = ""
    var responseModel = ""
    var operation = ""
    var input: Int?
    var output: Int?
    var cacheRead: Int?
    var cacheCreation: Int?
    var reasoning: Int?
    var total: Int?
    var cost: Double?
    var ttft: Double?
    /// Bits of the canonical roles present (`GenAIAttributeRole.bit`).
    var canonical: UInt64 = 0
    var openInferenceKind = ""
    var userID = ""
    var sessionID = ""
    var prompts: [Int: (role: String, content: String)] = [:]
    var completions: [Int: (role: String, content: String)] = [:]
    /// Deprecated names seen: they are removed once the canonical ones are written.
    var drop = false
    var hasErrorType = false
    var isLLMCall = false
    var usage = TokenUsage()

    /// One attribute, in span order (later values of the same key win).
    mutating func take(_ role: GenAIAttributeRole, _ v: some GenAIAttributeValue) {
        if role.isCanonical { canonical |= role.bit }
        switch role {
        case .providerName: provider = v.stringValue
        case .system: legacySystem = v.stringValue; drop = true
        case .llmProvider: if provider.isEmpty { provider = v.stringValue }
        case .llmSystem: if legacySystem.isEmpty { legacySystem = v.stringValue }
        case .requestModel: model = v.stringValue
        case .modelAlias: if model.isEmpty { model = v.stringValue }
        case .responseModel: responseModel = v.stringValue
        case .responseModelAlias: if responseModel.isEmpty { responseModel = v.stringValue }
        case .operationName: operation = v.stringValue
        case .llmRequestType: if operation.isEmpty { operation = GenAINormalizer.operation(fromRequestType: v.stringValue) }
        case .openInferenceKind: openInferenceKind = v.stringValue.uppercased()
        case .inputTokens: input = v.intLike
        case .promptTokensAlias: if input == nil { input = v.intLike }; drop = true
        case .outputTokens: output = v.intLike
        case .completionTokensAlias: if output == nil { output = v.intLike }; drop = true
        case .totalTokens: total = v.intLike
        case .cacheRead: cacheRead = v.intLike
        case .cacheReadAlias: if cacheRead == nil { cacheRead = v.intLike }
        case .cacheCreation: cacheCreation = v.intLike
        case .cacheCreationAlias: if cacheCreation == nil { cacheCreation = v.intLike }
        case .reasoning: reasoning = v.intLike
        case .reasoningAlias: if reasoning == nil { reasoning = v.intLike }
        case .costUSD: cost = v.doubleLike
        case .costAlias: if cost == nil { cost = v.doubleLike }
        case .timeToFirstChunk: ttft = v.doubleLike
        case .userID: userID = v.stringValue
        case .userAlias: if userID.isEmpty { userID = v.stringValue }
        case .sessionID: sessionID = v.stringValue
        case .sessionAlias: if sessionID.isEmpty { sessionID = v.stringValue }
        case .inputMessages, .outputMessages: break
        case .errorType: hasErrorType = true
        }
    }

    /// Keys not in the role table: OpenLLMetry / OpenInference indexed messages.
    /// Prefixes of indexed message-part keys (`gen_ai.prompt.0.content`, `llm.input_messages.0.message.role`, …).
    static let messagePartPrefixes = ["gen_ai.prompt.", "llm.input_messages.", "gen_ai.completion.", "llm.output_messages."]

    static func isMessagePart(_ key: String) -> Bool {
        messagePartPrefixes.contains { key.hasPrefix($0) }
    }

    mutating func takeMessagePart(_ key: String, _ value: String) {
        if key.hasPrefix("gen_ai.prompt.") || key.hasPrefix("llm.input_messages.") {
            GenAINormalizer.collectMessage(key, value, into: &prompts)
        } else if key.hasPrefix("gen_ai.completion.") || key.hasPrefix("llm.output_messages.") {
            GenAINormalizer.collectMessage(key, value, into: &completions)
        }
    }

    /// A value the normalizer adds to the span.
    enum Added {
        case string(String)
        case int(Int64)
        case double(Double)
        case bool(Bool)
    }

    /// Applies the cross-attribute rules (provider from the legacy system, operation, token
    /// accounting, cost from the price table) and returns the attributes to append, canonical
    /// names only, skipping those the span already has.
    mutating func complete(priceTable: PriceTable, prices: inout GenAINormalizer.PriceCache) -> [(key: String, value: Added)] {
        if provider.isEmpty { provider = GenAINormalizer.provider(fromSystem: legacySystem) }
        if operation.isEmpty {
            switch openInferenceKind {
            case "LLM": operation = "chat"
            case "EMBEDDING": operation = "embeddings"
            case "TOOL": operation = "execute_tool"
            case "AGENT": operation = "invoke_agent"
            case "RETRIEVER": operation = "retrieval"
            default: if !model.isEmpty { operation = "chat" }
            }
        }
        if input == nil, let total, let output { input = Swift.max(0, total - output) }
        if provider == "anthropic", let i = input, (cacheRead ?? 0) + (cacheCreation ?? 0) > i {
            input = i + (cacheRead ?? 0) + (cacheCreation ?? 0)
        }
        usage = TokenUsage(input: input, output: output, cacheRead: cacheRead, cacheCreation: cacheCreation, reasoning: reasoning)
        switch operation {
        case "chat", "text_completion", "generate_content", "embeddings", "completion": isLLMCall = true
        default: isLLMCall = !model.isEmpty && operation.isEmpty
        }
        if cost == nil, isLLMCall, !usage.isEmpty {
            let name = responseModel.isEmpty ? model : responseModel
            let price: ModelPrice?
            if let cached = prices.prices[name] {
                price = cached
            } else {
                price = priceTable.price(for: name)
                if prices.prices.count < 1024 { prices.prices[name] = price }
            }
            cost = price.flatMap { PriceTable.cost(price: $0, usage: usage) }
        }

        var out: [(key: String, value: Added)] = []
        func put(_ role: GenAIAttributeRole?, _ key: String, _ value: Added) {
            if let role, canonical & role.bit != 0 { return }
            out.append((key, value))
        }
        if !provider.isEmpty { put(.providerName, GenAIKeys.providerName, .string(provider)) }
        if !model.isEmpty { put(.requestModel, GenAIKeys.requestModel, .string(model)) }
        if !responseModel.isEmpty { put(.responseModel, GenAIKeys.responseModel, .string(responseModel)) }
        if !operation.isEmpty { put(.operationName, GenAIKeys.operationName, .string(operation)) }
        if let input { put(.inputTokens, GenAIKeys.usageInputTokens, .int(Int64(input))) }
        if let output { put(.outputTokens, GenAIKeys.usageOutputTokens, .int(Int64(output))) }
        if let cacheRead { put(.cacheRead, GenAIKeys.usageCacheReadInputTokens, .int(Int64(cacheRead))) }
        if let cacheCreation { put(.cacheCreation, GenAIKeys.usageCacheCreationInputTokens, .int(Int64(cacheCreation))) }
        if let reasoning { put(.reasoning, GenAIKeys.usageReasoningOutputTokens, .int(Int64(reasoning))) }
        if let cost { put(.costUSD, GenAIKeys.costUSD, .double(cost)) } else if isLLMCall { put(nil, GenAIKeys.costUnknown, .bool(true)) }
        if !userID.isEmpty { put(.userID, GenAIKeys.userID, .string(userID)) }
        if !sessionID.isEmpty { put(.sessionID, GenAIKeys.sessionID, .string(sessionID)) }
        if !prompts.isEmpty { put(.inputMessages, GenAIKeys.inputMessages, .string(GenAINormalizer.messagesJSON(prompts))) }
        if !completions.isEmpty { put(.outputMessages, GenAIKeys.outputMessages, .string(GenAINormalizer.messagesJSON(completions))) }
        return out
    }

    func facts(traceID: TraceID, spanID: UInt64, parentSpanID: UInt64, resource: ResourceInfo, statusIsError: Bool, start: UInt64, end: UInt64) -> SpanFacts {
        SpanFacts(
            traceID: traceID, spanID: spanID, parentSpanID: parentSpanID,
            project: resource.project, service: resource.service,
            provider: provider, model: model.isEmpty ? responseModel : model, operation: operation,
            isLLMCall: isLLMCall, isError: statusIsError || hasErrorType,
            startUnixNanos: start, endUnixNanos: end,
            usage: usage, costUSD: cost, timeToFirstChunkSeconds: ttft)
    }
}
