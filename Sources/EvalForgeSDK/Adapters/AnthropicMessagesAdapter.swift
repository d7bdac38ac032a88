import EvalForgeCore
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
        if let u = o["usage"] as? [String: Any] { span.usage = usage(u, into: &span) }
        if let r = JSON.string(o["stop_reason"]) { span.finishReasons = [r] }
        guard o["content"] is [[String: Any]] else {
            span.recordError(type: "malformed_response", message: "response has no content blocks")
            return
        }
        if span.pipeline.capturesContent {
            span.setOutput(JSON.encode([["role": "assistant", "parts": parts(o["content"]), "finish_reason": span.finishReasons.first ?? ""]]))
        }
    }

    /// The usage object's token counts; a figure that is not a sane count is left out and named in
    /// the span's `evalforge.response.problem`.
    static func usage(_ u: [String: Any], into span: inout LLMSpan) -> TokenUsage {
        var problems: [String] = []
        let usage = TokenUsage.anthropic(
            inputTokens: JSON.tokenCount(u["input_tokens"], field: "usage.input_tokens", problems: &problems),
            outputTokens: JSON.tokenCount(u["output_tokens"], field: "usage.output_tokens", problems: &problems),
            cacheReadInputTokens: JSON.tokenCount(u["cache_read_input_tokens"], field: "usage.cache_read_input_tokens", problems: &problems),
            cacheCreationInputTokens: JSON.tokenCount(u["cache_creation_input_tokens"], field: "usage.cache_creation_input_tokens", problems: &problems))
        for p in problems { span.noteResponseProblem(p) }
        return usage
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

        /// Whether the stream's final event arrived (the answer is complete even if the body has not ended).
        public var isComplete: Bool { sawStop }
        private var unreadableEvents = 0

        public init() {}

        public mutating func observe(_ event: ServerSentEvent, into span: inout LLMSpan) {
            guard let o = JSON.object(event.data) else {
                unreadableEvents = unreadableEvents.addingSaturated(1)
                if unreadableEvents == 1 { span.noteResponseProblem("a stream event is not a JSON object (\(event.data.utf8.count) bytes); ignored") }
                return
            }
            let type = JSON.string(o["type"]) ?? event.event
            switch type {
            case "message_start":
                let m = o["message"] as? [String: Any]
                span.responseID = JSON.string(m?["id"])
                span.responseModel = JSON.string(m?["model"])
                if let u = m?["usage"] as? [String: Any] {
                    takeInputUsage(u, into: &span)
                    outputTokens = JSON.tokenCount(u["output_tokens"], field: "message_start usage.output_tokens", problems: &span.problemSink)
                }
            case "content_block_start":
                let i = JSON.int(o["index"]) ?? 0
                guard blocks[i] != nil || blocks.count < StreamLimits.maxIndexes else { break }
                let b = o["content_block"] as? [String: Any]
                blocks[i] = (JSON.string(b?["type"]) ?? "text", JSON.string(b?["id"]) ?? "", JSON.string(b?["name"]) ?? "", JSON.string(b?["text"]) ?? "")
            case "content_block_delta":
                span.markFirstChunk()
                let i = JSON.int(o["index"]) ?? 0
                let d = o["delta"] as? [String: Any]
                if span.pipeline.capturesContent, blocks[i] != nil || blocks.count < StreamLimits.maxIndexes {
                    var b = blocks[i] ?? ("text", "", "", "")
                    guard b.text.utf8.count < StreamLimits.maxTextBytes else { break }
                    b.text += JSON.string(d?["text"]) ?? JSON.string(d?["partial_json"]) ?? ""
                    blocks[i] = b
                }
            case "message_delta":
                if let d = o["delta"] as? [String: Any], let r = JSON.string(d["stop_reason"]) { stopReason = r }
                if let u = o["usage"] as? [String: Any] {
                    if let n = JSON.tokenCount(u["output_tokens"], field: "message_delta usage.output_tokens", problems: &span.problemSink) { outputTokens = n }
                    takeInputUsage(u, into: &span)
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

        private mutating func takeInputUsage(_ u: [String: Any], into span: inout LLMSpan) {
            if let n = JSON.tokenCount(u["input_tokens"], field: "usage.input_tokens", problems: &span.problemSink) { inputTokens = n }
            if let n = JSON.tokenCount(u["cache_read_input_tokens"], field: "usage.cache_read_input_tokens", problems: &span.problemSink) { cacheRead = n }
            if let n = JSON.tokenCount(u["cache_creation_input_tokens"], field: "usage.cache_creation_input_tokens", problems: &span.problemSink) { cacheCreation = n }
        }

        public func finish(into span: inout LLMSpan) {
            let u = TokenUsage.anthropic(inputTokens: inputTokens, outputTokens: outputTokens, cacheReadInputTokens: cacheRead, cacheCreationInputTokens: cacheCreation)
            span.usage = u
            if let stopReason { span.finishReasons = [stopReason] }
            if span.pipeline.capturesContent {
                var parts: [[String: Any]] = []
                for (_, b) in blocks.sorted(by: { $0.key < $1.key }) {
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
