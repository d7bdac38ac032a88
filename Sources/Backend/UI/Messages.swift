/// Renders LLM content (OTel GenAI messages: `[{"role":…,"parts":[{"type":"text","content":…}, …]}]`,
/// or `{"role":…,"content":…}`, or plain text) as readable message cards, never as raw JSON alone.
enum Messages {
    struct Message: Sendable {
        var role: String
        var texts: [String]
        var extras: [HTML]
        var finishReason: String?
    }

    /// Messages of a content value; nil when it is not a message list.
    static func parse(_ v: JSONValue?) -> [Message]? {
        guard let v else { return nil }
        switch v {
        case .string(let s): return [Message(role: "", texts: [s], extras: [], finishReason: nil)]
        case .array(let items):
            let msgs = items.compactMap(message)
            return msgs.isEmpty && !items.isEmpty ? nil : msgs
        case .object:
            return message(v).map { [$0] }
        default: return nil
        }
    }

    static func message(_ v: JSONValue) -> Message? {
        guard case .object(let o) = v else {
            if case .string(let s) = v { return Message(role: "", texts: [s], extras: [], finishReason: nil) }
            return nil
        }
        var m = Message(role: o["role"]?.stringValue ?? "", texts: [], extras: [], finishReason: o["finish_reason"]?.stringValue)
        if let c = o["content"] {
            if let s = c.stringValue { m.texts.append(s) } else if let parts = c.arrayValue { add(parts, to: &m) }
        }
        if let parts = o["parts"]?.arrayValue { add(parts, to: &m) }
        if m.texts.isEmpty, m.extras.isEmpty, o["role"] == nil { return nil }
        return m
    }

    static func add(_ parts: [JSONValue], to m: inout Message) {
        for part in parts {
            guard case .object(let p) = part else {
                if let s = part.stringValue { m.texts.append(s) }
                continue
            }
            let type = p["type"]?.stringValue ?? "text"
            switch type {
            case "text":
                if let s = p["content"]?.stringValue ?? p["text"]?.stringValue { m.texts.append(s) }
            case "tool_call":
                let name = p["name"]?.stringValue ?? "tool"
                let args = p["arguments"].map { $0.stringValue ?? $0.displayText } ?? ""
                m.extras.append("<div class=\"tool\">→ calls <b>\(name)</b></div><pre>\(args)</pre>")
            case "tool_call_response":
                let resp = p["response"].map { $0.stringValue ?? $0.displayText } ?? ""
                m.extras.append("<div class=\"tool\">← tool result\(p["id"]?.stringValue.map { " (" + $0 + ")" } ?? "")</div><pre>\(resp)</pre>")
            default:
                m.extras.append("<div class=\"tool\">\(type)</div><pre>\(part.displayText)</pre>")
            }
        }
    }

    /// Message cards, or the raw text when the value is not a message list.
    static func render(_ v: JSONValue?, emptyText: String) -> HTML {
        guard let v else { return "<p class=\"sub\" style=\"color:var(--faint)\">\(emptyText)</p>" }
        guard let msgs = parse(v) else { return "<pre class=\"raw\">\(v.displayText)</pre>" }
        let cards = msgs.map { m -> HTML in
            let role = m.role.isEmpty ? "text" : m.role
            let cls = ["system", "assistant", "user", "tool"].contains(role) ? role : "other"
            let texts = m.texts.map { t -> HTML in "<div class=\"text\">\(t)</div>" }
            return """
            <div class="msg \(cls)"><div class="role">\(role)\(m.finishReason.map { " · " + $0 } ?? "")</div>\(texts)\(m.extras)</div>
            """
        }
        return "<div class=\"msgs\">\(cards)</div>"
    }

    /// Plain text of a message, for conversation bubbles.
    static func text(_ m: Message) -> String {
        m.texts.joined(separator: "\n")
    }
}
