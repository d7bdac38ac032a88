import Foundation
import HTTPTypes
import Hummingbird

/// `POST /v1/chat/completions` in OpenAI's format, streaming and not.
struct OpenAIChatHandler: Sendable {
    let configuration: MockLLMConfiguration
    let faults: FaultInjector

    func handle(body: [UInt8], headers: HTTPFields) async throws -> Response {
        let plan: AnswerPlan
        do {
            let overrides = try RequestOverrides(headers: headers)
            plan = try Planner.plan(
                Self.parse(body), overrides: overrides, configuration: configuration, faults: faults, idPrefix: "chatcmpl-")
        } catch let e as MockLLMError {
            return Self.error(e.status, e.message, type: "invalid_request_error", code: e.providerCode)
        }
        let retryAfter = configuration.retryAfterSeconds
        switch plan.fault {
        case .rateLimited:
            return Self.error(
                429, "Rate limit reached for requests (mock). Please try again in \(retryAfter)s.",
                type: "rate_limit_exceeded", code: "rate_limit_exceeded", retryAfter: retryAfter)
        case .serverError:
            return Self.error(500, "The server had an error while processing your request (mock).", type: "server_error", code: "server_error")
        case .overloaded:
            return Self.error(
                503, "The engine is currently overloaded, please try again later (mock).",
                type: "server_error", code: "overloaded", retryAfter: retryAfter)
        case .malformed:
            if plan.stream {
                return MockResponses.eventStream(["data: {\"id\": \"\(plan.id)\", \"choices\": [{\"delta\": \n\n"], ttftMs: plan.ttftMs, gap: .zero)
            }
            try await MockResponses.delay(plan.ttftMs)
            return MockResponses.text(200, "{\"id\": \"\(plan.id)\", \"object\": \"chat.completion\", \"choices\": [", contentType: "application/json")
        case .cut, nil:
            break
        }
        let created = Int(Date().timeIntervalSince1970)
        if plan.stream { return stream(plan, created: created) }
        let body = Self.completion(plan, created: created)
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
        guard !model.isEmpty else { throw MockLLMError.invalidValue("model", "''", expected: "a model name such as gpt-4o") }
        guard let raw = try o.objects("messages") else {
            throw MockLLMError.missingField("messages", expected: "a non-empty array of message objects")
        }
        guard !raw.isEmpty else { throw MockLLMError.invalidValue("messages", "[]", expected: "at least one message") }
        var messages: [ChatMessage] = []
        messages.reserveCapacity(raw.count)
        for m in raw {
            let role = try m.requiredString("role")
            guard ["system", "developer", "user", "assistant", "tool", "function"].contains(role) else {
                throw MockLLMError.invalidValue(m.name("role"), "'\(role)'", expected: "system, developer, user, assistant or tool")
            }
            messages.append(ChatMessage(role: role, text: try text(m)))
        }

        var request = ChatRequest(model: model, messages: messages)
        for (i, t) in (try o.objects("tools") ?? []).enumerated() {
            guard let f = try t.object("function") else {
                throw MockLLMError.missingField("tools[\(i)].function", expected: "an object with name and parameters")
            }
            let name = try f.requiredString("name")
            _ = try f.object("parameters")  // a JSON schema object when present
            request.tools.append(ToolDefinition(name: name, schema: f.object["parameters"]))
        }
        if o.has("tool_choice") {
            if let choice = object["tool_choice"] as? String {
                switch choice {
                case "auto": request.toolChoice = .auto
                case "none": request.toolChoice = .none
                case "required": request.toolChoice = .required
                default: throw MockLLMError.invalidValue("tool_choice", "'\(choice)'", expected: "none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}")
                }
            } else if let choice = try o.object("tool_choice") {
                guard let name = try choice.object("function")?.requiredString("name") else {
                    throw MockLLMError.missingField("tool_choice.function.name", expected: "the name of a declared tool")
                }
                guard request.tools.contains(where: { $0.name == name }) else {
                    throw MockLLMError.invalidValue("tool_choice.function.name", "'\(name)'", expected: "one of the declared tools")
                }
                request.toolChoice = .named(name)
            }
        }
        request.awaitsToolCall = messages.last?.role == "user"

        let maxCompletion = try o.int("max_completion_tokens")
        let maxTokens = try o.int("max_tokens")
        if let m = maxCompletion ?? maxTokens, m < 1 {
            throw MockLLMError.invalidValue(maxCompletion != nil ? "max_completion_tokens" : "max_tokens", "\(m)", expected: "an integer ≥ 1")
        }
        request.maxTokens = maxCompletion ?? maxTokens
        _ = try o.number("temperature", in: 0...2)
        _ = try o.number("top_p", in: 0...1)
        if let n = try o.int("n"), n != 1 { throw MockLLMError.invalidValue("n", "\(n)", expected: "1 (the mock answers with one choice)") }
        if let format = try o.object("response_format") {
            let type = try format.requiredString("type")
            guard ["text", "json_object", "json_schema"].contains(type) else {
                throw MockLLMError.invalidValue("response_format.type", "'\(type)'", expected: "text, json_object or json_schema")
            }
            request.jsonMode = type != "text"
        }
        request.stream = try o.bool("stream") ?? false
        if let options = try o.object("stream_options") {
            request.includeUsage = try options.bool("include_usage") ?? false
        }
        return request
    }

    /// A message's text: a string, or the text parts of an array of content parts.
    static func text(_ m: RequestFields) throws -> String {
        guard m.has("content") else { return "" }
        if let s = m.object["content"] as? String { return s }
        guard let parts = try? m.objects("content") else {
            throw MockLLMError.wrongType(m.name("content"), expected: "a string or an array of content parts")
        }
        return try parts.compactMap { try $0.string("text") }.joined(separator: "\n")
    }

    // MARK: Response

    static func headers(_ plan: AnswerPlan) -> HTTPFields {
        var h = HTTPFields()
        if let name = HTTPField.Name("x-request-id") { h[name] = "req_" + String(plan.idSeed, radix: 16) }
        return h
    }

    static func completion(_ plan: AnswerPlan, created: Int) -> String {
        let message: JSONValue
        switch plan.content {
        case .toolCall(let id, let name, _, let arguments):
            message = [
                "role": "assistant", "content": nil,
                "tool_calls": [["id": .string("call_" + id), "type": "function", "function": ["name": .string(name), "arguments": .string(arguments)]]],
                "refusal": nil, "annotations": [],
            ]
        case .text(let chunks):
            message = ["role": "assistant", "content": .string(chunks.joined()), "refusal": nil, "annotations": []]
        }
        let body: JSONValue = [
            "id": .string(plan.id), "object": "chat.completion", "created": .int(created), "model": .string(plan.model),
            "choices": [["index": 0, "message": message, "logprobs": nil, "finish_reason": .string(finishReason(plan.finish))]],
            "usage": usage(plan), "service_tier": "default", "system_fingerprint": "fp_evalforge_mock",
        ]
        return body.text
    }

    private func stream(_ plan: AnswerPlan, created: Int) -> Response {
        // Every chunk has the same JSON around its choices: write the envelope once.
        let head = "data: {\"id\":\(JSONText.quote(plan.id)),\"object\":\"chat.completion.chunk\",\"created\":\(created),\"model\":\(JSONText.quote(plan.model)),\"service_tier\":\"default\",\"system_fingerprint\":\"fp_evalforge_mock\","
        func chunk(_ delta: JSONValue, finish: String? = nil) -> String {
            let choice: JSONValue = ["index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish.map { .string($0) } ?? nil]
            return head + "\"choices\":[" + choice.text + "]}\n\n"
        }
        var events: [String] = []
        switch plan.content {
        case .toolCall(let id, let name, _, let arguments):
            events.append(chunk([
                "role": "assistant", "content": nil, "refusal": nil,
                "tool_calls": [["index": 0, "id": .string("call_" + id), "type": "function", "function": ["name": .string(name), "arguments": ""]]],
            ]))
            for piece in Planner.pieces(arguments, size: 8) {
                events.append(chunk(["tool_calls": [["index": 0, "function": ["arguments": .string(piece)]]]]))
            }
        case .text(let chunks):
            events.reserveCapacity(chunks.count + 4)
            events.append(chunk(["role": "assistant", "content": "", "refusal": nil]))
            let tail = "},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
            for c in chunks {
                var event = head
                event += "\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                JSONText.quote(c, into: &event)
                event += tail
                events.append(event)
            }
        }
        events.append(chunk([:], finish: Self.finishReason(plan.finish)))
        if plan.includeUsage {
            events.append(head + "\"choices\":[],\"usage\":" + Self.usage(plan).text + "}\n\n")
        }
        events.append("data: [DONE]\n\n")
        let cut = plan.fault == .cut ? max(1, events.count / 2) : nil
        return MockResponses.eventStream(events, ttftMs: plan.ttftMs, gap: plan.interChunkDelay, cutAfter: cut, headers: Self.headers(plan))
    }

    static func finishReason(_ f: AnswerPlan.Finish) -> String {
        switch f {
        case .stop: "stop"
        case .length: "length"
        case .toolCalls: "tool_calls"
        }
    }

    static func usage(_ p: AnswerPlan) -> JSONValue {
        [
            "prompt_tokens": .int(p.inputTokens), "completion_tokens": .int(p.outputTokens), "total_tokens": .int(p.inputTokens + p.outputTokens),
            "prompt_tokens_details": ["cached_tokens": .int(p.cachedTokens), "audio_tokens": 0],
            "completion_tokens_details": [
                "reasoning_tokens": .int(p.reasoningTokens), "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
            ],
        ]
    }

    /// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
    static func error(_ status: Int, _ message: String, type: String, code: String?, retryAfter: Int? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        let body: JSONValue = ["error": ["message": .string(message), "type": .string(type), "param": nil, "code": code.map { .string($0) } ?? nil]]
        return MockResponses.json(status, body, headers: headers)
    }
}
