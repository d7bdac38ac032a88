import EvalForgeCore
import Foundation

/// Reads OpenAI Responses API bodies (`POST /v1/responses`) into spans: the request's model and
/// parameters, `instructions` and `input` items, the response's id, model, status, output text and
/// function calls, and token usage (`input_tokens`, cached and reasoning tokens). Streams follow the
/// typed events (`response.output_text.delta`, `response.completed` with usage).
public enum OpenAIResponsesAdapter {
    /// The request a `POST /responses` body describes; a body that is not JSON gives model "".
    public static func request(fromBody body: Data, provider: String = LLMProvider.openAI) -> LLMRequest {
        var r = LLMRequest(operation: .chat, provider: provider, model: "")
        guard let o = JSON.object(body) else { return r }
        r.model = JSON.string(o["model"]) ?? ""
        r.temperature = JSON.double(o["temperature"])
        r.maxTokens = JSON.int(o["max_output_tokens"])
        r.topP = JSON.double(o["top_p"])
        r.stream = (o["stream"] as? Bool) ?? false
        if let u = JSON.string(o["user"]) { r.userID = u }
        if let c = JSON.string(o["conversation"]) { r.conversationID = c }
        return r
    }

    /// Records `instructions` and the `input` items (only when content capture is on).
    public static func recordRequestContent(_ body: Data, into span: inout LLMSpan) {
        guard span.pipeline.capturesContent, let o = JSON.object(body) else { return }
        if let i = JSON.string(o["instructions"]) { span.setSystemInstructions(JSON.encode([["type": "text", "content": i]])) }
        var input: [[String: Any]] = []
        if let s = o["input"] as? String {
            input.append(["role": "user", "parts": [["type": "text", "content": s]]])
        } else {
            for item in (o["input"] as? [[String: Any]]) ?? [] {
                switch JSON.string(item["type"]) ?? "message" {
                case "message":
                    var parts: [[String: Any]] = []
                    if let t = JSON.text(ofContent: item["content"]) { parts.append(["type": "text", "content": t]) }
                    input.append(["role": JSON.string(item["role"]) ?? "user", "parts": parts])
                case "function_call":
                    input.append(["role": "assistant", "parts": [["type": "tool_call", "id": JSON.string(item["call_id"]) ?? "", "name": JSON.string(item["name"]) ?? "", "arguments": JSON.string(item["arguments"]) ?? ""]]])
                case "function_call_output":
                    input.append(["role": "tool", "parts": [["type": "tool_call_response", "id": JSON.string(item["call_id"]) ?? "", "response": JSON.string(item["output"]) ?? ""]]])
                case let other:
                    input.append(["role": "user", "parts": [["type": other]]])
                }
            }
        }
        span.setInput(JSON.encode(input))
    }

    /// Records a non-streaming response. A body that is not a response object marks the span failed
    /// with `error.type` "malformed_response" and keeps whatever could be read.
    public static func recordResponse(_ body: Data, into span: inout LLMSpan) {
        guard let o = JSON.object(body) else {
            span.recordError(type: "malformed_response", message: "response body is not a JSON object (\(body.count) bytes)")
            return
        }
        record(response: o, into: &span)
    }

    /// A `response` object (the non-streaming body, or `response.completed`'s `response`).
    static func record(response o: [String: Any], into span: inout LLMSpan) {
        if let e = o["error"] as? [String: Any] {
            span.recordError(type: JSON.string(e["code"]) ?? JSON.string(e["type"]) ?? "api_error", message: JSON.string(e["message"]))
        }
        if let id = JSON.string(o["id"]) { span.responseID = id }
        if let m = JSON.string(o["model"]) { span.responseModel = m }
        if let u = o["usage"] as? [String: Any] { span.usage = usage(u, into: &span) }
        let status = JSON.string(o["status"])
        guard let output = o["output"] as? [[String: Any]] else {
            if !span.isError { span.recordError(type: "malformed_response", message: "response has no output") }
            return
        }
        var parts: [[String: Any]] = []
        var calledTool = false
        for item in output {
            switch JSON.string(item["type"]) {
            case "message":
                if let t = JSON.text(ofContent: item["content"]) { parts.append(["type": "text", "content": t]) }
            case "function_call":
                calledTool = true
                parts.append(["type": "tool_call", "id": JSON.string(item["call_id"]) ?? "", "name": JSON.string(item["name"]) ?? "", "arguments": JSON.string(item["arguments"]) ?? ""])
            default:
                break
            }
        }
        let reason: String
        switch status {
        case "incomplete":
            let why = (o["incomplete_details"] as? [String: Any]).flatMap { JSON.string($0["reason"]) }
            reason = why == "max_output_tokens" ? "length" : (why ?? "incomplete")
        case "failed": reason = "error"
        default: reason = calledTool ? "tool_calls" : "stop"
        }
        span.finishReasons = [reason]
        if status == "failed", !span.isError { span.recordError(type: "response_failed", message: "the response's status is failed") }
        if span.pipeline.capturesContent {
            span.setOutput(JSON.encode([["role": "assistant", "parts": parts, "finish_reason": reason]]))
        }
    }

    /// The usage object's token counts (`input_tokens`, `output_tokens` and their details), read
    /// like Chat Completions' under the Responses API's key names.
    static func usage(_ u: [String: Any], into span: inout LLMSpan) -> TokenUsage {
        OpenAIChatAdapter.usage(u, inputKey: "input_tokens", outputKey: "output_tokens", into: &span)
    }

    /// The text of a `response.output_text.delta` event; nil for every other event.
    public static func textDelta(_ event: ServerSentEvent) -> String? {
        guard event.event == "response.output_text.delta" || event.event == "message",
            let o = JSON.object(event.data), JSON.string(o["type"]) == "response.output_text.delta"
        else { return nil }
        return JSON.string(o["delta"])
    }

    /// Follows a streamed response event by event: marks the time to the first output delta, keeps
    /// the streamed text (bounded) in case the final event is missing, and takes id, model, usage and
    /// output from `response.completed` / `response.incomplete` / `response.failed`.
    public struct StreamRecorder: Sendable {
        private var text = ""
        private var sawFinal = false

        /// Whether the stream's final event arrived (the answer is complete even if the body has not ended).
        public var isComplete: Bool { sawFinal }
        private var sawAny = false
        private var unreadableEvents = 0

        public init() {}

        public mutating func observe(_ event: ServerSentEvent, into span: inout LLMSpan) {
            guard let o = JSON.object(event.data) else {
                unreadableEvents = unreadableEvents.addingSaturated(1)
                if unreadableEvents == 1 { span.noteResponseProblem("a stream event is not a JSON object (\(event.data.utf8.count) bytes); ignored") }
                return
            }
            sawAny = true
            switch JSON.string(o["type"]) ?? event.event {
            case "response.created", "response.in_progress":
                if let r = o["response"] as? [String: Any] {
                    if let id = JSON.string(r["id"]) { span.responseID = id }
                    if let m = JSON.string(r["model"]) { span.responseModel = m }
                }
            case "response.output_text.delta":
                span.markFirstChunk()
                if span.pipeline.capturesContent, text.utf8.count < StreamLimits.maxTextBytes, let d = JSON.string(o["delta"]) { text += d }
            case "response.function_call_arguments.delta", "response.refusal.delta", "response.reasoning_summary_text.delta":
                span.markFirstChunk()
            case "response.completed", "response.incomplete", "response.failed":
                sawFinal = true
                if let r = o["response"] as? [String: Any] {
                    OpenAIResponsesAdapter.record(response: r, into: &span)
                } else {
                    span.recordError(type: "malformed_response", message: "\(JSON.string(o["type"]) ?? "final event") has no response object")
                }
            case "error":
                span.recordError(type: JSON.string(o["code"]) ?? "api_error", message: JSON.string(o["message"]))
            default:
                break
            }
        }

        /// A stream that ended without its final event is recorded as an error ("stream_truncated"),
        /// with the text streamed so far as its output.
        public func finish(into span: inout LLMSpan) {
            guard !sawFinal else { return }
            if span.pipeline.capturesContent, !text.isEmpty {
                span.setOutput(JSON.encode([["role": "assistant", "parts": [["type": "text", "content": text]], "finish_reason": ""]]))
            }
            if !span.isError {
                span.recordError(type: "stream_truncated", message: sawAny ? "the stream ended before response.completed" : "the stream ended before any event")
            }
        }
    }
}

/// Reads OpenAI embeddings bodies (`POST /v1/embeddings`) into spans: model, input count, the
/// response's model and `usage.prompt_tokens`. Vectors are never recorded.
public enum OpenAIEmbeddingsAdapter {
    /// The request a `POST /embeddings` body describes (operation `embeddings`).
    public static func request(fromBody body: Data, provider: String = LLMProvider.openAI) -> LLMRequest {
        var r = LLMRequest(operation: .embeddings, provider: provider, model: "")
        guard let o = JSON.object(body) else { return r }
        r.model = JSON.string(o["model"]) ?? ""
        if let u = JSON.string(o["user"]) { r.userID = u }
        return r
    }

    /// Records the input texts (only when content capture is on).
    public static func recordRequestContent(_ body: Data, into span: inout LLMSpan) {
        guard span.pipeline.capturesContent, let o = JSON.object(body) else { return }
        let texts: [String]
        if let s = o["input"] as? String { texts = [s] } else { texts = (o["input"] as? [Any])?.compactMap { $0 as? String } ?? [] }
        guard !texts.isEmpty else { return }
        span.setInput(JSON.encode([["role": "user", "parts": texts.prefix(StreamLimits.maxIndexes).map { ["type": "text", "content": $0] }]]))
    }

    /// Records a response: model, usage and the number and dimension of the vectors
    /// (`gen_ai.embeddings.dimension.count`); a body that is not an embedding list marks the span failed.
    public static func recordResponse(_ body: Data, into span: inout LLMSpan) {
        guard let o = JSON.object(body) else {
            span.recordError(type: "malformed_response", message: "response body is not a JSON object (\(body.count) bytes)")
            return
        }
        if let e = o["error"] as? [String: Any] {
            span.recordError(type: JSON.string(e["type"]) ?? JSON.string(e["code"]) ?? "api_error", message: JSON.string(e["message"]))
            return
        }
        if let m = JSON.string(o["model"]) { span.responseModel = m }
        if let u = o["usage"] as? [String: Any] {
            var problems: [String] = []
            span.usage = TokenUsage(input: JSON.tokenCount(u["prompt_tokens"], field: "usage.prompt_tokens", problems: &problems), output: nil, cacheRead: nil, cacheCreation: nil, reasoning: nil)
            for p in problems { span.noteResponseProblem(p) }
        }
        guard let data = o["data"] as? [[String: Any]] else {
            span.recordError(type: "malformed_response", message: "response has no data")
            return
        }
        if let first = data.first?["embedding"] as? [Any] {
            span.setAttribute("gen_ai.embeddings.dimension.count", .int(first.count))
        }
    }
}
