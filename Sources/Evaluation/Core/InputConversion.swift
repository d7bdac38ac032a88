import EvalForgeModel
import EvalForgeStore

/// Builds `EvaluationInput`s from dataset items, target answers and stored spans.
enum InputConversion {
    /// Messages from a chat list: `[{"role", "content"}]` (content a string or a list of parts) or the
    /// OTel GenAI shape `[{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call", …}]}]`.
    static func messages(_ json: JSON) -> (messages: [EvaluationInput.Message], toolCalls: [EvaluationInput.ToolCall]) {
        var out: [EvaluationInput.Message] = []
        var calls: [EvaluationInput.ToolCall] = []
        for m in json.arrayValue ?? [] {
            let role = m["role"]?.stringValue ?? "user"
            var text = ""
            if let s = m["content"]?.stringValue { text = s }
            for part in m["content"]?.arrayValue ?? [] {
                if let t = part["text"]?.stringValue ?? part["content"]?.stringValue { text += t }
            }
            for part in m["parts"]?.arrayValue ?? [] {
                switch part["type"]?.stringValue {
                case "text": text += part["content"]?.stringValue ?? ""
                case "tool_call":
                    let args = part["arguments"].map { $0.stringValue ?? $0.text } ?? ""
                    calls.append(.init(name: part["name"]?.stringValue ?? "", arguments: args))
                case "tool_call_response": text += part["response"]?.stringValue ?? ""
                default: break
                }
            }
            for tc in m["tool_calls"]?.arrayValue ?? [] {
                calls.append(.init(name: tc["function"]?["name"]?.stringValue ?? tc["name"]?.stringValue ?? "", arguments: tc["function"]?["arguments"]?.stringValue ?? tc["arguments"]?.stringValue ?? ""))
            }
            out.append(.init(role: role, content: text))
        }
        return (out, calls)
    }

    /// Tool declarations: OpenAI `[{"type": "function", "function": {"name", "parameters"}}]`,
    /// Anthropic `[{"name", "input_schema"}]` or `[{"name", "parameters"}]`.
    static func tools(_ json: JSON?) -> [String: JSON] {
        var out: [String: JSON] = [:]
        let list: [JSON]
        if let s = json?.stringValue, let parsed = JSON.parse(s) { list = parsed.arrayValue ?? [] } else { list = json?.arrayValue ?? [] }
        for t in list {
            let f = t["function"] ?? t
            guard let name = f["name"]?.stringValue else { continue }
            out[name] = f["parameters"] ?? f["input_schema"] ?? .object([:])
        }
        return out
    }

    /// The evaluated values of a dataset item with the answer `output`.
    static func item(_ item: DatasetItem, output: String, toolCalls: [EvaluationInput.ToolCall] = [], latencyMs: Double? = nil, costUSD: Double? = nil) -> EvaluationInput {
        var conversation: [EvaluationInput.Message] = []
        var input = ""
        var tools = tools(item.metadata["tools"])
        switch item.input {
        case .string(let s):
            input = s
            conversation = [.init(role: "user", content: s)]
        case .array:
            conversation = messages(item.input).messages
        case .object(let o):
            if let m = o["messages"] { conversation = messages(m).messages }
            if let s = o["input"]?.stringValue { input = s; if conversation.isEmpty { conversation = [.init(role: "user", content: s)] } }
            tools.merge(Self.tools(o["tools"])) { a, _ in a }
        default:
            input = item.input.text
        }
        if input.isEmpty { input = conversation.last(where: { $0.role == "user" })?.content ?? "" }
        var full = conversation
        full.append(.init(role: "assistant", content: output))
        return EvaluationInput(input: input, output: output, expected: item.expected, context: item.context ?? item.metadata["context"]?.stringValue,
                               conversation: full, toolCalls: toolCalls, tools: tools, latencyMs: latencyMs, costUSD: costUSD)
    }

    /// The evaluated values of a stored span (its recorded input and output messages).
    static func span(_ s: SpanRow) -> EvaluationInput {
        let empty: (messages: [EvaluationInput.Message], toolCalls: [EvaluationInput.ToolCall]) = ([], [])
        let inMsgs = JSON.parse(s.input).map { messages($0) } ?? empty
        let outMsgs = JSON.parse(s.output).map { messages($0) } ?? empty
        let output = outMsgs.messages.map(\.content).joined(separator: "\n")
        let attrs = JSON.parse(s.attributesJSON)
        let input = inMsgs.messages.last(where: { $0.role == "user" })?.content ?? inMsgs.messages.last?.content ?? ""
        return EvaluationInput(input: input, output: output, expected: nil, context: attrs?["evalforge.metadata.context"]?.stringValue,
                               conversation: inMsgs.messages + outMsgs.messages, toolCalls: outMsgs.toolCalls, tools: tools(attrs?["gen_ai.tool.definitions"]),
                               latencyMs: Double(s.durationNanos) / 1e6, costUSD: s.costUSD)
    }

    /// Dataset items from stored spans: the input messages, the recorded output, trace links.
    static func datasetItem(from s: SpanRow) -> DatasetItem {
        let x = span(s)
        let input: JSON = JSON.parse(s.input).flatMap { $0.arrayValue != nil ? $0 : nil } ?? .string(x.input)
        return DatasetItem(input: input, expected: nil, output: x.output, context: x.context, metadata: ["model": .string(s.model), "service": .string(s.service)], sourceTraceID: s.traceID, sourceSpanID: s.spanID)
    }
}
