import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import MockLLM

@Suite("OpenAI Chat Completions")
struct OpenAIChatTests {
    static func message(_ o: [String: Any]) -> [String: Any] {
        ((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any]) ?? [:]
    }

    static func usage(_ o: [String: Any]) -> [String: Any] { o["usage"] as? [String: Any] ?? [:] }

    @Test("non-streaming: chat.completion with text, finish reason and usage")
    func completion() async throws {
        try await Mock.withApp { client in
            let r = try await Mock.post(client, Mock.openAI, Mock.openAIRequest(model: "gpt-4o-mini"))
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "application/json")
            let o = Mock.object(r.body)
            #expect(o["object"] as? String == "chat.completion")
            #expect((o["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            #expect(o["model"] as? String == "gpt-4o-mini")
            #expect(o["created"] as? Int != nil)
            let m = Self.message(o)
            #expect(m["role"] as? String == "assistant")
            let text = m["content"] as? String ?? ""
            #expect(text.count > 20 && text.hasSuffix(".") && text.first?.isUppercase == true)
            #expect((o["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "stop")
            let u = Self.usage(o)
            let prompt = u["prompt_tokens"] as? Int ?? 0
            let completion = u["completion_tokens"] as? Int ?? 0
            #expect(prompt > 0 && completion > 0 && u["total_tokens"] as? Int == prompt + completion)
            #expect((u["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 0)
            #expect((u["completion_tokens_details"] as? [String: Any])?["reasoning_tokens"] as? Int == 0)
            // One output token per word.
            #expect(completion == text.split(separator: " ").count)
        }
    }

    @Test("max_tokens and max_completion_tokens bound the answer; finish_reason length")
    func maxTokens() async throws {
        try await Mock.withApp { client in
            for key in ["max_tokens", "max_completion_tokens"] {
                let r = try await Mock.post(client, Mock.openAI, Mock.openAIRequest(extra: [key: 3]))
                let o = Mock.object(r.body)
                #expect(Self.usage(o)["completion_tokens"] as? Int == 3)
                #expect((Self.message(o)["content"] as? String)?.split(separator: " ").count == 3)
                #expect((o["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "length")
            }
        }
    }

    @Test("streaming: role chunk, one content chunk per token, finish chunk, usage chunk, [DONE]")
    func stream() async throws {
        try await Mock.withApp { client in
            let request = Mock.openAIRequest("Stream please", extra: ["stream": true, "stream_options": ["include_usage": true]])
            let r = try await Mock.post(client, Mock.openAI, request)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "text/event-stream")
            let events = Mock.events(r.body)
            #expect(events.allSatisfy { $0.event == nil })
            #expect(events.last?.data == "[DONE]")
            let chunks = events.dropLast().map { Mock.object($0.data) }
            #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
            #expect(Set(chunks.compactMap { $0["id"] as? String }).count == 1)
            let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }
            #expect((deltas.first?["delta"] as? [String: Any])?["role"] as? String == "assistant")
            #expect(deltas.last?["finish_reason"] as? String == "stop")
            #expect(deltas.dropLast().allSatisfy { $0["finish_reason"] is NSNull })
            let contentChunks = deltas.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }.filter { !$0.isEmpty }
            let usageChunk = chunks.last ?? [:]
            #expect((usageChunk["choices"] as? [Any])?.isEmpty == true)
            #expect(Self.usage(usageChunk)["completion_tokens"] as? Int == contentChunks.count)

            // The same conversation without streaming gives the same text and id.
            let whole = Mock.object(try await Mock.post(client, Mock.openAI, Mock.openAIRequest("Stream please")).body)
            #expect(Self.message(whole)["content"] as? String == contentChunks.joined())
            #expect(whole["id"] as? String == chunks.first?["id"] as? String)

            // Without include_usage there is no usage chunk.
            let plain = Mock.events(try await Mock.post(client, Mock.openAI, Mock.openAIRequest("Stream please", extra: ["stream": true])).body)
            #expect(plain.dropLast().allSatisfy { Mock.object($0.data)["usage"] == nil })
        }
    }

    @Test("tools: a tool call with schema-typed arguments, streamed as delta.tool_calls; text after a tool result")
    func toolCalls() async throws {
        try await Mock.withApp { client in
            let forced: [String: Any] = ["tools": Mock.openAITools, "tool_choice": ["type": "function", "function": ["name": "get_weather"]]]
            let r = try await Mock.post(client, Mock.openAI, Mock.openAIRequest("Weather in Paris?", extra: forced))
            let o = Mock.object(r.body)
            #expect((o["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "tool_calls")
            let m = Self.message(o)
            #expect(m["content"] is NSNull)
            let call = (m["tool_calls"] as? [[String: Any]])?.first ?? [:]
            #expect(call["type"] as? String == "function")
            #expect((call["id"] as? String)?.hasPrefix("call_") == true)
            let function = call["function"] as? [String: Any] ?? [:]
            #expect(function["name"] as? String == "get_weather")
            let arguments = function["arguments"] as? String ?? ""
            let args = Mock.object(arguments)
            #expect(args["city"] is String)
            #expect(args["days"] is Int)
            #expect(["celsius", "fahrenheit"].contains(args["unit"] as? String ?? ""))
            #expect(args["detailed"] is Bool)
            #expect(args["note"] == nil)  // not required

            // Streamed: the first chunk names the call, the rest carry argument fragments by index.
            let s = try await Mock.post(client, Mock.openAI, Mock.openAIRequest("Weather in Paris?", extra: forced.merging(["stream": true]) { a, _ in a }))
            let deltas = Mock.events(s.body).dropLast().compactMap { (Mock.object($0.data)["choices"] as? [[String: Any]])?.first }
            var name = ""
            var streamedArguments = ""
            for d in deltas {
                for c in ((d["delta"] as? [String: Any])?["tool_calls"] as? [[String: Any]]) ?? [] {
                    #expect(c["index"] as? Int == 0)
                    let f = c["function"] as? [String: Any] ?? [:]
                    name += f["name"] as? String ?? ""
                    streamedArguments += f["arguments"] as? String ?? ""
                }
            }
            #expect(name == "get_weather")
            #expect(streamedArguments == arguments)
            #expect(deltas.last?["finish_reason"] as? String == "tool_calls")

            // After the tool result: text.
            let followUp: [String: Any] = [
                "model": "gpt-4o", "tools": Mock.openAITools,
                "messages": [
                    ["role": "user", "content": "Weather in Paris?"], m,
                    ["role": "tool", "tool_call_id": call["id"] ?? "", "content": "sunny"],
                ],
            ]
            let t = Mock.object(try await Mock.post(client, Mock.openAI, followUp).body)
            #expect((Self.message(t)["content"] as? String)?.isEmpty == false)
            #expect(Self.message(t)["tool_calls"] == nil)

            // "none" never calls; "required" calls the first tool.
            let none = Mock.object(try await Mock.post(client, Mock.openAI, Mock.openAIRequest("x", extra: ["tools": Mock.openAITools, "tool_choice": "none"])).body)
            #expect(Self.message(none)["tool_calls"] == nil)
            let required = Mock.object(try await Mock.post(client, Mock.openAI, Mock.openAIRequest("x", extra: ["tools": Mock.openAITools, "tool_choice": "required"])).body)
            #expect(((Self.message(required)["tool_calls"] as? [[String: Any]])?.first?["function"] as? [String: Any])?["name"] as? String == "get_weather")
        }
    }

    @Test("JSON mode answers a JSON object; a judge prompt gets score, label and explanation")
    func jsonMode() async throws {
        try await Mock.withApp { client in
            let judge: [String: Any] = [
                "model": "gpt-4o-mini", "response_format": ["type": "json_object"],
                "messages": [["role": "system", "content": "Grade the answer. Reply with a JSON score between 0 and 1."], ["role": "user", "content": "Q: 2+2? A: 4"]],
            ]
            let o = Mock.object(try await Mock.post(client, Mock.openAI, judge).body)
            let verdict = Mock.object(Self.message(o)["content"] as? String ?? "")
            let score = verdict["score"] as? Double ?? -1
            #expect(score >= 0 && score <= 1)
            #expect(["pass", "partial", "fail"].contains(verdict["label"] as? String ?? ""))
            #expect((verdict["explanation"] as? String)?.isEmpty == false)

            let streamed = Mock.events(try await Mock.post(client, Mock.openAI, Mock.openAIRequest("List facts", extra: ["response_format": ["type": "json_object"], "stream": true])).body)
            let text = streamed.dropLast().compactMap { ((Mock.object($0.data)["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }.joined()
            #expect(!Mock.object(text).isEmpty)
        }
    }

    @Test("usage: cached tokens for long prompts (multiple of 128), reasoning tokens for reasoning models, x-mock-cached-tokens")
    func usageDetails() async throws {
        try await Mock.withApp { client in
            let long = String(repeating: "word ", count: 3000)
            let o = Mock.object(try await Mock.post(client, Mock.openAI, Mock.openAIRequest(long, model: "o3-mini")).body)
            let u = Self.usage(o)
            let prompt = u["prompt_tokens"] as? Int ?? 0
            let cached = (u["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? 0
            #expect(prompt >= 3750)
            #expect(cached > 0 && cached % 128 == 0 && cached <= prompt)
            let reasoning = (u["completion_tokens_details"] as? [String: Any])?["reasoning_tokens"] as? Int ?? 0
            let visible = (Self.message(o)["content"] as? String ?? "").split(separator: " ").count
            #expect(reasoning > 0 && u["completion_tokens"] as? Int == visible + reasoning)

            for model in ["o1", "o4-mini", "gpt-5", "gpt-5-mini"] {
                let r = Self.usage(Mock.object(try await Mock.post(client, Mock.openAI, Mock.openAIRequest(model: model)).body))
                #expect(((r["completion_tokens_details"] as? [String: Any])?["reasoning_tokens"] as? Int ?? 0) > 0, "\(model)")
            }
            let forced = Self.usage(Mock.object(try await Mock.post(client, Mock.openAI, Mock.openAIRequest("hi"), headers: ["x-mock-cached-tokens": "3"]).body))
            #expect((forced["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 3)
        }
    }
}
