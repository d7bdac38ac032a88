/// One message of a conversation, reduced to what the mock needs: role and text.
struct ChatMessage {
    var role: String
    var text: String
}

/// A declared tool: its name and JSON schema (OpenAI `parameters`, Anthropic `input_schema`).
struct ToolDefinition {
    var name: String
    var schema: Any?
    /// The schema as canonical JSON (sorted keys), for hashing and token counts.
    var schemaJSON: String
    var schemaBytes: Int { schemaJSON.utf8.count }

    init(name: String, schema: Any?) {
        self.name = name
        self.schema = schema
        self.schemaJSON = schema.flatMap { JSONValue(any: $0)?.text } ?? ""
    }
}

/// How the request lets the model use its tools.
enum ToolChoice: Equatable {
    case auto
    case none
    /// OpenAI "required", Anthropic "any": some tool must be called.
    case required
    case named(String)
}

/// A chat request of either provider, after validation.
struct ChatRequest {
    var model: String
    var messages: [ChatMessage]
    var tools: [ToolDefinition] = []
    var toolChoice: ToolChoice = .auto
    /// The last message is the user's turn (not a tool result, not an assistant prefill).
    var awaitsToolCall: Bool = false
    var maxTokens: Int?
    var jsonMode: Bool = false
    var stream: Bool = false
    /// OpenAI `stream_options.include_usage`.
    var includeUsage: Bool = false

    /// FNV-1a of everything that shapes the answer (not the streaming options, so the same
    /// conversation gives the same answer streamed or not).
    var contentHash: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ s: String) {
            for b in s.utf8 {
                h ^= UInt64(b)
                h = h &* 0x100_0000_01b3
            }
            h ^= 0xff
            h = h &* 0x100_0000_01b3
        }
        mix(model)
        for m in messages {
            mix(m.role)
            mix(m.text)
        }
        for t in tools {
            mix(t.name)
            mix(t.schemaJSON)
        }
        switch toolChoice {
        case .auto: mix("auto")
        case .none: mix("none")
        case .required: mix("required")
        case .named(let n): mix("named:" + n)
        }
        mix(maxTokens.map(String.init) ?? "-")
        mix(jsonMode ? "json" : "text")
        return h
    }
}
