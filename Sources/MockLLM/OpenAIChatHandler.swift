import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/chat/completions` in OpenAI's format, streaming and not.
struct OpenAIChatHandler: Sendable {
    let configuration: MockLLMConfiguration
    let requests: RequestCounter

    func handle(body: [UInt8], headers: @escaping (String) -> String?) async throws -> Response {
        let plan: AnswerPlan
        do {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
                throw MockRequestError(status: 400, message: "request body is not a JSON object")
            }
            guard let raw = o["messages"] as? [[String: Any]], !raw.isEmpty else {
                throw MockRequestError(status: 400, message: "'messages' is required and must be a non-empty array of message objects")
            }
            var messages: [(String, String)] = []
            for (i, m) in raw.enumerated() {
                guard let role = m["role"] as? String else { throw MockRequestError(status: 400, message: "messages[\(i)].role is required and must be a string") }
                messages.append((role, Self.text(m["content"]) ?? ""))
            }
            var tools: [(String, Any?)] = []
            for (i, t) in ((o["tools"] as? [[String: Any]]) ?? []).enumerated() {
                guard let f = t["function"] as? [String: Any], let name = f["name"] as? String else {
                    throw MockRequestError(status: 400, message: "tools[\(i)].function.name is required")
                }
                tools.append((name, f["parameters"]))
            }
            var forced: String?
            var disabled = false
            if let choice = o["tool_choice"] as? String { disabled = choice == "none" }
            if let choice = o["tool_choice"] as? [String: Any], let f = choice["function"] as? [String: Any] { forced = f["name"] as? String }
            let maxTokens = (o["max_completion_tokens"] as? Int) ?? (o["max_tokens"] as? Int)
            if let m = maxTokens, m < 1 { throw MockRequestError(status: 400, message: "max_tokens must be at least 1") }
            let jsonMode = ((o["response_format"] as? [String: Any])?["type"] as? String).map { $0 == "json_object" || $0 == "json_schema" } ?? false
            plan = try Planner.plan(
                body: body, object: o, messages: messages, tools: tools, forcedTool: forced, toolsDisabled: disabled,
                lastIsToolResult: raw.last?["role"] as? String == "tool", maxTokens: maxTokens, jsonMode: jsonMode,
                headers: headers, configuration: configuration, idPrefix: "chatcmpl-", sequence: requests.next())
        } catch let e as MockRequestError {
            return Self.error(e.status, e.message, type: "invalid_request_error", code: nil)
        }
        switch plan.fault {
        case .rateLimited:
            return Self.error(429, "Rate limit reached for requests (mock). Please retry after \(configuration.retryAfterSeconds)s.", type: "requests", code: "rate_limit_exceeded", retryAfter: configuration.retryAfterSeconds)
        case .serverError:
            return Self.error(500, "The server had an error while processing your request (mock).", type: "server_error", code: nil)
        case .overloaded:
            return Self.error(503, "The engine is currently overloaded (mock).", type: "server_error", code: "overloaded", retryAfter: configuration.retryAfterSeconds)
        case .malformed:
            if plan.ttftMs > 0 { try await Task.sleep(for: .milliseconds(plan.ttftMs)) }
            if plan.stream { return MockResponses.eventStream(["data: {\"id\": \"broken\", \"choices\": [\n\n"], ttftMs: 0, gap: .zero, cutAfter: nil) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"id\": \"chatcmpl-broken\", \"choices\": [")))
        case .none, .cut:
            break
        }
        let created = Int(Date().timeIntervalSince1970)
        if plan.stream { return stream(plan, created: created) }
        if plan.ttftMs > 0 { try await Task.sleep(for: .milliseconds(plan.ttftMs)) }
        var message: [String: Any] = ["role": "assistant", "refusal": NSNull()]
        var finish = plan.truncated ? "length" : "stop"
        if let call = plan.toolCall {
            message["content"] = NSNull()
            message["tool_calls"] = [["id": call.id, "type": "function", "function": ["name": call.name, "arguments": call.arguments]]]
            finish = "tool_calls"
        } else {
            message["content"] = plan.text
        }
        return MockResponses.json(200, [
            "id": plan.id, "object": "chat.completion", "created": created, "model": plan.model, "system_fingerprint": "fp_evalforge_mock",
            "choices": [["index": 0, "message": message, "logprobs": NSNull(), "finish_reason": finish]],
            "usage": Self.usage(plan),
        ])
    }

    private func stream(_ plan: AnswerPlan, created: Int) -> Response {
        func chunk(_ delta: [String: Any], finish: String? = nil) -> String {
            MockResponses.sse([
                "id": plan.id, "object": "chat.completion.chunk", "created": created, "model": plan.model, "system_fingerprint": "fp_evalforge_mock",
                "choices": [["index": 0, "delta": delta, "logprobs": NSNull(), "finish_reason": finish.map { $0 as Any } ?? NSNull()]],
            ])
        }
        var events: [String] = []
        if let call = plan.toolCall {
            events.append(chunk(["role": "assistant", "content": NSNull(), "tool_calls": [["index": 0, "id": call.id, "type": "function", "function": ["name": call.name, "arguments": ""]]]]))
            var rest = Substring(call.arguments)
            while !rest.isEmpty {
                let piece = rest.prefix(8)
                rest = rest.dropFirst(8)
                events.append(chunk(["tool_calls": [["index": 0, "function": ["arguments": String(piece)]]]]))
            }
            events.append(chunk([:], finish: "tool_calls"))
        } else {
            events.append(chunk(["role": "assistant", "content": "", "refusal": NSNull()]))
            for c in plan.chunks { events.append(chunk(["content": c])) }
            events.append(chunk([:], finish: plan.truncated ? "length" : "stop"))
        }
        if plan.includeUsage {
            events.append(MockResponses.sse([
                "id": plan.id, "object": "chat.completion.chunk", "created": created, "model": plan.model, "system_fingerprint": "fp_evalforge_mock",
                "choices": [Any](), "usage": Self.usage(plan),
            ]))
        }
        events.append("data: [DONE]\n\n")
        let cut = plan.fault == .cut ? max(1, events.count / 2) : nil
        return MockResponses.eventStream(events, ttftMs: plan.ttftMs, gap: configuration.interChunkDelay, cutAfter: cut)
    }

    static func usage(_ p: AnswerPlan) -> [String: Any] {
        [
            "prompt_tokens": p.inputTokens, "completion_tokens": p.outputTokens, "total_tokens": p.inputTokens + p.outputTokens,
            "prompt_tokens_details": ["cached_tokens": p.cachedTokens, "audio_tokens": 0],
            "completion_tokens_details": ["reasoning_tokens": p.reasoningTokens, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0],
        ]
    }

    static func error(_ status: Int, _ message: String, type: String, code: String?, retryAfter: Int? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return MockResponses.json(status, ["error": ["message": message, "type": type, "param": NSNull(), "code": code.map { $0 as Any } ?? NSNull()]], headers: headers)
    }

    static func text(_ content: Any?) -> String? {
        if let s = content as? String { return s }
        guard let parts = content as? [[String: Any]] else { return nil }
        return parts.compactMap { $0["text"] as? String }.joined(separator: "\n")
    }
}
