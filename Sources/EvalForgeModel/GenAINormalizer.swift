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
        var e = GenAIExtraction()
        var remove: [Int] = []
        for (i, kv) in span.attributes.enumerated() {
            if let entry = GenAIAttributeRole.byName[kv.key] {
                if e.take(entry.role, kv.value) || entry.removed { remove.append(i) }
            } else if GenAIExtraction.isMessagePart(kv.key) {
                e.takeMessagePart(kv.key, kv.value.stringValue)
            }
        }
        let added = e.complete(priceTable: priceTable, prices: &prices)

        // Rewrite attributes: deprecated names and out-of-range figures removed, canonical ones added.
        if !remove.isEmpty || !added.isEmpty {
            var attrs = span.attributes
            for i in remove.reversed() { attrs.remove(at: i) }
            for (key, value) in added {
                var kv = Opentelemetry_Proto_Common_V1_KeyValue()
                kv.key = key
                switch value {
                case .string(let s): kv.value.stringValue = s
                case .int(let i): kv.value.intValue = i
                case .double(let d): kv.value.doubleValue = d
                case .bool(let b): kv.value.boolValue = b
                }
                attrs.append(kv)
            }
            span.attributes = attrs
        }
        return e.facts(
            traceID: traceID, spanID: spanID.value, parentSpanID: SpanID(bytes: span.parentSpanID)?.value ?? 0,
            resource: resource, statusIsError: span.status.code == .error,
            start: span.startTimeUnixNano, end: span.endTimeUnixNano)
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

extension Opentelemetry_Proto_Common_V1_AnyValue: GenAIAttributeValue {
    var isNumber: Bool {
        switch value {
        case .intValue?, .doubleValue?: return true
        default: return false
        }
    }

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
