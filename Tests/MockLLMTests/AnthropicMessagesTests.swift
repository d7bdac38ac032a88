import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import MockLLM

@Suite("Anthropic Messages")
struct AnthropicMessagesTests {
    static func usage(_ o: [String: Any]) -> [String: Any] { o["usage"] as? [String: Any] ?? [:] }

    @Test("non-streaming: a message with a text block, stop reason and usage")
    func message() async throws {
        try await Mock.withApp { client in
            let r = try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest(extra: ["system": "Be brief."]))
            #expect(r.status == .ok)
            let o = Mock.object(r.body)
            #expect((o["id"] as? String)?.hasPrefix("msg_") == true)
            #expect(o["type"] as? String == "message" && o["role"] as? String == "assistant")
            #expect(o["model"] as? String == "claude-haiku-4-5")
            let block = (o["content"] as? [[String: Any]])?.first ?? [:]
            #expect(block["type"] as? String == "text")
            let text = block["text"] as? String ?? ""
            #expect(text.hasSuffix("."))
            #expect(o["stop_reason"] as? String == "end_turn")
            #expect(o["stop_sequence"] is NSNull)
            let u = Self.usage(o)
            #expect((u["input_tokens"] as? Int ?? 0) > 0)
            #expect(u["output_tokens"] as? Int == text.split(separator: " ").count)
            #expect(u["cache_read_input_tokens"] as? Int == 0 && u["cache_creation_input_tokens"] as? Int == 0)
            #expect(r.headers[Mock.header("request-id")]?.hasPrefix("req_") == true)

            // max_tokens bounds the answer.
            let short = Mock.object(try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest(maxTokens: 4)).body)
            #expect(short["stop_reason"] as? String == "max_tokens")
            #expect(Self.usage(short)["output_tokens"] as? Int == 4)

            // Long prompts read from the cache; input_tokens excludes the cached part.
            let long = String(repeating: "token ", count: 3000)
            let cached = Self.usage(Mock.object(try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest(long)).body))
            let read = cached["cache_read_input_tokens"] as? Int ?? 0
            #expect(read > 0 && read % 128 == 0)
            #expect((cached["input_tokens"] as? Int ?? 0) + read > 1024)
        }
    }

    @Test("streaming: the exact event sequence, text deltas that add up to the non-streamed text")
    func stream() async throws {
        try await Mock.withApp { client in
            let r = try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("Stream", extra: ["stream": true]))
            #expect(r.headers[.contentType] == "text/event-stream")
            let events = Mock.events(r.body)
            let names = events.compactMap(\.event)
            #expect(names.count == events.count)
            #expect(Array(names.prefix(3)) == ["message_start", "content_block_start", "ping"])
            #expect(Array(names.suffix(3)) == ["content_block_stop", "message_delta", "message_stop"])
            let start = Mock.object(events[0].data)["message"] as? [String: Any] ?? [:]
            #expect((start["content"] as? [Any])?.isEmpty == true)
            #expect(start["stop_reason"] is NSNull)
            #expect((Self.usage(start)["input_tokens"] as? Int ?? 0) > 0)
            let block = Mock.object(events[1].data)["content_block"] as? [String: Any]
            #expect(block?["type"] as? String == "text" && block?["text"] as? String == "")
            let deltas = events.filter { $0.event == "content_block_delta" }.map { Mock.object($0.data)["delta"] as? [String: Any] ?? [:] }
            #expect(deltas.allSatisfy { $0["type"] as? String == "text_delta" })
            let text = deltas.compactMap { $0["text"] as? String }.joined()
            let messageDelta = Mock.object(events[events.count - 2].data)
            #expect((messageDelta["delta"] as? [String: Any])?["stop_reason"] as? String == "end_turn")
            #expect(Self.usage(messageDelta)["output_tokens"] as? Int == deltas.count)

            let whole = Mock.object(try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("Stream")).body)
            #expect(((whole["content"] as? [[String: Any]])?.first?["text"] as? String) == text)
            #expect(whole["id"] as? String == start["id"] as? String)
        }
    }

    @Test("tool use: a tool_use block with schema-typed input, streamed as input_json_delta; text after a tool_result")
    func toolUse() async throws {
        try await Mock.withApp { client in
            let forced: [String: Any] = ["tools": Mock.anthropicTools, "tool_choice": ["type": "tool", "name": "get_weather"]]
            let o = Mock.object(try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("Weather in Lisbon?", extra: forced)).body)
            #expect(o["stop_reason"] as? String == "tool_use")
            let block = (o["content"] as? [[String: Any]])?.first ?? [:]
            #expect(block["type"] as? String == "tool_use")
            #expect((block["id"] as? String)?.hasPrefix("toolu_") == true)
            #expect(block["name"] as? String == "get_weather")
            let input = block["input"] as? [String: Any] ?? [:]
            #expect(input["city"] is String && input["days"] is Int && input["detailed"] is Bool)

            let s = Mock.events(try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("Weather in Lisbon?", extra: forced.merging(["stream": true]) { a, _ in a })).body)
            let start = Mock.object(s[1].data)["content_block"] as? [String: Any] ?? [:]
            #expect(start["type"] as? String == "tool_use" && start["name"] as? String == "get_weather")
            #expect((start["input"] as? [String: Any])?.isEmpty == true)
            let partial = s.filter { $0.event == "content_block_delta" }.compactMap { Mock.object($0.data)["delta"] as? [String: Any] }
            #expect(partial.allSatisfy { $0["type"] as? String == "input_json_delta" })
            let streamedInput = Mock.object(partial.compactMap { $0["partial_json"] as? String }.joined())
            #expect(Mock.canonical(streamedInput) == Mock.canonical(input) && !streamedInput.isEmpty)
            #expect((Mock.object(s[s.count - 2].data)["delta"] as? [String: Any])?["stop_reason"] as? String == "tool_use")

            let followUp: [String: Any] = [
                "model": "claude-haiku-4-5", "max_tokens": 100, "tools": Mock.anthropicTools,
                "messages": [
                    ["role": "user", "content": "Weather in Lisbon?"],
                    ["role": "assistant", "content": [block]],
                    ["role": "user", "content": [["type": "tool_result", "tool_use_id": block["id"] ?? "", "content": "sunny"]]],
                ],
            ]
            let t = Mock.object(try await Mock.post(client, Mock.anthropic, followUp).body)
            #expect(t["stop_reason"] as? String == "end_turn")
            #expect((t["content"] as? [[String: Any]])?.first?["type"] as? String == "text")

            let none = Mock.object(try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("x", extra: ["tools": Mock.anthropicTools, "tool_choice": ["type": "none"]])).body)
            #expect(none["stop_reason"] as? String == "end_turn")
            let any = Mock.object(try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("x", extra: ["tools": Mock.anthropicTools, "tool_choice": ["type": "any"]])).body)
            #expect((any["content"] as? [[String: Any]])?.first?["name"] as? String == "get_weather")
        }
    }

    @Test("a system prompt asking for JSON gets a JSON object (a judge verdict when it mentions a score)")
    func jsonAnswer() async throws {
        try await Mock.withApp { client in
            let request = Mock.anthropicRequest("Q: capital of France? A: Paris", extra: [
                "system": [["type": "text", "text": "You are a judge. Answer in JSON with a score from 0 to 1."]],
            ])
            let o = Mock.object(try await Mock.post(client, Mock.anthropic, request).body)
            let verdict = Mock.object(((o["content"] as? [[String: Any]])?.first?["text"] as? String) ?? "")
            #expect((verdict["score"] as? Double).map { $0 >= 0 && $0 <= 1 } == true)
            #expect(verdict["label"] is String && verdict["explanation"] is String)
        }
    }
}
