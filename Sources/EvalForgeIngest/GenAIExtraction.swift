import EvalForgeCore
import EvalForgeModel

/// An attribute value as the normalizer reads it, whether decoded or still on the wire.
package protocol GenAIAttributeValue {
    /// The string, or "" when the value is not a string.
    var stringValue: String { get }
    /// Whether the value is an int or a double (of any magnitude, NaN and infinities included).
    var isNumber: Bool { get }
    /// Integer value of an int, a whole double, or a numeric string (some instrumentations send strings).
    var intLike: Int? { get }
    var doubleLike: Double? { get }
}

/// The ranges a span's GenAI figures must be in to be stored as sent. Outside them a token count is
/// clamped, a cost counts as unknown and a time to first chunk is dropped, and the attribute holding
/// the value is replaced by a canonical one with the clamped value (or removed), so nothing that would
/// overflow a sum or break a page downstream reaches the WAL or the stores.
public enum GenAILimits {
    /// Tokens of one call (a million times today's largest context windows).
    public static let maxTokens = 1_000_000_000_000
    /// USD of one call.
    public static let maxCostUSD = 1_000_000_000.0
    /// Seconds to the first chunk of one call (a day).
    public static let maxTimeToFirstChunkSeconds = 86_400.0
}

/// What the normalizer gathers from one span's attributes, and the rules that turn it into one
/// model (shared by the decoded-message and the wire paths, so both give the same result).
package struct GenAIExtraction {
    package init() {}
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

    /// One attribute, in span order (later values of the same key win). Returns true when the
    /// attribute must be removed from the span: a deprecated name, or a canonical figure whose
    /// value is out of range (`GenAILimits`) or not a number — its sane value, if any, is written
    /// back under the canonical name by `complete`.
    package mutating func take(_ role: GenAIAttributeRole, _ v: some GenAIAttributeValue) -> Bool {
        var insane = false
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
        case .inputTokens: (input, insane) = Self.tokens(v)
        case .promptTokensAlias: if input == nil { input = Self.tokens(v).0 }; drop = true
        case .outputTokens: (output, insane) = Self.tokens(v)
        case .completionTokensAlias: if output == nil { output = Self.tokens(v).0 }; drop = true
        case .totalTokens: total = Self.tokens(v).0
        case .cacheRead: (cacheRead, insane) = Self.tokens(v)
        case .cacheReadAlias: if cacheRead == nil { cacheRead = Self.tokens(v).0 }
        case .cacheCreation: (cacheCreation, insane) = Self.tokens(v)
        case .cacheCreationAlias: if cacheCreation == nil { cacheCreation = Self.tokens(v).0 }
        case .reasoning: (reasoning, insane) = Self.tokens(v)
        case .reasoningAlias: if reasoning == nil { reasoning = Self.tokens(v).0 }
        case .costUSD: (cost, insane) = Self.cost(v)
        case .costAlias: if cost == nil { cost = Self.cost(v).0 }
        case .timeToFirstChunk: (ttft, insane) = Self.ttft(v)
        case .userID: userID = v.stringValue
        case .userAlias: if userID.isEmpty { userID = v.stringValue }
        case .sessionID: sessionID = v.stringValue
        case .sessionAlias: if sessionID.isEmpty { sessionID = v.stringValue }
        case .inputMessages, .outputMessages: break
        case .errorType: hasErrorType = true
        }
        // A rewritten canonical figure is added again (clamped), so it must not count as present.
        if role.isCanonical {
            if insane { canonical &= ~role.bit } else { canonical |= role.bit }
        }
        return insane
    }

    /// A token count clamped into 0…`maxTokens` (nil: not a number), and whether the value was
    /// anything else than such a count (a negative, a fraction, a huge or non-finite number, a
    /// string or bool that is not one): the attribute is then rewritten.
    static func tokens(_ v: some GenAIAttributeValue) -> (Int?, Bool) {
        if let i = v.intLike {
            let c = Swift.min(Swift.max(i, 0), GenAILimits.maxTokens)
            // A fraction (`intLike` truncates it) is rewritten as the whole count the facts use.
            let whole = !v.isNumber || v.doubleLike == Double(i)
            return (c, c != i || !whole)
        }
        // A finite double or numeric string beyond `intLike`'s range, or a fractional string: clamped.
        if let d = v.doubleLike {
            let i = d.clampedInteger(Int.self) ?? 0
            return (Swift.min(Swift.max(i, 0), GenAILimits.maxTokens), true)
        }
        return (nil, true)
    }

    /// A cost in 0…`maxCostUSD` (nil: unknown), and whether the value was anything else.
    static func cost(_ v: some GenAIAttributeValue) -> (Double?, Bool) {
        guard let d = v.doubleLike, d >= 0, d <= GenAILimits.maxCostUSD else { return (nil, true) }
        return (d, false)
    }

    /// A time to first chunk in 0…`maxTimeToFirstChunkSeconds` seconds (nil: dropped), and whether
    /// the value was anything else.
    static func ttft(_ v: some GenAIAttributeValue) -> (Double?, Bool) {
        guard let d = v.doubleLike, d >= 0, d <= GenAILimits.maxTimeToFirstChunkSeconds else { return (nil, true) }
        return (d, false)
    }

    /// Keys not in the role table: OpenLLMetry / OpenInference indexed messages.
    /// Prefixes of indexed message-part keys (`gen_ai.prompt.0.content`, `llm.input_messages.0.message.role`, …).
    package static let messagePartPrefixes = ["gen_ai.prompt.", "llm.input_messages.", "gen_ai.completion.", "llm.output_messages."]

    package static func isMessagePart(_ key: String) -> Bool {
        messagePartPrefixes.contains { key.hasPrefix($0) }
    }

    package mutating func takeMessagePart(_ key: String, _ value: String) {
        if key.hasPrefix("gen_ai.prompt.") || key.hasPrefix("llm.input_messages.") {
            GenAINormalizer.collectMessage(key, value, into: &prompts)
        } else if key.hasPrefix("gen_ai.completion.") || key.hasPrefix("llm.output_messages.") {
            GenAINormalizer.collectMessage(key, value, into: &completions)
        }
    }

    /// A value the normalizer adds to the span.
    package enum Added {
        case string(String)
        case int(Int64)
        case double(Double)
        case bool(Bool)
    }

    /// Applies the cross-attribute rules (provider from the legacy system, operation, token
    /// accounting, cost from the price table) and returns the attributes to append, canonical
    /// names only, skipping those the span already has.
    /// `startUnixNanos` picks the price in force when the span started (0: the current price).
    package mutating func complete(priceTable: PriceTable, prices: inout GenAINormalizer.PriceCache, startUnixNanos: UInt64) -> [(key: String, value: Added)] {
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
        // Every figure is within 0…maxTokens here, so these sums cannot overflow.
        if input == nil, let total, let output { input = Swift.max(0, total - output) }
        if provider == "anthropic", let i = input, (cacheRead ?? 0) + (cacheCreation ?? 0) > i {
            input = Swift.min(i + (cacheRead ?? 0) + (cacheCreation ?? 0), GenAILimits.maxTokens)
        }
        usage = TokenUsage(input: input, output: output, cacheRead: cacheRead, cacheCreation: cacheCreation, reasoning: reasoning)
        switch operation {
        case "chat", "text_completion", "generate_content", "embeddings", "completion": isLLMCall = true
        default: isLLMCall = !model.isEmpty && operation.isEmpty
        }
        if cost == nil, isLLMCall, !usage.isEmpty {
            let name = responseModel.isEmpty ? model : responseModel
            let history: [DatedPrice]?
            if let cached = prices.prices[name] {
                history = cached
            } else {
                history = priceTable.history(for: name)
                if prices.prices.count < 1024 { prices.prices[name] = history }
            }
            let price = history.flatMap { PriceTable.price(in: $0, atUnixNanos: startUnixNanos) }
            cost = price.flatMap { PriceTable.cost(price: $0, usage: usage) }.flatMap { $0.isFinite && $0 >= 0 && $0 <= GenAILimits.maxCostUSD ? $0 : nil }
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

    package func facts(traceID: TraceID, spanID: UInt64, parentSpanID: UInt64, resource: ResourceInfo, statusIsError: Bool, start: UInt64, end: UInt64) -> SpanFacts {
        SpanFacts(
            traceID: traceID, spanID: spanID, parentSpanID: parentSpanID,
            project: resource.project, service: resource.service,
            provider: provider, model: model.isEmpty ? responseModel : model, operation: operation,
            isLLMCall: isLLMCall, isError: statusIsError || hasErrorType,
            startUnixNanos: start, endUnixNanos: end,
            usage: usage, costUSD: cost, timeToFirstChunkSeconds: ttft)
    }
}
