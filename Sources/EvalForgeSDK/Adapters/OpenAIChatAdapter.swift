import EvalForgeCore
import Foundation

/// Reads OpenAI-compatible Chat Completions bodies (OpenAI, Azure OpenAI, vLLM, Groq, Mistral, …)
/// into spans: request parameters, response model and id, finish reasons, token usage including
/// cached and reasoning tokens, tool calls and, when capture is on, the messages.
public enum OpenAIChatAdapter {
    /// The request a `POST /chat/completions` body describes; a body that is not JSON gives model "".
    public static func request(fromBody body: Data, provider: String = LLMProvider.openAI) -> LLMRequest {
        var r = LLMRequest(operation: .chat, provider: provider, model: "")
        guard let o = JSON.object(body) else { return r }
        r.model = JSON.string(o["model"]) ?? ""
        r.temperature = JSON.double(o["temperature"])
        r.maxTokens = JSON.int(o["max_completion_tokens"]) ?? JSON.int(o["max_tokens"])
        r.topP = JSON.double(o["top_p"])
        r.frequencyPenalty = JSON.double(o["frequency_penalty"])
        r.presencePenalty = JSON.double(o["presence_penalty"])
        r.seed = JSON.int(o["seed"])
        r.choiceCount = JSON.int(o["n"])
        r.stream = (o["stream"] as? Bool) ?? false
        if let s = o["stop"] as? String { r.stopSequences = [s] } else if let s = o["stop"] as? [String] { r.stopSequences = s }
        if let u = JSON.string(o["user"]) { r.userID = u }
        return r
    }

    /// `body` with `"stream_options": {"include_usage": true}` added, so OpenAI sends token usage in
    /// the stream's final chunk (without it a stream reports no usage, hence no cost). The body is
    /// returned unchanged when it does not stream, is not a JSON object, or the caller already set
    /// `include_usage` either way (or a `stream_options` that is not an object). Transports call it
    /// when `configuration.cost.requestStreamUsage` is on.
    public static func requestingStreamUsage(_ body: Data) -> Data {
        guard var o = JSON.object(body), (o["stream"] as? Bool) == true else { return body }
        var options: [String: Any] = [:]
        if let existing = o["stream_options"] {
            guard let dict = existing as? [String: Any], dict["include_usage"] == nil else { return body }
            options = dict
        }
        options["include_usage"] = true
        o["stream_options"] = options
        guard JSONSerialization.isValidJSONObject(o), let data = try? JSONSerialization.data(withJSONObject: o) else { return body }
        return data
    }

    /// Records the request messages (only when content capture is on).
    public static func recordRequestContent(_ body: Data, into span: inout LLMSpan) {
        guard span.pipeline.capturesContent, let o = JSON.object(body), let messages = o["messages"] as? [[String: Any]] else { return }
        var system: [[String: Any]] = []
        var input: [[String: Any]] = []
        for m in messages {
            let role = JSON.string(m["role"]) ?? "user"
            if role == "system" || role == "developer" {
                if let t = JSON.text(ofContent: m["content"]) { system.append(["type": "text", "content": t]) }
                continue
            }
            var parts: [[String: Any]] = []
            if let t = JSON.text(ofContent: m["content"]) { parts.append(["type": "text", "content": t]) }
            for call in (m["tool_calls"] as? [[String: Any]]) ?? [] {
                let f = call["function"] as? [String: Any]
                parts.append(["type": "tool_call", "id": JSON.string(call["id"]) ?? "", "name": JSON.string(f?["name"]) ?? "", "arguments": JSON.string(f?["arguments"]) ?? ""])
            }
            if role == "tool" {
                parts = [["type": "tool_call_response", "id": JSON.string(m["tool_call_id"]) ?? "", "response": JSON.text(ofContent: m["content"]) ?? ""]]
            }
            input.append(["role": role, "parts": parts])
        }
        if !system.isEmpty { span.setSystemInstructions(JSON.encode(system)) }
        span.setInput(JSON.encode(input))
    }

    /// Records a non-streaming response. A body that is not a chat completion marks the span failed
    /// with `error.type` "malformed_response" and keeps whatever could be read.
    public static func recordResponse(_ body: Data, into span: inout LLMSpan) {
        guard let o = JSON.object(body) else {
            span.recordError(type: "malformed_response", message: "response body is not a JSON object (\(body.count) bytes)")
            return
        }
        if let e = o["error"] as? [String: Any] {
            span.recordError(type: JSON.string(e["type"]) ?? JSON.string(e["code"]) ?? "api_error", message: JSON.string(e["message"]))
            return
        }
        span.responseID = JSON.string(o["id"])
        span.responseModel = JSON.string(o["model"])
        if let u = o["usage"] as? [String: Any] { span.usage = usage(u, into: &span) }
        guard let choices = o["choices"] as? [[String: Any]] else {
            span.recordError(type: "malformed_response", message: "response has no choices")
            return
        }
        var reasons: [String] = []
        var output: [[String: Any]] = []
        for c in choices {
            let reason = JSON.string(c["finish_reason"])
            if let reason { reasons.append(reason) }
            if span.pipeline.capturesContent, let m = c["message"] as? [String: Any] {
                var parts: [[String: Any]] = []
                if let t = JSON.text(ofContent: m["content"]) { parts.append(["type": "text", "content": t]) }
                for call in (m["tool_calls"] as? [[String: Any]]) ?? [] {
                    let f = call["function"] as? [String: Any]
                    parts.append(["type": "tool_call", "id": JSON.string(call["id"]) ?? "", "name": JSON.string(f?["name"]) ?? "", "arguments": JSON.string(f?["arguments"]) ?? ""])
                }
                output.append(["role": "assistant", "parts": parts, "finish_reason": reason ?? ""])
            }
        }
        span.finishReasons = reasons
        if !output.isEmpty { span.setOutput(JSON.encode(output)) }
    }

    /// The usage object's token counts; a figure that is not a sane count is left out and named in
    /// the span's `evalforge.response.problem`.
    static func usage(_ u: [String: Any], into span: inout LLMSpan) -> TokenUsage {
        usage(u, inputKey: "prompt_tokens", outputKey: "completion_tokens", into: &span)
    }

    /// OpenAI's usage object under either API's key names: Chat Completions' `prompt_tokens` /
    /// `completion_tokens`, the Responses API's `input_tokens` / `output_tokens`. Both keep cached
    /// and reasoning tokens in `<key>_details`, so one reading serves both.
    static func usage(_ u: [String: Any], inputKey: String, outputKey: String, into span: inout LLMSpan) -> TokenUsage {
        let inputDetails = inputKey + "_details"
        let outputDetails = outputKey + "_details"
        let input = u[inputDetails] as? [String: Any]
        let output = u[outputDetails] as? [String: Any]
        var problems: [String] = []
        let usage = TokenUsage(
            input: JSON.tokenCount(u[inputKey], field: "usage." + inputKey, problems: &problems),
            output: JSON.tokenCount(u[outputKey], field: "usage." + outputKey, problems: &problems),
            cacheRead: JSON.tokenCount(input?["cached_tokens"], field: "usage.\(inputDetails).cached_tokens", problems: &problems),
            cacheCreation: nil,
            reasoning: JSON.tokenCount(output?["reasoning_tokens"], field: "usage.\(outputDetails).reasoning_tokens", problems: &problems))
        for p in problems { span.noteResponseProblem(p) }
        return usage
    }

    /// Follows a streamed response (`stream: true`), one `data:` payload at a time: marks the time to
    /// first chunk, accumulates text and tool calls, and takes usage from the final chunk
    /// (`stream_options.include_usage`). Call `finish(into:)` when the stream ends.
    public struct StreamRecorder: Sendable {
        private var text = ""
        private var reasons: [Int: String] = [:]
        private var toolCalls: [Int: (id: String, name: String, arguments: String)] = [:]
        private var sawDone = false

        /// Whether the stream's final event arrived (the answer is complete even if the body has not ended).
        public var isComplete: Bool { sawDone }
        private var sawAny = false
        private var unreadableEvents = 0

        public init() {}

        /// Feeds one event's data (`[DONE]` included).
        public mutating func observe(_ data: String, into span: inout LLMSpan) {
            if data == "[DONE]" {
                sawDone = true
                return
            }
            guard let o = JSON.object(data) else {
                unreadableEvents = unreadableEvents.addingSaturated(1)
                if unreadableEvents == 1 { span.noteResponseProblem("a stream event is not a JSON object (\(data.utf8.count) bytes); ignored") }
                return
            }
            if let e = o["error"] as? [String: Any] {
                span.recordError(type: JSON.string(e["type"]) ?? "api_error", message: JSON.string(e["message"]))
                return
            }
            sawAny = true
            if span.responseID == nil { span.responseID = JSON.string(o["id"]) }
            if let m = JSON.string(o["model"]) { span.responseModel = m }
            if let u = o["usage"] as? [String: Any] { span.usage = OpenAIChatAdapter.usage(u, into: &span) }
            for c in (o["choices"] as? [[String: Any]]) ?? [] {
                let index = JSON.int(c["index"]) ?? 0
                if let r = JSON.string(c["finish_reason"]), reasons[index] != nil || reasons.count < StreamLimits.maxIndexes { reasons[index] = r }
                guard let delta = c["delta"] as? [String: Any] else { continue }
                if let t = delta["content"] as? String, !t.isEmpty {
                    span.markFirstChunk()
                    if span.pipeline.capturesContent, text.utf8.count < StreamLimits.maxTextBytes { text += t }
                }
                for call in (delta["tool_calls"] as? [[String: Any]]) ?? [] {
                    span.markFirstChunk()
                    let i = JSON.int(call["index"]) ?? 0
                    guard toolCalls[i] != nil || toolCalls.count < StreamLimits.maxIndexes else { continue }
                    let f = call["function"] as? [String: Any]
                    var entry = toolCalls[i] ?? (id: "", name: "", arguments: "")
                    if let id = JSON.string(call["id"]) { entry.id = id }
                    if entry.name.utf8.count < StreamLimits.maxTextBytes, let n = JSON.string(f?["name"]) { entry.name += n }
                    if entry.arguments.utf8.count < StreamLimits.maxTextBytes, let a = JSON.string(f?["arguments"]) { entry.arguments += a }
                    toolCalls[i] = entry
                }
            }
        }

        /// Completes the span from what was seen; a stream that ended without `[DONE]` or a finish
        /// reason is recorded as an error ("stream_truncated").
        public func finish(into span: inout LLMSpan) {
            span.finishReasons = reasons.keys.sorted().compactMap { reasons[$0] }
            if span.pipeline.capturesContent {
                var parts: [[String: Any]] = []
                if !text.isEmpty { parts.append(["type": "text", "content": text]) }
                for (_, t) in toolCalls.sorted(by: { $0.key < $1.key }) {
                    parts.append(["type": "tool_call", "id": t.id, "name": t.name, "arguments": t.arguments])
                }
                span.setOutput(JSON.encode([["role": "assistant", "parts": parts, "finish_reason": span.finishReasons.first ?? ""]]))
            }
            if !sawDone && reasons.isEmpty && !span.isError {
                span.recordError(type: "stream_truncated", message: sawAny ? "the stream ended before its final chunk" : "the stream ended before any chunk")
            }
        }
    }
}

extension LLMSpan {
    /// Whether the span is marked failed.
    public var isError: Bool { record.isError }
}
