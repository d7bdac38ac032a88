import Foundation
import HTTPTypes
import Hummingbird

/// `POST /v1/messages` in Anthropic's format, streaming (its exact event sequence) and not.
struct AnthropicMessagesHandler: Sendable {
    let configuration: MockLLMConfiguration
    let faults: FaultInjector

    func handle(body: [UInt8], headers: HTTPFields) async throws -> Response {
        let plan: AnswerPlan
        do {
            let overrides = try RequestOverrides(headers: headers)
            plan = try Planner.plan(Self.parse(body), overrides: overrides, configuration: configuration, faults: faults, idPrefix: "msg_")
        } catch let e as MockLLMError {
            return Self.error(e.status, e.status == 413 ? "request_too_large" : "invalid_request_error", e.message)
        }
        let retryAfter = configuration.retryAfterSeconds
        switch plan.fault {
        case .rateLimited:
            return Self.error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit (mock).", retryAfter: retryAfter)
        case .serverError:
            return Self.error(500, "api_error", "Internal server error (mock).")
        case .overloaded:
            return Self.error(529, "overloaded_error", "Overloaded", retryAfter: retryAfter)
        case .malformed:
            if plan.stream {
                let broken = "event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"\(plan.id)\", \n\n"
                return MockResponses.eventStream([broken], ttftMs: plan.ttftMs, gap: .zero)
            }
            try await MockResponses.delay(plan.ttftMs)
            return MockResponses.text(200, "{\"id\": \"\(plan.id)\", \"type\": \"message\", \"content\": [", contentType: "application/json")
        case .cut, nil:
            break
        }
        if plan.stream { return stream(plan) }
        let body = Self.message(plan)
        if plan.fault == .cut { return MockResponses.cutBody(body, ttftMs: plan.ttftMs) }
        try await MockResponses.delay(plan.ttftMs)
        return MockResponses.text(200, body, contentType: "application/json", headers: Self.headers(plan))
    }

    // MARK: Request

    static func parse(_ body: [UInt8]) throws -> ChatRequest {
        guard let object = JSONText.object(body) else {
            throw MockLLMError.notJSON(body.isEmpty ? "the body is empty" : "expected a JSON object")
        }
        let o = RequestFields(object)
        let model = try o.requiredString("model")
        guard !model.isEmpty else { throw MockLLMError.invalidValue("model", "''", expected: "a model name such as claude-sonnet-4-5") }
        guard let maxTokens = try o.int("max_tokens") else {
            throw MockLLMError.missingField("max_tokens", expected: "a positive integer")
        }
        guard maxTokens >= 1 else { throw MockLLMError.invalidValue("max_tokens", "\(maxTokens)", expected: "an integer ≥ 1") }
        guard let raw = try o.objects("messages") else {
            throw MockLLMError.missingField("messages", expected: "a non-empty array of message objects")
        }
        guard !raw.isEmpty else { throw MockLLMError.invalidValue("messages", "[]", expected: "at least one message") }

        var messages: [ChatMessage] = []
        messages.reserveCapacity(raw.count + 1)
        if o.has("system") {
            guard let system = try text(object["system"], path: "system") else {
                throw MockLLMError.wrongType("system", expected: "a string or an array of text blocks")
            }
            messages.append(ChatMessage(role: "system", text: system))
        }
        var lastIsToolResult = false
        for m in raw {
            let role = try m.requiredString("role")
            guard role == "user" || role == "assistant" else {
                throw MockLLMError.invalidValue(
                    m.name("role"), "'\(role)'", expected: "'user' or 'assistant' (a system prompt goes in the top-level 'system' field)")
            }
            guard m.has("content"), let content = try text(m.object["content"], path: m.name("content")) else {
                throw MockLLMError.missingField(m.name("content"), expected: "a string or an array of content blocks")
            }
            messages.append(ChatMessage(role: role, text: content))
            let blocks = m.object["content"] as? [[String: Any]] ?? []
            lastIsToolResult = role == "user" && blocks.contains { $0["type"] as? String == "tool_result" }
        }

        var request = ChatRequest(model: model, messages: messages, maxTokens: maxTokens)
        for t in try o.objects("tools") ?? [] {
            let name = try t.requiredString("name")
            // Server tools (web search, …) have a type and no input schema.
            _ = try t.object("input_schema")
            request.tools.append(ToolDefinition(name: name, schema: t.object["input_schema"]))
        }
        if let choice = try o.object("tool_choice") {
            let type = try choice.requiredString("type")
            switch type {
            case "auto": request.toolChoice = .auto
            case "none": request.toolChoice = .none
            case "any": request.toolChoice = .required
            case "tool":
                let name = try choice.requiredString("name")
                guard request.tools.contains(where: { $0.name == name }) else {
                    throw MockLLMError.invalidValue("tool_choice.name", "'\(name)'", expected: "one of the declared tools")
                }
                request.toolChoice = .named(name)
            default:
                throw MockLLMError.invalidValue("tool_choice.type", "'\(type)'", expected: "auto, any, tool or none")
            }
        }
        request.awaitsToolCall = messages.last?.role == "user" && !lastIsToolResult
        _ = try o.number("temperature", in: 0...1)
        _ = try o.number("top_p", in: 0...1)
        let system = messages.first?.role == "system" ? messages[0].text.lowercased() : ""
        request.jsonMode = system.contains("json")
        request.stream = try o.bool("stream") ?? false
        return request
    }

    /// The text of a string or of an array of content blocks (text, tool results); nil for any
    /// other type. Tool-use inputs count as their JSON.
    static func text(_ content: Any?, path: String) throws -> String? {
        if let s = content as? String { return s }
        guard let blocks = content as? [Any] else { return nil }
        var parts: [String] = []
        for (i, element) in blocks.enumerated() {
            guard let b = element as? [String: Any] else { throw MockLLMError.wrongType("\(path)[\(i)]", expected: "a content block object") }
            guard let type = b["type"] as? String else { throw MockLLMError.missingField("\(path)[\(i)].type", expected: "a block type such as text") }
            switch type {
            case "text":
                guard let t = b["text"] as? String else { throw MockLLMError.missingField("\(path)[\(i)].text", expected: "a string") }
                parts.append(t)
            case "tool_result":
                if let inner = b["content"], let t = try text(inner, path: "\(path)[\(i)].content") { parts.append(t) }
            case "tool_use":
                parts.append(b["input"].flatMap { JSONValue(any: $0)?.text } ?? "{}")
            default:
                break
            }
        }
        return parts.joined(separator: "\n")
    }

    // MARK: Response

    static func headers(_ plan: AnswerPlan) -> HTTPFields {
        var h = HTTPFields()
        if let name = HTTPField.Name("request-id") { h[name] = "req_" + String(plan.idSeed, radix: 16) }
        return h
    }

    static func toolUseID(_ id: String) -> String { "toolu_01" + id.prefix(22) }

    static func stopReason(_ f: AnswerPlan.Finish) -> String {
        switch f {
        case .stop: "end_turn"
        case .length: "max_tokens"
        case .toolCalls: "tool_use"
        }
    }

    /// Anthropic counts `input_tokens` without the cache reads and writes.
    static func usage(_ p: AnswerPlan, output: Int) -> JSONValue {
        [
            "input_tokens": .int(p.inputTokens - p.cachedTokens), "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": .int(p.cachedTokens), "output_tokens": .int(output),
        ]
    }

    static func message(_ plan: AnswerPlan) -> String {
        let content: JSONValue
        switch plan.content {
        case .toolCall(let id, let name, let input, _):
            content = [["type": "tool_use", "id": .string(toolUseID(id)), "name": .string(name), "input": input]]
        case .text(let chunks):
            content = [["type": "text", "text": .string(chunks.joined())]]
        }
        let body: JSONValue = [
            "id": .string(plan.id), "type": "message", "role": "assistant", "model": .string(plan.model), "content": content,
            "stop_reason": .string(stopReason(plan.finish)), "stop_sequence": nil, "usage": usage(plan, output: plan.outputTokens),
        ]
        return body.text
    }

    /// message_start, content_block_start, ping, content_block_delta…, content_block_stop,
    /// message_delta, message_stop.
    private func stream(_ plan: AnswerPlan) -> Response {
        var events: [String] = []
        events.append(MockResponses.sse([
            "type": "message_start",
            "message": [
                "id": .string(plan.id), "type": "message", "role": "assistant", "model": .string(plan.model), "content": [],
                "stop_reason": nil, "stop_sequence": nil, "usage": Self.usage(plan, output: 1),
            ],
        ], event: "message_start"))
        switch plan.content {
        case .toolCall(let id, let name, _, let arguments):
            events.append(MockResponses.sse([
                "type": "content_block_start", "index": 0,
                "content_block": ["type": "tool_use", "id": .string(Self.toolUseID(id)), "name": .string(name), "input": [:]],
            ], event: "content_block_start"))
            events.append(MockResponses.sse(["type": "ping"], event: "ping"))
            for piece in Planner.pieces(arguments, size: 8) {
                events.append(MockResponses.sse([
                    "type": "content_block_delta", "index": 0, "delta": ["type": "input_json_delta", "partial_json": .string(piece)],
                ], event: "content_block_delta"))
            }
        case .text(let chunks):
            events.reserveCapacity(chunks.count + 6)
            events.append(MockResponses.sse(["type": "content_block_start", "index": 0, "content_block": ["type": "text", "text": ""]], event: "content_block_start"))
            events.append(MockResponses.sse(["type": "ping"], event: "ping"))
            for c in chunks {
                var event = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
                JSONText.quote(c, into: &event)
                event += "}}\n\n"
                events.append(event)
            }
        }
        events.append(MockResponses.sse(["type": "content_block_stop", "index": 0], event: "content_block_stop"))
        events.append(MockResponses.sse([
            "type": "message_delta", "delta": ["stop_reason": .string(Self.stopReason(plan.finish)), "stop_sequence": nil],
            "usage": ["output_tokens": .int(plan.outputTokens)],
        ], event: "message_delta"))
        events.append(MockResponses.sse(["type": "message_stop"], event: "message_stop"))
        let cut = plan.fault == .cut ? max(1, events.count / 2) : nil
        return MockResponses.eventStream(events, ttftMs: plan.ttftMs, gap: plan.interChunkDelay, cutAfter: cut, headers: Self.headers(plan))
    }

    /// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`.
    static func error(_ status: Int, _ type: String, _ message: String, retryAfter: Int? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return MockResponses.json(status, ["type": "error", "error": ["type": .string(type), "message": .string(message)]], headers: headers)
    }
}
