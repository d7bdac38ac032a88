import AsyncHTTPClient
import EvalForgeAsyncHTTPClient
import EvalForgeCore
import Foundation
import HummingbirdTesting
import MockLLM
import Testing

@testable import EvalForgeSDK

/// The transports a Swift service records LLM calls through; each is run over real HTTP on
/// loopback against the mock LLM with the same scenarios.
enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case urlSession
    case asyncHTTPClient

    var testDescription: String { rawValue }

    func client(_ api: LLMAPI, baseURL: String, headers: [String: String] = [:], maxCallDuration: Duration = .seconds(60), pipeline: EvalForge.Pipeline) throws -> any LLMClient {
        switch self {
        case .urlSession:
            try LLMHTTPClient(api: api, baseURL: baseURL, apiKey: "k", maxCallDuration: maxCallDuration, headers: headers, pipeline: pipeline)
        case .asyncHTTPClient:
            try LLMAsyncHTTPClient(api: api, baseURL: baseURL, apiKey: "k", maxCallDuration: maxCallDuration, headers: headers, pipeline: pipeline)
        }
    }
}

@Suite("Transports (URLSession, AsyncHTTPClient) against the mock LLM over real HTTP")
struct TransportTests {
    static func base(_ llm: String, _ api: LLMAPI) -> String { api == .anthropicMessages ? llm : llm + "/v1" }

    @Test("chat, Responses API, embeddings and messages, typed, streaming and not: usage, cost, TTFT, text", arguments: Transport.allCases)
    func calls(_ transport: Transport) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            let chat = try transport.client(.openAIChatCompletions, baseURL: llm + "/v1", pipeline: pipeline)
            let reply = try await chat.send(OpenAIChat.Request(model: "gpt-4o-mini", messages: [.user("hello")], maxCompletionTokens: 30), as: OpenAIChat.Response.self)
            #expect(!reply.text.isEmpty && reply.usage?.promptTokens != nil)
            var chatText = ""
            for try await t in chat.stream(OpenAIChat.Request(model: "gpt-4o", messages: [.user("stream please")])).text { chatText += t }
            #expect(!chatText.isEmpty)

            let responses = try transport.client(.openAIResponses, baseURL: llm + "/v1", pipeline: pipeline)
            let r = try await responses.send(OpenAIResponses.Request(model: "gpt-4.1-mini", input: "hi there", instructions: "be brief"), as: OpenAIResponses.Response.self)
            #expect(!r.text.isEmpty && r.status == "completed")
            var respText = ""
            for try await t in responses.stream(OpenAIResponses.Request(model: "gpt-4.1", input: "hi there")).text { respText += t }
            #expect(!respText.isEmpty)

            let embeddings = try transport.client(.openAIEmbeddings, baseURL: llm + "/v1", pipeline: pipeline)
            let e = try await embeddings.send(OpenAIEmbeddings.Request(model: "text-embedding-3-small", input: ["a", "bb"], dimensions: 8), as: OpenAIEmbeddings.Response.self)
            #expect(e.data.count == 2 && e.data[0].embedding.count == 8)

            let messages = try transport.client(.anthropicMessages, baseURL: llm, pipeline: pipeline)
            var anText = ""
            for try await t in messages.stream(AnthropicMessages.Request(model: "claude-haiku-4-5", maxTokens: 40, messages: [.user("hey")])).text { anText += t }
            #expect(!anText.isEmpty)

            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            let plain = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4o-mini" })
            #expect(plain.int(GenAIKeys.usageInputTokens) == Int64(reply.usage?.promptTokens ?? -1))
            #expect((plain.double(GenAIKeys.costUSD) ?? 0) > 0)
            let streamed = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4o" })
            #expect(streamed.double(GenAIKeys.timeToFirstChunk) != nil && (streamed.int(GenAIKeys.usageOutputTokens) ?? 0) > 0)
            #expect(streamed.string(GenAIKeys.outputMessages)?.contains(String(chatText.prefix(20))) == true)

            let resp = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4.1-mini" })
            #expect(resp.int(GenAIKeys.usageInputTokens) == Int64(r.usage?.inputTokens ?? -1))
            #expect(resp.int(GenAIKeys.usageOutputTokens) == Int64(r.usage?.outputTokens ?? -1))
            #expect(resp.string(GenAIKeys.responseID)?.hasPrefix("resp_") == true && resp.strings(GenAIKeys.responseFinishReasons) == ["stop"])
            #expect(resp.string(GenAIKeys.systemInstructions)?.contains("be brief") == true)
            #expect((resp.double(GenAIKeys.costUSD) ?? 0) > 0 && resp.status.code == .unset)
            let respStream = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4.1" })
            #expect(respStream.double(GenAIKeys.timeToFirstChunk) != nil && (respStream.int(GenAIKeys.usageOutputTokens) ?? 0) > 0)
            #expect(respStream.string(GenAIKeys.outputMessages)?.contains(String(respText.prefix(20))) == true)
            #expect(respStream.status.code == .unset && respStream.bool(GenAIKeys.requestStream) == true)

            let emb = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "text-embedding-3-small" })
            #expect(emb.string(GenAIKeys.operationName) == "embeddings" && emb.name == "embeddings text-embedding-3-small")
            #expect(emb.int(GenAIKeys.usageInputTokens) == Int64(e.usage?.promptTokens ?? -1) && (emb.double(GenAIKeys.costUSD) ?? 0) > 0)
            let an = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "claude-haiku-4-5" })
            #expect(an.double(GenAIKeys.timeToFirstChunk) != nil && an.status.code == .unset)
        }
    }

    @Test("forgetting or adding \"stream\": true is a clear invalid_request before anything is sent", arguments: Transport.allCases)
    func streamFlag(_ transport: Transport) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            let chat = try transport.client(.openAIChatCompletions, baseURL: llm + "/v1", pipeline: pipeline)
            let noStream = SDKAgainstMockLLMTests.body(["model": "gpt-4o", "messages": [["role": "user", "content": "x"]]])
            do {
                for try await _ in chat.stream(noStream, context: LLMCallContext()) {}
                Issue.record("expected invalid_request")
            } catch let e as LLMHTTPError {
                #expect(e.errorType == "invalid_request" && e.message.contains("\"stream\": true"))
            }
            let streams = SDKAgainstMockLLMTests.body(["model": "gpt-4o", "stream": true, "messages": [["role": "user", "content": "x"]]])
            do {
                _ = try await chat.send(streams, context: LLMCallContext())
                Issue.record("expected invalid_request")
            } catch let e as LLMHTTPError {
                #expect(e.errorType == "invalid_request" && e.message.contains("stream(_:)"))
            }
            await pipeline.forceFlush()
            #expect(receiver.spans.isEmpty)
        }
    }

    @Test("breaking out of a stream cancels the request and ends the span at once as cancelled", arguments: Transport.allCases)
    func breakOut(_ transport: Transport) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            // 1.5 s between chunks and at least 10 chunks: running to the end takes 15 s or more, breaking
            // after the second chunk about 3 s (the bound leaves room for a loaded machine).
            for api in [LLMAPI.openAIChatCompletions, .openAIResponses, .anthropicMessages] {
                let client = try transport.client(api, baseURL: Self.base(llm, api), headers: ["x-mock-inter-token-ms": "1500"], pipeline: pipeline)
                let body: Data
                switch api {
                case .openAIResponses: body = try JSONEncoder().encode(["model": "gpt-4.1", "input": "x"])
                case .anthropicMessages: body = SDKAgainstMockLLMTests.body(["model": "claude-haiku-4-5", "max_tokens": 50, "messages": [["role": "user", "content": "x"]]])
                default: body = SDKAgainstMockLLMTests.body(["model": "gpt-4o", "messages": [["role": "user", "content": "x"]]])
                }
                var o = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
                o["stream"] = true
                let started = ContinuousClock.now
                var seen = 0
                for try await _ in client.stream(SDKAgainstMockLLMTests.body(o), context: LLMCallContext()) {
                    seen += 1
                    if seen == 2 { break }
                }
                let elapsed = ContinuousClock.now - started
                #expect(elapsed < .seconds(12))
            }
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            #expect(spans.count == 3)
            for s in spans {
                #expect(s.string(GenAIKeys.errorType) == "cancelled")
                #expect(s.status.code == .error)
                #expect(Double(s.endTimeUnixNano - s.startTimeUnixNano) < 12e9)
            }
        }
    }

    @Test("stopping at the final event is a complete answer, not a cancellation", arguments: Transport.allCases)
    func stopAtFinalEvent(_ transport: Transport) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            let client = try transport.client(.openAIResponses, baseURL: llm + "/v1", pipeline: pipeline)
            for try await e in client.stream(OpenAIResponses.Request(model: "gpt-4.1", input: "x")) where e.event == "response.completed" { break }
            await pipeline.forceFlush()
            let span = try #require(receiver.spans.first?.span)
            #expect(span.status.code == .unset && span.string(GenAIKeys.errorType) == nil)
            #expect((span.int(GenAIKeys.usageOutputTokens) ?? 0) > 0)
        }
    }

    @Test("a cancelled consuming task ends the stream's span as cancelled", arguments: Transport.allCases)
    func taskCancel(_ transport: Transport) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            let client = try transport.client(.openAIResponses, baseURL: llm + "/v1", headers: ["x-mock-inter-token-ms": "300"], pipeline: pipeline)
            let task = Task {
                for try await _ in client.stream(OpenAIResponses.Request(model: "gpt-4.1", input: "x")).text {}
            }
            try await Task.sleep(for: .milliseconds(400))
            task.cancel()
            _ = await task.result
            await pipeline.forceFlush()
            let span = try #require(receiver.spans.first?.span)
            #expect(span.string(GenAIKeys.errorType) == "cancelled")
        }
    }

    @Test("user, session, tags and metadata flow from withContext and withStep into nested steps and calls", arguments: Transport.allCases)
    func contextFlows(_ transport: Transport) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            let chat = try transport.client(.openAIChatCompletions, baseURL: llm + "/v1", pipeline: pipeline)
            try await EvalForge.withContext(LLMCallContext(userID: "u-7", tags: ["outer"])) {
                try await EvalForge.withStep(.invokeAgent, name: "planner", context: LLMCallContext(sessionID: "s-9", tags: ["agent"], metadata: ["tier": "gold"]), pipeline: pipeline) { _ in
                    try await EvalForge.withStep(.executeTool, name: "search", pipeline: pipeline) { _ in
                        _ = try await chat.send(OpenAIChat.Request(model: "gpt-4o-mini", messages: [.user("x")]), as: OpenAIChat.Response.self)
                    }
                }
            }
            // Outside the blocks nothing is carried over.
            _ = try await chat.send(OpenAIChat.Request(model: "gpt-4o", messages: [.user("x")]), as: OpenAIChat.Response.self)
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            for name in ["invoke_agent planner", "execute_tool search", "chat gpt-4o-mini"] {
                let s = try #require(spans.first { $0.name == name })
                #expect(s.string(GenAIKeys.userID) == "u-7", "\(name)")
                #expect(s.string(GenAIKeys.sessionID) == "s-9", "\(name)")
                #expect(s.strings(GenAIKeys.tags) == ["outer", "agent"], "\(name)")
                #expect(s.string(GenAIKeys.metadataPrefix + "tier") == "gold", "\(name)")
            }
            let outside = try #require(spans.first { $0.name == "chat gpt-4o" })
            #expect(outside.string(GenAIKeys.userID) == nil && outside.strings(GenAIKeys.tags) == nil)
        }
    }

    @Test("injected faults: the caller gets the provider's error, the span records it, nothing hangs", arguments: Transport.allCases)
    func faults(_ transport: Transport) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            for api in [LLMAPI.openAIChatCompletions, .openAIResponses, .openAIEmbeddings] {
                for fault in ["429", "malformed", "cut"] {
                    let client = try transport.client(api, baseURL: llm + "/v1", headers: ["x-mock-fault": fault], pipeline: pipeline)
                    var o: [String: Any] = ["model": api == .openAIEmbeddings ? "text-embedding-3-small" : "gpt-4o"]
                    switch api {
                    case .openAIResponses: o["input"] = "x"
                    case .openAIEmbeddings: o["input"] = ["x"]
                    default: o["messages"] = [["role": "user", "content": "x"]]
                    }
                    await #expect(throws: (any Error).self, "\(api) \(fault) send") { _ = try await client.send(SDKAgainstMockLLMTests.body(o), context: LLMCallContext()) }
                    if api.canStream {
                        o["stream"] = true
                        await #expect(throws: (any Error).self, "\(api) \(fault) stream") {
                            for try await _ in client.stream(SDKAgainstMockLLMTests.body(o), context: LLMCallContext()) {}
                        }
                    }
                }
            }
            let down = try transport.client(.openAIChatCompletions, baseURL: "http://127.0.0.1:9/v1", pipeline: pipeline)
            let started = ContinuousClock.now
            await #expect(throws: (any Error).self) { _ = try await down.send(OpenAIChat.Request(model: "gpt-4o", messages: [.user("x")]), as: OpenAIChat.Response.self) }
            #expect(ContinuousClock.now - started < .seconds(15), "an unreachable provider fails the call at once, not at the deadline")
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            let expected = 16  // 3 APIs × 3 faults sent, 2 streaming APIs × 3 faults streamed, 1 unreachable
            #expect(spans.count == expected)
            #expect(spans.allSatisfy { $0.status.code == .error && $0.string(GenAIKeys.errorType) != nil })
            let types = Set(spans.compactMap { $0.string(GenAIKeys.errorType) })
            #expect(types.contains("429") && types.contains("malformed_response") && types.contains("connection_error"))
        }
    }

    @Test("a provider's absurd answers and headers: the span keeps what is known plus the problem; the caller gets an error or the body", arguments: Transport.allCases)
    func hostileAnswers(_ transport: Transport) async throws {
        let peer = HostilePeer()
        let receiver = OTLPTestReceiver()
        try await peer.withRunning { url in
            try await receiver.withRunning { collector in
                var c = EvalForge.Configuration.default
                c.exporter.endpoint = collector
                // Generous call limits: no answer here is slow by design, and a loaded machine must not turn one into a timeout.
                let pipeline = EvalForge.Pipeline(configuration: c)
                let responses = try transport.client(.openAIResponses, baseURL: url + "/v1", maxCallDuration: .seconds(30), pipeline: pipeline)
                // Absurd token counts and Retry-After.
                peer.set(.init(headers: [("retry-after", "99999999999999999999")], chunks: [#"{"id":"resp_1","model":"gpt-4.1","status":"completed","output":[],"usage":{"input_tokens":1e300,"output_tokens":-5}}"#]))
                _ = try await responses.send(try JSONEncoder().encode(["model": "gpt-4.1", "input": "x"]), context: LLMCallContext())
                peer.set(.init(status: 429, headers: [("retry-after", "-1e308")], chunks: [String(repeating: "x", count: 200_000)]))
                await #expect(throws: LLMHTTPError.self) { _ = try await responses.send(try JSONEncoder().encode(["model": "gpt-4.1", "input": "x"]), context: LLMCallContext()) }
                // A stream of garbage, then one cut before response.completed.
                peer.set(.init(chunks: ["event: response.output_text.delta\ndata: {not json\n\n", "data: \u{0}\u{1}\n\n"], contentType: "text/event-stream"))
                await #expect(throws: (any Error).self) {
                    for try await _ in responses.stream(SDKAgainstMockLLMTests.body(["model": "gpt-4.1-garbage", "input": "x", "stream": true]), context: LLMCallContext()) {}
                }
                peer.set(.init(chunks: [#"data: {"type":"response.output_text.delta","delta":"hel"}"# + "\n\n"], contentType: "text/event-stream"))
                let body = SDKAgainstMockLLMTests.body(["model": "gpt-4.1-cut", "input": "x", "stream": true])
                await #expect(throws: (any Error).self) { for try await _ in responses.stream(body, context: LLMCallContext()) {} }
                // Non-UTF-8 bytes for a JSON answer.
                let chat = try transport.client(.openAIChatCompletions, baseURL: url + "/v1", maxCallDuration: .seconds(30), pipeline: pipeline)
                peer.set(.init(raw: [0xff, 0xfe, 0x00, 0x7b]))
                await #expect(throws: LLMHTTPError.self) { _ = try await chat.send(OpenAIChat.Request(model: "gpt-4o", messages: [.user("x")]), as: OpenAIChat.Response.self) }
                // A valid answer that misses a field the typed response needs: malformed, naming it.
                peer.set(.init(chunks: [#"{"id":"c1","model":"gpt-4o","choices":[{"index":0,"message":{"content":"hi"}}]}"#]))
                do {
                    _ = try await chat.send(OpenAIChat.Request(model: "gpt-4o", messages: [.user("x")]), as: OpenAIChat.Response.self)
                    Issue.record("expected malformed_response")
                } catch let e as LLMHTTPError {
                    #expect(e.errorType == "malformed_response" && e.message.contains("role"))
                }
                await pipeline.forceFlush()
                let spans = receiver.spans.map(\.span)
                let absurd = try #require(spans.first { $0.string(GenAIKeys.responseID) == "resp_1" })
                #expect(absurd.int(GenAIKeys.usageInputTokens) == nil && absurd.int(GenAIKeys.usageOutputTokens) == nil)
                #expect(absurd.string(GenAIKeys.responseProblem)?.contains("usage.input_tokens") == true)
                #expect(absurd.string(GenAIKeys.responseModel) == "gpt-4.1")
                let cut = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4.1-cut" })
                #expect(cut.string(GenAIKeys.errorType) == "stream_truncated" && cut.double(GenAIKeys.timeToFirstChunk) != nil)
                #expect(spans.contains { $0.string(GenAIKeys.errorType) == "429" })
                #expect(spans.filter { $0.string(GenAIKeys.errorType) == "malformed_response" }.count >= 1)
                let garbage = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4.1-garbage" })
                #expect(garbage.string(GenAIKeys.errorType) == "stream_truncated" && garbage.string(GenAIKeys.responseProblem)?.contains("not a JSON object") == true)
            }
        }
    }
}

@Suite("LLMAPI recognises operations by path")
struct LLMAPIPathTests {
    @Test("OpenAI- and Anthropic-shaped paths, with prefixes and queries; others are nil")
    func paths() {
        #expect(LLMAPI(path: "/v1/chat/completions") == .openAIChatCompletions)
        #expect(LLMAPI(path: "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21") == .openAIChatCompletions)
        #expect(LLMAPI(path: "/chat/completions/") == .openAIChatCompletions)
        #expect(LLMAPI(path: "/v1/responses") == .openAIResponses)
        #expect(LLMAPI(path: "/v1/embeddings") == .openAIEmbeddings)
        #expect(LLMAPI(path: "/v1/messages") == .anthropicMessages)
        #expect(LLMAPI(path: "/v1/threads/thread_abc/messages") == nil)
        #expect(LLMAPI(path: "/v1/responses/resp_1/input_items") == nil)
        #expect(LLMAPI(path: "/v1/models") == nil)
        #expect(LLMAPI(path: "") == nil)
    }

    @Test("text deltas are decoded per API; events without text give nil")
    func textDeltas() {
        #expect(LLMAPI.openAIChatCompletions.textDelta(ServerSentEvent(data: #"{"choices":[{"index":0,"delta":{"content":"hé"}}]}"#)) == "hé")
        #expect(LLMAPI.openAIChatCompletions.textDelta(ServerSentEvent(data: "[DONE]")) == nil)
        #expect(LLMAPI.openAIResponses.textDelta(ServerSentEvent(event: "response.output_text.delta", data: #"{"type":"response.output_text.delta","delta":"a"}"#)) == "a")
        #expect(LLMAPI.openAIResponses.textDelta(ServerSentEvent(event: "response.completed", data: #"{"type":"response.completed"}"#)) == nil)
        #expect(LLMAPI.anthropicMessages.textDelta(ServerSentEvent(event: "content_block_delta", data: #"{"type":"content_block_delta","delta":{"type":"text_delta","text":"b"}}"#)) == "b")
        #expect(LLMAPI.anthropicMessages.textDelta(ServerSentEvent(event: "content_block_delta", data: #"{"type":"content_block_delta","delta":{"type":"input_json_delta","partial_json":"{"}}"#)) == nil)
        #expect(LLMAPI.openAIChatCompletions.textDelta(ServerSentEvent(data: "{garbage")) == nil)
    }
}
