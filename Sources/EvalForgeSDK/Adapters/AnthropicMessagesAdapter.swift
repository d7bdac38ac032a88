import Foundation

/// Reads Anthropic Messages API bodies into spans. Anthropic's `input_tokens` excludes cache reads
/// and writes; the span's `usage.input` is their sum (see `TokenUsage`).
public enum AnthropicMessagesAdapter {
    /// The request a `POST /v1/messages` body describes; a body that is not JSON gives model "".
    public static func request(fromBody body: Data, provider: String = LLMProvider.anthropic) -> LLMRequest {
        var r = LLMRequest(operation: .chat, provider: provider, model: "")
        guard let o = JSON.object(body) else { return r }
        r.model = JSON.string(o["model"]) ?? ""
        r.maxTokens = JSON.int(o["max_tokens"])
        r.temperature = JSON.double(o["temperature"])
        r.topP = JSON.double(o["top_p"])
        r.topK = JSON.int(o["top_k"])
        r.stopSequences = (o["stop_sequences"] as? [String]) ?? []
        r.stream = (o["stream"] as? Bool) ?? false
        if let meta = o["metadata"] as? [String: Any], let u = JSON.string(meta["user_id"]) { r.userID = u }
        return r
    }

    /// Records system instructions and messages (only when content capture is on).
    public static func recordRequestContent(_ body: Data, into span: inout LLMSpan) {
        guard span.pipeline.capturesContent, let o = JSON.object(body) else { return }
        if let system = JSON.text(ofContent: o["system"]) { span.setSystemInstructions(JSON.encode([["type": "text", "content": system]])) }
        var input: [[String: Any]] = []
        for m in (o["messages"] as? [[String: Any]]) ?? [] {
            let role = JSON.string(m["role"]) ?? "user"
            input.append(["role": role, "parts": parts(m["content"])])
        }
        span.setInput(JSON.encode(input))
    }

    static func parts(_ content: Any?) -> [[String: Any]] {
        if let s = content as? String { return [["type": "text", "content": s]] }
        var parts: [[String: Any]] = []
        for b in (content as? [[String: Any]]) ?? [] {
            switch JSON.string(b["type"]) {
            case "text": parts.append(["type": "text", "content": JSON.string(b["text"]) ?? ""])
            case "tool_use": parts.append(["type": "tool_call", "id": JSON.string(b["id"]) ?? "", "name": JSON.string(b["name"]) ?? "", "arguments": JSON.encode(b["input"] ?? [String: Any]())])
            case "tool_result": parts.append(["type": "tool_call_response", "id": JSON.string(b["tool_use_id"]) ?? "", "response": JSON.text(ofContent: b["content"]) ?? ""])
            case let t?: parts.append(["type": t])
            case nil: break
            }
        }
        return parts
    }

    /// Records a non-streaming response; a body that is not a message marks the span failed.
    public static func recordResponse(_ body: Data, into span: inout LLMSpan) {
        guard let o = JSON.object(body) else {
            span.recordError(type: "malformed_response", message: "response body is not a JSON object (\(body.count) bytes)")
            return
        }
        if JSON.string(o["type"]) == "error" {
            let e = o["error"] as? [String: Any]
            span.recordError(type: JSON.string(e?["type"]) ?? "api_error", message: JSON.string(e?["message"]))
            return
        }
        span.responseID = JSON.string(o["id"])
        span.responseModel = JSON.string(o["model"])
        if let u = o["usage"] as? [String: Any] { span.usage = usage(u) }
        if let r = JSON.string(o["stop_reason"]) { span.finishReasons = [r] }
        guard o["content"] is [[String: Any]] else {
            span.recordError(type: "malformed_response", message: "response has no content blocks")
            return
        }
        if span.pipeline.capturesContent {
            span.setOutput(JSON.encode([["role": "assistant", "parts": parts(o["content"]), "finish_reason": span.finishReasons.first ?? ""]]))
        }
    }

    static func usage(_ u: [String: Any]) -> TokenUsage {
        .anthropic(
            inputTokens: JSON.int(u["input_tokens"]),
            outputTokens: JSON.int(u["output_tokens"]),
            cacheReadInputTokens: JSON.int(u["cache_read_input_tokens"]),
            cacheCreationInputTokens: JSON.int(u["cache_creation_input_tokens"]))
    }

    /// Follows a streamed response event by event (message_start … message_stop).
    public struct StreamRecorder: Sendable {
        private var blocks: [Int: (type: String, id: String, name: String, text: String)] = [:]
        private var inputTokens: Int?
        private var cacheRead: Int?
        private var cacheCreation: Int?
        private var outputTokens: Int?
        private var stopReason: String?
        private var sawStop = false

        public init() {}

        public mutating func observe(_ event: ServerSentEvent, into span: inout LLMSpan) {
            guard let o = JSON.object(event.data) else { return }
            let type = JSON.string(o["type"]) ?? event.event
            switch type {
            case "message_start":
                let m = o["message"] as? [String: Any]
                span.responseID = JSON.string(m?["id"])
                span.responseModel = JSON.string(m?["model"])
                if let u = m?["usage"] as? [String: Any] {
                    takeInputUsage(u)
                    outputTokens = JSON.int(u["output_tokens"])
                }
            case "content_block_start":
                let i = JSON.int(o["index"]) ?? 0
                let b = o["content_block"] as? [String: Any]
                blocks[i] = (JSON.string(b?["type"]) ?? "text", JSON.string(b?["id"]) ?? "", JSON.string(b?["name"]) ?? "", JSON.string(b?["text"]) ?? "")
            case "content_block_delta":
                span.markFirstChunk()
                let i = JSON.int(o["index"]) ?? 0
                let d = o["delta"] as? [String: Any]
                if span.pipeline.capturesContent {
                    var b = blocks[i] ?? ("text", "", "", "")
                    b.text += JSON.string(d?["text"]) ?? JSON.string(d?["partial_json"]) ?? ""
                    blocks[i] = b
                }
            case "message_delta":
                if let d = o["delta"] as? [String: Any], let r = JSON.string(d["stop_reason"]) { stopReason = r }
                if let u = o["usage"] as? [String: Any] {
                    if let n = JSON.int(u["output_tokens"]) { outputTokens = n }
                    takeInputUsage(u)
                }
            case "message_stop":
                sawStop = true
            case "error":
                let e = o["error"] as? [String: Any]
                span.recordError(type: JSON.string(e?["type"]) ?? "api_error", message: JSON.string(e?["message"]))
            default:
                break
            }
        }

        private mutating func takeInputUsage(_ u: [String: Any]) {
            if let n = JSON.int(u["input_tokens"]) { inputTokens = n }
            if let n = JSON.int(u["cache_read_input_tokens"]) { cacheRead = n }
            if let n = JSON.int(u["cache_creation_input_tokens"]) { cacheCreation = n }
        }

        public func finish(into span: inout LLMSpan) {
            let u = TokenUsage.anthropic(inputTokens: inputTokens, outputTokens: outputTokens, cacheReadInputTokens: cacheRead, cacheCreationInputTokens: cacheCreation)
            span.usage = u
            if let stopReason { span.finishReasons = [stopReason] }
            if span.pipeline.capturesContent {
                var parts: [[String: Any]] = []
                for i in blocks.keys.sorted() {
                    let b = blocks[i]!
                    if b.type == "tool_use" {
                        parts.append(["type": "tool_call", "id": b.id, "name": b.name, "arguments": b.text])
                    } else {
                        parts.append(["type": "text", "content": b.text])
                    }
                }
                span.setOutput(JSON.encode([["role": "assistant", "parts": parts, "finish_reason": stopReason ?? ""]]))
            }
            if !sawStop && !span.isError {
                span.recordError(type: "stream_truncated", message: "the stream ended before message_stop")
            }
        }
    }
}
