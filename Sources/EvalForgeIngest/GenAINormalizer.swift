import EvalForgeCore
import EvalForgeModel

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

    /// Model prices already looked up; pass one cache for all the spans of a request so each model's
    /// name is resolved against the table once.
    public struct PriceCache {
        package var prices: [String: [DatedPrice]?] = [:]
        public init() {}
    }

    package static func provider(fromSystem s: String) -> String {
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

    package static func operation(fromRequestType t: String) -> String {
        switch t.lowercased() {
        case "chat": return "chat"
        case "completion": return "text_completion"
        case "embedding", "embeddings": return "embeddings"
        case "rerank": return "rerank"
        default: return t.lowercased()
        }
    }

    /// `gen_ai.prompt.0.role` / `llm.input_messages.0.message.content` → messages[0].
    package static func collectMessage(_ key: String, _ value: String, into messages: inout [Int: (role: String, content: String)]) {
        let parts = key.split(separator: ".")
        guard let idx = parts.lazy.compactMap({ Int($0) }).first, idx < 1000 else { return }
        var m = messages[idx] ?? (role: "", content: "")
        if key.hasSuffix(".role") { m.role = value } else if key.hasSuffix(".content") { m.content = value } else { return }
        messages[idx] = m
    }

    package static func messagesJSON(_ messages: [Int: (role: String, content: String)]) -> String {
        var out = "["
        for (n, (_, m)) in messages.sorted(by: { $0.key < $1.key }).enumerated() {
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
    /// The resource's own non-empty `evalforge.project`, nil when it names none (then `project` is
    /// the default): what ingest checks against the key's project (`ForeignProjectError`).
    public var namedProject: String? = nil

    public init(service: String, project: String) {
        self.service = service
        self.project = project
    }
}

