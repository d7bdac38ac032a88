import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/messages` in Anthropic's format, streaming (its exact event sequence) and not.
struct AnthropicMessagesHandler: Sendable {
    let configuration: MockLLMConfiguration
    let requests: RequestCounter

    func handle(body: [UInt8], headers: @escaping (String) -> String?) async throws -> Response {
        let plan: AnswerPlan
        do {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
                throw MockRequestError(status: 400, message: "request body is not a JSON object")
            }
            guard let maxTokens = o["max_tokens"] as? Int, maxTokens >= 1 else {
                throw MockRequestError(status: 400, message: "max_tokens: Field required (a positive integer)")
            }
            guard let raw = o["messages"] as? [[String: Any]], !raw.isEmpty else {
                throw MockRequestError(status: 400, message: "messages: Field required (a non-empty array)")
            }
            var messages: [(String, String)] = []
            if let system = Self.text(o["system"]) { messages.append(("system", system)) }
            var lastIsToolResult = false
            for (i, m) in raw.enumerated() {
                guard let role = m["role"] as? String, role == "user" || role == "assistant" else {
                    throw MockRequestError(status: 400, message: "messages.\(i).role: Input should be 'user' or 'assistant'")
                }
                messages.append((role, Self.text(m["content"]) ?? ""))
                lastIsToolResult = role == "user" && ((m["content"] as? [[String: Any]])?.contains { $0["type"] as? String == "tool_result" } ?? false)
            }
            var tools: [(String, Any?)] = []
            for (i, t) in ((o["tools"] as? [[String: Any]]) ?? []).enumerated() {
                guard let name = t["name"] as? String else { throw MockRequestError(status: 400, message: "tools.\(i).name: Field required") }
                tools.append((name, t["input_schema"]))
            }
            let choice = o["tool_choice"] as? [String: Any]
            let forced = choice?["type"] as? String == "tool" ? choice?["name"] as? String : nil
            let jsonMode = (Self.text(o["system"]) ?? "").lowercased().contains("json")
            plan = try Planner.plan(
                body: body, object: o, messages: messages, tools: tools, forcedTool: forced,
                toolsDisabled: choice?["type"] as? String == "none", lastIsToolResult: lastIsToolResult,
                maxTokens: maxTokens, jsonMode: jsonMode, headers: headers, configuration: configuration, idPrefix: "msg_", sequence: requests.next())
        } catch let e as MockRequestError {
            return Self.error(e.status, "invalid_request_error", e.message)
        }
        switch plan.fault {
        case .rateLimited:
            return Self.error(429, "rate_limit_error", "Number of requests has exceeded your rate limit (mock).", retryAfter: configuration.retryAfterSeconds)
        case .serverError:
            return Self.error(500, "api_error", "Internal server error (mock).")
        case .overloaded:
            return Self.error(529, "overloaded_error", "Overloaded", retryAfter: configuration.retryAfterSeconds)
        case .malformed:
            if plan.stream { return MockResponses.eventStream(["event: message_start\ndata: {\"type\": \"message_start\", \"message\": \n\n"], ttftMs: plan.ttftMs, gap: .zero, cutAfter: nil) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"type\": \"message\", \"content\": [")))
        case .none, .cut:
            break
        }
        if plan.stream { return stream(plan) }
        if plan.ttftMs > 0 { try await Task.sleep(for: .milliseconds(plan.ttftMs)) }
        var content: [[String: Any]] = []
        var stop = plan.truncated ? "max_tokens" : "end_turn"
        if let call = plan.toolCall {
            let input = (try? JSONSerialization.jsonObject(with: Data(call.arguments.utf8))) ?? [String: Any]()
            content.append(["type": "tool_use", "id": "toolu_" + call.id.dropFirst(5), "name": call.name, "input": input])
            stop = "tool_use"
        } else {
            content.append(["type": "text", "text": plan.text])
        }
        return MockResponses.json(200, [
            "id": plan.id, "type": "message", "role": "assistant", "model": plan.model, "content": content,
            "stop_reason": stop, "stop_sequence": NSNull(), "usage": usage(plan, output: plan.outputTokens),
        ], headers: [HTTPField.Name("request-id")!: "req_" + plan.id.dropFirst(4)])
    }

    /// Anthropic reports input tokens excluding cache reads and writes.
    private func usage(_ p: AnswerPlan, output: Int) -> [String: Any] {
        ["input_tokens": p.inputTokens - p.cachedTokens, "output_tokens": output, "cache_read_input_tokens": p.cachedTokens, "cache_creation_input_tokens": 0]
    }

    private func stream(_ plan: AnswerPlan) -> Response {
        var events: [String] = []
        events.append(MockResponses.sse([
            "type": "message_start",
            "message": ["id": plan.id, "type": "message", "role": "assistant", "content": [Any](), "model": plan.model,
                        "stop_reason": NSNull(), "stop_sequence": NSNull(), "usage": usage(plan, output: 1)],
        ], event: "message_start"))
        var stop = plan.truncated ? "max_tokens" : "end_turn"
        if let call = plan.toolCall {
            events.append(MockResponses.sse(["type": "content_block_start", "index": 0, "content_block": ["type": "tool_use", "id": "toolu_" + call.id.dropFirst(5), "name": call.name, "input": [String: Any]()]], event: "content_block_start"))
            events.append(MockResponses.sse(["type": "ping"], event: "ping"))
            var rest = Substring(call.arguments)
            while !rest.isEmpty {
                let piece = rest.prefix(8)
                rest = rest.dropFirst(8)
                events.append(MockResponses.sse(["type": "content_block_delta", "index": 0, "delta": ["type": "input_json_delta", "partial_json": String(piece)]], event: "content_block_delta"))
            }
            stop = "tool_use"
        } else {
            events.append(MockResponses.sse(["type": "content_block_start", "index": 0, "content_block": ["type": "text", "text": ""]], event: "content_block_start"))
            events.append(MockResponses.sse(["type": "ping"], event: "ping"))
            for c in plan.chunks {
                events.append(MockResponses.sse(["type": "content_block_delta", "index": 0, "delta": ["type": "text_delta", "text": c]], event: "content_block_delta"))
            }
        }
        events.append(MockResponses.sse(["type": "content_block_stop", "index": 0], event: "content_block_stop"))
        events.append(MockResponses.sse(["type": "message_delta", "delta": ["stop_reason": stop, "stop_sequence": NSNull()], "usage": ["output_tokens": plan.outputTokens]], event: "message_delta"))
        events.append(MockResponses.sse(["type": "message_stop"], event: "message_stop"))
        let cut = plan.fault == .cut ? max(1, events.count / 2) : nil
        return MockResponses.eventStream(events, ttftMs: plan.ttftMs, gap: configuration.interChunkDelay, cutAfter: cut)
    }

    static func error(_ status: Int, _ type: String, _ message: String, retryAfter: Int? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return MockResponses.json(status, ["type": "error", "error": ["type": type, "message": message]], headers: headers)
    }

    static func text(_ content: Any?) -> String? {
        if let s = content as? String { return s }
        guard let blocks = content as? [[String: Any]] else { return nil }
        return blocks.compactMap { b -> String? in
            if let t = b["text"] as? String { return t }
            if let c = b["content"] { return text(c) }
            return nil
        }.joined(separator: "\n")
    }
}
