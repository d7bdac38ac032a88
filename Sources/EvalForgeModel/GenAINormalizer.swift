import EvalForgeCore
import EvalForgeOTLP

/// Brings spans from any GenAI instrumentation to one model: the current OTel GenAI semantic
/// conventions. Understands
/// - OTel GenAI, current and deprecated names (`gen_ai.system`, `gen_ai.usage.prompt_tokens` /
///   `completion_tokens`);
/// - OpenLLMetry (`gen_ai.prompt.N.*`, `gen_ai.completion.N.*`, `llm.request.type`,
///   `llm.usage.total_tokens`, `gen_ai.usage.cache_read_input_tokens`, `llm.user`);
/// - OpenInference (`llm.provider`, `llm.system`, `llm.model_name`, `llm.token_count.*`,
///   `llm.input_messages.N.message.*`, `openinference.span.kind`).
///
/// Tokens follow `TokenUsage`'s accounting: input includes cached tokens. Anthropic figures that
/// exclude cache reads/writes (input smaller than the cache parts) are summed. Cost is stamped from
/// the versioned price table when the span has none, and marked unknown when the model is not priced.
public struct GenAINormalizer: Sendable {
    public let priceTable: PriceTable

    public init(priceTable: PriceTable = .builtIn) {
        self.priceTable = priceTable
    }

    /// Normalizes `span`'s attributes in place and returns its facts. `resource` gives service and
    /// project; `defaultProject` applies when the resource names none.
    public func normalize(_ span: inout Opentelemetry_Proto_Trace_V1_Span, resource: ResourceInfo) -> SpanFacts? {
        var cache = PriceCache()
        return normalize(&span, resource: resource, prices: &cache)
    }

    /// Model prices already looked up; pass one cache for all the spans of a request so each model's
    /// name is resolved against the table once.
    public struct PriceCache {
        var prices: [String: ModelPrice?] = [:]
        public init() {}
    }

    /// As `normalize(_:resource:)`, reusing `prices` across calls.
    public func normalize(_ span: inout Opentelemetry_Proto_Trace_V1_Span, resource: ResourceInfo, prices: inout PriceCache) -> SpanFacts? {
        guard let traceID = TraceID(bytes: span.traceID), let spanID = SpanID(bytes: span.spanID) else { return nil }
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
        var hasCanonical = Set<String>()
        var openInferenceKind = ""
        var userID = ""
        var sessionID = ""
        var prompts: [Int: (role: String, content: String)] = [:]
        var completions: [Int: (role: String, content: String)] = [:]
        var drop = false

        for kv in span.attributes {
            let key = kv.key
            let v = kv.value
            switch key {
            case GenAIKeys.providerName: provider = v.stringValue; hasCanonical.insert(key)
            case GenAIKeys.system: legacySystem = v.stringValue; drop = true
            case "llm.provider": if provider.isEmpty { provider = v.stringValue }
            case "llm.system", "llm.vendor": if legacySystem.isEmpty { legacySystem = v.stringValue }
            case GenAIKeys.requestModel: model = v.stringValue; hasCanonical.insert(key)
            case "llm.model_name", "llm.request.model": if model.isEmpty { model = v.stringValue }
            case GenAIKeys.responseModel: responseModel = v.stringValue; hasCanonical.insert(key)
            case "llm.response.model": if responseModel.isEmpty { responseModel = v.stringValue }
            case GenAIKeys.operationName: operation = v.stringValue; hasCanonical.insert(key)
            case "llm.request.type": if operation.isEmpty { operation = Self.operation(fromRequestType: v.stringValue) }
            case "openinference.span.kind": openInferenceKind = v.stringValue.uppercased()
            case GenAIKeys.usageInputTokens: input = v.intLike; hasCanonical.insert(key)
            case GenAIKeys.usagePromptTokens, "llm.token_count.prompt", "llm.usage.prompt_tokens": if input == nil { input = v.intLike }; drop = true
            case GenAIKeys.usageOutputTokens: output = v.intLike; hasCanonical.insert(key)
            case GenAIKeys.usageCompletionTokens, "llm.token_count.completion", "llm.usage.completion_tokens": if output == nil { output = v.intLike }; drop = true
            case "llm.usage.total_tokens", "llm.token_count.total", "gen_ai.usage.total_tokens": total = v.intLike
            case GenAIKeys.usageCacheReadInputTokens: cacheRead = v.intLike; hasCanonical.insert(key)
            case "gen_ai.usage.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read": if cacheRead == nil { cacheRead = v.intLike }
            case GenAIKeys.usageCacheCreationInputTokens: cacheCreation = v.intLike; hasCanonical.insert(key)
            case "gen_ai.usage.cache_creation_input_tokens", "llm.token_count.prompt_details.cache_write": if cacheCreation == nil { cacheCreation = v.intLike }
            case GenAIKeys.usageReasoningOutputTokens: reasoning = v.intLike; hasCanonical.insert(key)
            case "llm.token_count.completion_details.reasoning", "gen_ai.usage.reasoning_tokens": if reasoning == nil { reasoning = v.intLike }
            case GenAIKeys.costUSD: cost = v.doubleLike; hasCanonical.insert(key)
            case "gen_ai.usage.cost", "llm.cost.total": if cost == nil { cost = v.doubleLike }
            case GenAIKeys.timeToFirstChunk: ttft = v.doubleLike
            case GenAIKeys.userID: userID = v.stringValue; hasCanonical.insert(key)
            case "llm.user", "enduser.id": if userID.isEmpty { userID = v.stringValue }
            case GenAIKeys.sessionID: sessionID = v.stringValue; hasCanonical.insert(key)
            case "gen_ai.conversation.id": if sessionID.isEmpty { sessionID = v.stringValue }
            case GenAIKeys.inputMessages, GenAIKeys.outputMessages: hasCanonical.insert(key)
            default:
                if key.hasPrefix("gen_ai.prompt.") || key.hasPrefix("llm.input_messages.") {
                    Self.collectMessage(key, v.stringValue, into: &prompts)
                } else if key.hasPrefix("gen_ai.completion.") || key.hasPrefix("llm.output_messages.") {
                    Self.collectMessage(key, v.stringValue, into: &completions)
                }
            }
        }

        if provider.isEmpty { provider = Self.provider(fromSystem: legacySystem) }
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
        let usage = TokenUsage(input: input, output: output, cacheRead: cacheRead, cacheCreation: cacheCreation, reasoning: reasoning)
        let isLLMCall = ["chat", "text_completion", "generate_content", "embeddings", "completion"].contains(operation) || (!model.isEmpty && operation.isEmpty)
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

        // Rewrite attributes: canonical names first, aliases replaced.
        var attrs = span.attributes
        if drop {
            attrs.removeAll { [GenAIKeys.system, GenAIKeys.usagePromptTokens, GenAIKeys.usageCompletionTokens].contains($0.key) }
        }
        func put(_ key: String, _ value: Opentelemetry_Proto_Common_V1_AnyValue.OneOf_Value) {
            guard !hasCanonical.contains(key) else { return }
            var kv = Opentelemetry_Proto_Common_V1_KeyValue()
            kv.key = key
            kv.value.value = value
            attrs.append(kv)
        }
        if !provider.isEmpty { put(GenAIKeys.providerName, .stringValue(provider)) }
        if !model.isEmpty { put(GenAIKeys.requestModel, .stringValue(model)) }
        if !responseModel.isEmpty { put(GenAIKeys.responseModel, .stringValue(responseModel)) }
        if !operation.isEmpty { put(GenAIKeys.operationName, .stringValue(operation)) }
        if let input { put(GenAIKeys.usageInputTokens, .intValue(Int64(input))) }
        if let output { put(GenAIKeys.usageOutputTokens, .intValue(Int64(output))) }
        if let cacheRead { put(GenAIKeys.usageCacheReadInputTokens, .intValue(Int64(cacheRead))) }
        if let cacheCreation { put(GenAIKeys.usageCacheCreationInputTokens, .intValue(Int64(cacheCreation))) }
        if let reasoning { put(GenAIKeys.usageReasoningOutputTokens, .intValue(Int64(reasoning))) }
        if let cost { put(GenAIKeys.costUSD, .doubleValue(cost)) } else if isLLMCall { put(GenAIKeys.costUnknown, .boolValue(true)) }
        if !userID.isEmpty { put(GenAIKeys.userID, .stringValue(userID)) }
        if !sessionID.isEmpty { put(GenAIKeys.sessionID, .stringValue(sessionID)) }
        if !prompts.isEmpty { put(GenAIKeys.inputMessages, .stringValue(Self.messagesJSON(prompts))) }
        if !completions.isEmpty { put(GenAIKeys.outputMessages, .stringValue(Self.messagesJSON(completions))) }
        if attrs.count != span.attributes.count || drop { span.attributes = attrs }

        var errorFlag = span.status.code == .error
        if !errorFlag, span.attributes.contains(where: { $0.key == GenAIKeys.errorType }) { errorFlag = true }
        return SpanFacts(
            traceID: traceID, spanID: spanID.value,
            parentSpanID: SpanID(bytes: span.parentSpanID)?.value ?? 0,
            project: resource.project, service: resource.service,
            provider: provider, model: model.isEmpty ? responseModel : model, operation: operation,
            isLLMCall: isLLMCall, isError: errorFlag,
            startUnixNanos: span.startTimeUnixNano, endUnixNanos: span.endTimeUnixNano,
            usage: usage, costUSD: cost, timeToFirstChunkSeconds: ttft)
    }

    static func provider(fromSystem s: String) -> String {
        switch s.lowercased() {
        case "": return ""
        case "openai": return "openai"
        case "anthropic": return "anthropic"
        case "az.ai.openai", "azure_openai", "azure.openai", "azure": return "azure.ai.openai"
        case "aws.bedrock", "bedrock", "aws_bedrock": return "aws.bedrock"
        case "vertex_ai", "vertexai", "gcp.vertex_ai": return "gcp.vertex_ai"
        case "gemini", "google", "gcp.gemini", "google_genai": return "gcp.gemini"
        case "mistralai", "mistral", "mistral_ai": return "mistral_ai"
        case "cohere": return "cohere"
        case "groq": return "groq"
        case "deepseek": return "deepseek"
        case "xai", "x_ai": return "x_ai"
        case "ollama": return "ollama"
        default: return s.lowercased()
        }
    }

    static func operation(fromRequestType t: String) -> String {
        switch t.lowercased() {
        case "chat": return "chat"
        case "completion": return "text_completion"
        case "embedding", "embeddings": return "embeddings"
        case "rerank": return "rerank"
        default: return t.lowercased()
        }
    }

    /// `gen_ai.prompt.0.role` / `llm.input_messages.0.message.content` → messages[0].
    static func collectMessage(_ key: String, _ value: String, into messages: inout [Int: (role: String, content: String)]) {
        let parts = key.split(separator: ".")
        guard let idx = parts.lazy.compactMap({ Int($0) }).first, idx < 1000 else { return }
        var m = messages[idx] ?? (role: "", content: "")
        if key.hasSuffix(".role") { m.role = value } else if key.hasSuffix(".content") { m.content = value } else { return }
        messages[idx] = m
    }

    static func messagesJSON(_ messages: [Int: (role: String, content: String)]) -> String {
        var out = "["
        for (n, i) in messages.keys.sorted().enumerated() {
            let m = messages[i]!
            if n > 0 { out += "," }
            out += "{\"role\":\(JSONString.quote(m.role.isEmpty ? "user" : m.role)),\"parts\":[{\"type\":\"text\",\"content\":\(JSONString.quote(m.content))}]}"
        }
        return out + "]"
    }
}

/// Service and project of a resource.
public struct ResourceInfo: Sendable, Hashable {
    public var service: String
    public var project: String

    public init(service: String, project: String) {
        self.service = service
        self.project = project
    }

    public init(_ resource: Opentelemetry_Proto_Resource_V1_Resource, defaultProject: String) {
        var service = "unknown_service"
        var project = defaultProject
        for kv in resource.attributes {
            if kv.key == "service.name" { service = kv.value.stringValue }
            else if kv.key == GenAIKeys.project, !kv.value.stringValue.isEmpty { project = kv.value.stringValue }
        }
        self.init(service: service, project: project)
    }
}

/// JSON string quoting without Foundation.
public enum JSONString {
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

extension Opentelemetry_Proto_Common_V1_AnyValue {
    /// Integer value of an int, a whole double, or a numeric string (some instrumentations send strings).
    var intLike: Int? {
        switch value {
        case .intValue(let i)?: return Int(clamping: i)
        case .doubleValue(let d)? where d.isFinite && d >= -9e15 && d <= 9e15: return Int(d)
        case .stringValue(let s)?: return Int(s)
        default: return nil
        }
    }

    var doubleLike: Double? {
        switch value {
        case .doubleValue(let d)? where d.isFinite: return d
        case .intValue(let i)?: return Double(i)
        case .stringValue(let s)?: return Double(s).flatMap { $0.isFinite ? $0 : nil }
        default: return nil
        }
    }
}
