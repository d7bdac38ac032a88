import EvalForgeCore
import Foundation
import HummingbirdTesting
import MockLLM
import Testing

@testable import EvalForgeSDK

@Suite("SDK against the mock LLM over real HTTP")
struct SDKAgainstMockLLMTests {
    /// Runs the mock LLM and an OTLP receiver on loopback and gives a pipeline exporting to it.
    static func withStack(_ body: @Sendable (_ llm: String, _ pipeline: EvalForge.Pipeline, _ receiver: OTLPTestReceiver) async throws -> Void) async throws {
        var mock = MockLLMConfiguration.default
        mock.port = 0
        mock.latency = .fixed(ms: 30)
        mock.interChunkDelay = .milliseconds(2)
        let receiver = OTLPTestReceiver()
        try await buildMockLLMApplication(configuration: mock).test(.live) { llmClient in
            let llmPort = try #require(llmClient.port)
            try await receiver.withRunning { url in
                var c = EvalForge.Configuration.default
                c.exporter.endpoint = url
                c.content.capture = true
                let pipeline = EvalForge.Pipeline(configuration: c)
                try await body("http://127.0.0.1:\(llmPort)", pipeline, receiver)
            }
        }
    }

    static func body(_ o: [String: Any]) -> Data { try! JSONSerialization.data(withJSONObject: o) }

    @Test("OpenAI non-streaming and streaming calls become complete spans")
    func openAI() async throws {
        try await Self.withStack { llm, pipeline, receiver in
            let client = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: llm + "/v1", apiKey: "k", pipeline: pipeline)
            let who = LLMHTTPClient.CallContext(userID: "u1", sessionID: "s1", tags: ["t"])
            _ = try await client.send(Self.body(["model": "gpt-4o-mini", "max_tokens": 30, "temperature": 0.3, "messages": [["role": "user", "content": "mail bob@example.com"]]]), context: who)
            var text = ""
            for try await e in client.stream(Self.body(["model": "gpt-4o", "stream": true, "stream_options": ["include_usage": true], "messages": [["role": "user", "content": "hi"]]])) {
                if let o = try? JSONSerialization.jsonObject(with: Data(e.data.utf8)) as? [String: Any],
                    let d = ((o["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
                {
                    text += d
                }
            }
            #expect(!text.isEmpty)
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            let plain = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4o-mini" })
            #expect(plain.name == "chat gpt-4o-mini" && plain.kind == .client)
            #expect(plain.string(GenAIKeys.responseID)?.hasPrefix("chatcmpl-") == true)
            #expect((plain.int(GenAIKeys.usageInputTokens) ?? 0) > 0 && (plain.int(GenAIKeys.usageOutputTokens) ?? 0) > 0)
            #expect(plain.double(GenAIKeys.requestTemperature) == 0.3)
            #expect(plain.int(GenAIKeys.requestMaxTokens) == 30)
            #expect(plain.string(GenAIKeys.userID) == "u1" && plain.string(GenAIKeys.sessionID) == "s1")
            #expect((plain.double(GenAIKeys.costUSD) ?? 0) > 0)
            #expect(plain.string(GenAIKeys.serverAddress) == "127.0.0.1")
            #expect(plain.string(GenAIKeys.inputMessages)?.contains("[REDACTED_EMAIL]") == true)
            #expect(plain.string(GenAIKeys.outputMessages)?.isEmpty == false)
            #expect(Double(plain.endTimeUnixNano - plain.startTimeUnixNano) >= 30e6)

            let streamed = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4o" })
            #expect(streamed.bool(GenAIKeys.requestStream) == true)
            let ttft = try #require(streamed.double(GenAIKeys.timeToFirstChunk))
            #expect(ttft >= 0.03 && ttft < Double(streamed.endTimeUnixNano - streamed.startTimeUnixNano) / 1e9)
            #expect(streamed.strings(GenAIKeys.responseFinishReasons) == ["stop"])
            #expect((streamed.int(GenAIKeys.usageOutputTokens) ?? 0) > 0)
            #expect(streamed.string(GenAIKeys.outputMessages)?.contains(text.prefix(20)) == true)
            #expect(streamed.status.code == .unset)
        }
    }

    @Test("Anthropic calls, tool calls and cache accounting")
    func anthropic() async throws {
        try await Self.withStack { llm, pipeline, receiver in
            let client = try LLMHTTPClient(api: .anthropicMessages, baseURL: llm, apiKey: "k", pipeline: pipeline)
            let long = String(repeating: "context ", count: 1500)
            _ = try await client.send(Self.body(["model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [["role": "user", "content": long]]]))
            let tools: [[String: Any]] = [["name": "lookup", "input_schema": ["type": "object", "properties": ["q": ["type": "string"]], "required": ["q"]]]]
            for try await _ in client.stream(Self.body(["model": "claude-haiku-4-5", "max_tokens": 50, "stream": true, "tools": tools, "messages": [["role": "user", "content": "find it"]]])) {}
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            let cached = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "claude-sonnet-4-5" })
            let input = try #require(cached.int(GenAIKeys.usageInputTokens))
            let read = try #require(cached.int(GenAIKeys.usageCacheReadInputTokens))
            #expect(read > 0 && input > read)  // input includes the cached part
            #expect(cached.string(GenAIKeys.providerName) == "anthropic")
            let tool = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "claude-haiku-4-5" })
            #expect(tool.strings(GenAIKeys.responseFinishReasons) == ["tool_use"])
            #expect(tool.string(GenAIKeys.outputMessages)?.contains("\"name\":\"lookup\"") == true)
            #expect(tool.double(GenAIKeys.timeToFirstChunk) != nil)
        }
    }

    @Test("faults become span status and error.type; the caller gets the provider's error")
    func faults() async throws {
        try await Self.withStack { llm, pipeline, receiver in
            func client(_ fault: String, _ api: LLMHTTPClient.API = .openAIChatCompletions) throws -> LLMHTTPClient {
                try LLMHTTPClient(api: api, baseURL: api == .openAIChatCompletions ? llm + "/v1" : llm, headers: ["x-mock-fault": fault], pipeline: pipeline)
            }
            let oa = Self.body(["model": "gpt-4o", "messages": [["role": "user", "content": "x"]]])
            let an = Self.body(["model": "claude-haiku-4-5", "max_tokens": 20, "messages": [["role": "user", "content": "x"]]])
            do {
                _ = try await client("429").send(oa)
                Issue.record("expected a 429")
            } catch let e as LLMHTTPError {
                #expect(e.status == 429 && e.retryAfter == .seconds(1) && e.message.contains("Rate limit"))
            }
            await #expect(throws: LLMHTTPError.self) { _ = try await client("529", .anthropicMessages).send(an) }
            await #expect(throws: LLMHTTPError.self) { _ = try await client("malformed").send(oa) }
            await #expect(throws: (any Error).self) {
                for try await _ in try client("cut").stream(Self.body(["model": "gpt-4o", "stream": true, "messages": [["role": "user", "content": "x"]]])) {}
            }
            let cancelled = Task {
                for try await _ in try client("none").stream(Self.body(["model": "gpt-4o", "stream": true, "messages": [["role": "user", "content": "x"]]])) {
                    try await Task.sleep(for: .seconds(5))
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            cancelled.cancel()
            _ = await cancelled.result
            // An unreachable provider.
            let down = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: "http://127.0.0.1:9/v1", pipeline: pipeline)
            await #expect(throws: (any Error).self) { _ = try await down.send(oa) }
            try await Task.sleep(for: .milliseconds(200))
            await pipeline.forceFlush()
            let types = receiver.spans.map { $0.span.string(GenAIKeys.errorType) ?? "none" }
            #expect(types.contains("429"))
            #expect(types.contains("529"))
            #expect(types.contains("malformed_response"))
            #expect(types.contains { $0 == "stream_truncated" || $0.hasPrefix("url_error") || $0 == "connection_error" })
            #expect(types.contains("connection_error") || types.contains { $0.hasPrefix("url_error") })
            #expect(receiver.spans.filter { $0.span.status.code == .error }.count >= 5)
        }
    }
}

@Suite("OpenAI streams: usage requested by the SDK, cost unknown without it")
struct StreamUsageAgainstMockLLMTests {
    static func streamedSpan(requestUsage: Bool, body: Data) async throws -> OTLPSpan? {
        var mock = MockLLMConfiguration.default
        mock.port = 0
        mock.latency = .fixed(ms: 5)
        let receiver = OTLPTestReceiver()
        return try await buildMockLLMApplication(configuration: mock).test(.live) { llmClient in
            let llmPort = try #require(llmClient.port)
            return try await receiver.withRunning { url in
                var c = EvalForge.Configuration.default
                c.exporter.endpoint = url
                c.cost.requestStreamUsage = requestUsage
                let pipeline = EvalForge.Pipeline(configuration: c)
                let client = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: "http://127.0.0.1:\(llmPort)/v1", apiKey: "k", pipeline: pipeline)
                for try await _ in client.stream(body) {}
                _ = try await client.send(SDKAgainstMockLLMTests.body(["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]]))
                await pipeline.forceFlush()
                let plain = try #require(receiver.spans.map(\.span).first { $0.name == "chat gpt-4o-mini" })
                #expect(plain.bool(GenAIKeys.requestStream) == false)  // set on every model call
                return receiver.spans.map(\.span).first { $0.name == "chat gpt-4o" }
            }
        }
    }

    static func streaming(_ extra: [String: Any] = [:]) -> Data {
        var o: [String: Any] = ["model": "gpt-4o", "stream": true, "messages": [["role": "user", "content": "hi"]]]
        for (k, v) in extra { o[k] = v }
        return SDKAgainstMockLLMTests.body(o)
    }

    @Test("a stream without stream_options gets usage and a cost: the SDK adds include_usage")
    func added() async throws {
        let span = try #require(try await Self.streamedSpan(requestUsage: true, body: Self.streaming()))
        #expect(span.bool(GenAIKeys.requestStream) == true)
        #expect((span.int(GenAIKeys.usageOutputTokens) ?? 0) > 0)
        #expect((span.double(GenAIKeys.costUSD) ?? 0) > 0 && span.bool(GenAIKeys.costUnknown) == nil)
    }

    @Test("turned off, or the caller said include_usage false: no usage, so cost is unknown, never zero")
    func missingUsageIsUnknownCost() async throws {
        let declined = Self.streaming(["stream_options": ["include_usage": false]])
        for (requestUsage, body) in [(false, Self.streaming()), (true, declined)] {
            let span = try #require(try await Self.streamedSpan(requestUsage: requestUsage, body: body))
            #expect(span.int(GenAIKeys.usageOutputTokens) == nil)
            #expect(span.double(GenAIKeys.costUSD) == nil)
            #expect(span.bool(GenAIKeys.costUnknown) == true)
        }
    }
}
