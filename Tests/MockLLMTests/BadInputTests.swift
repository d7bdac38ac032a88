import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import MockLLM

@Suite("Bad input")
struct BadInputTests {
    /// (route, raw body, headers, text the error message must contain).
    static let cases: [(String, String, [String: String], String)] = [
        (Mock.openAI, "{not json", [:], "JSON"),
        (Mock.openAI, "", [:], "empty"),
        (Mock.openAI, "[1, 2]", [:], "JSON object"),
        (Mock.openAI, #"{"messages": [{"role": "user", "content": "x"}]}"#, [:], "model"),
        (Mock.openAI, #"{"model": 4, "messages": [{"role": "user", "content": "x"}]}"#, [:], "model"),
        (Mock.openAI, #"{"model": "gpt-4o"}"#, [:], "messages"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": "hi"}"#, [:], "messages"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": []}"#, [:], "messages"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"content": "x"}]}"#, [:], "messages[0].role"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}"#, [:], "messages[0].role"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}"#, [:], "messages[0].content"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}"#, [:], "stream"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}"#, [:], "max_tokens"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}"#, [:], "max_tokens"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": 7}"#, [:], "temperature"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}"#, [:], "tools[0].function"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "tool_choice": "maybe"}"#, [:], "tool_choice"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}"#, [:], "response_format.type"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": 1}}"#, [:], "stream_options.include_usage"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}"#, ["x-mock-fault": "teapot"], "x-mock-fault"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}"#, ["x-mock-seed": "-1"], "x-mock-seed"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}"#, ["x-mock-latency-ms": "soon"], "x-mock-latency-ms"),
        (Mock.openAI, #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}"#, ["x-mock-cached-tokens": "many"], "x-mock-cached-tokens"),
        (Mock.anthropic, "{", [:], "JSON"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}"#, [:], "max_tokens"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "max_tokens": 5}"#, [:], "messages"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}"#, [:], "messages[0].role"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user"}]}"#, [:], "messages[0].content"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": [{"text": "x"}]}]}"#, [:], "messages[0].content[0].type"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "max_tokens": 5, "system": 3, "messages": [{"role": "user", "content": "x"}]}"#, [:], "system"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [{"input_schema": {}}]}"#, [:], "tools[0].name"),
        (Mock.anthropic, #"{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "tool", "name": "nope"}}"#, [:], "tool_choice.name"),
    ]

    @Test("malformed JSON, missing or mistyped fields and bad x-mock-* headers get 400 naming what was wrong")
    func badRequests() async throws {
        try await Mock.withApp { client in
            for (path, body, headers, mention) in Self.cases {
                let r = try await client.execute(uri: path, method: .post, headers: Mock.headers(headers), body: ByteBuffer(string: body))
                #expect(r.status == .badRequest, "\(path) \(body)")
                let o = Mock.object(r.body)
                let error = o["error"] as? [String: Any] ?? [:]
                let message = error["message"] as? String ?? ""
                #expect(message.contains(mention), "\(body): \(message)")
                #expect(error["type"] as? String == "invalid_request_error")
                if path == Mock.anthropic { #expect(o["type"] as? String == "error") }
            }
        }
    }

    @Test("a body over max-body-bytes gets 413 in each format")
    func tooLarge() async throws {
        try await Mock.withApp({ $0.maxBodyBytes = 2048 }) { client in
            let huge = Mock.openAIRequest(String(repeating: "a", count: 10_000))
            let r = try await Mock.post(client, Mock.openAI, huge)
            #expect(r.status == .contentTooLarge)
            #expect((Mock.object(r.body)["error"] as? [String: Any])?["code"] as? String == "request_too_large")
            let a = try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest(String(repeating: "a", count: 10_000)))
            #expect(a.status == .contentTooLarge)
            #expect((Mock.object(a.body)["error"] as? [String: Any])?["type"] as? String == "request_too_large")
            // Just under the limit is fine.
            #expect(try await Mock.post(client, Mock.openAI, Mock.openAIRequest(String(repeating: "a", count: 1500))).status == .ok)
        }
    }

    @Test("random bytes never crash the server")
    func fuzz() async throws {
        var rng = MockRNG(seed: 3, body: [])
        var bodies: [ByteBuffer] = []
        let valid = Array(#"{"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object"}}}}}}]}"#.utf8)
        for _ in 0..<300 {
            var bytes = valid
            for _ in 0..<rng.int(1...6) {
                let i = rng.index(bytes.count)
                switch rng.int(0...2) {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.remove(at: i)
                default:
                    let syntax = Array("{}[]\":,0-".utf8)
                    bytes.insert(syntax[rng.index(syntax.count)], at: i)
                }
            }
            bodies.append(ByteBuffer(bytes: bytes))
        }
        let fuzzed = bodies
        try await Mock.withApp { client in
            for body in fuzzed {
                for path in [Mock.openAI, Mock.anthropic] {
                    let r = try await client.execute(uri: path, method: .post, headers: Mock.headers(), body: body)
                    #expect([200, 400].contains(r.status.code))
                }
            }
        }
    }
}
