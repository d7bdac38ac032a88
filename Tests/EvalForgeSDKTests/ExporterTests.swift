import EvalForgeCore
import Foundation
import Testing

@testable import EvalForgeSDK

@Suite("OTLP export to a real receiver")
struct ExporterTests {
    func config(_ endpoint: String, _ edit: (inout EvalForge.Configuration) -> Void = { _ in }) -> EvalForge.Configuration {
        var c = EvalForge.Configuration.default
        c.serviceName = "sdk-tests"
        c.project = "proj-1"
        c.exporter.endpoint = endpoint
        c.buffer.flushInterval = .milliseconds(50)
        c.exporter.initialBackoff = .milliseconds(20)
        edit(&c)
        return c
    }

    @Test("every GenAI attribute, ids, timing and status arrive decoded")
    func attributesRoundTrip() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: config(url) {
                $0.content.capture = true
                $0.exporter.gzip = true
            })
            var request = LLMRequest(provider: LLMProvider.openAI, model: "gpt-4o-mini")
            request.temperature = 0.2
            request.maxTokens = 256
            request.topP = 0.9
            request.stopSequences = ["END"]
            request.seed = 7
            request.stream = true
            request.serverAddress = "api.openai.com"
            request.serverPort = 443
            request.conversationID = "conv-1"
            request.userID = "user-9"
            request.sessionID = "sess-3"
            request.tags = ["beta", "checkout"]
            request.metadata = ["tenant": "acme"]
            var span = pipeline.startLLMCall(request)
            span.responseModel = "gpt-4o-mini-2024-07-18"
            span.responseID = "chatcmpl-123"
            span.finishReasons = ["stop"]
            span.usage = TokenUsage(input: 1000, output: 200, cacheRead: 400, reasoning: 50)
            span.markFirstChunk()
            span.setInput(#"[{"role":"user","parts":[{"type":"text","content":"mail me at a.b@example.com"}]}]"#)
            span.setOutput(#"[{"role":"assistant","parts":[{"type":"text","content":"ok"}]}]"#)
            span.setAttribute("app.feature", "search")
            let parent = span.traceParent
            span.end()

            var failed = pipeline.startLLMCall(LLMRequest(provider: LLMProvider.anthropic, model: "claude-sonnet-4-5"), parent: parent)
            failed.recordError(type: "429", message: "rate limited")
            failed.end()

            await pipeline.forceFlush()
            #expect(await receiver.waitForSpans(2) == 2)
            let spans = receiver.spans
            let resource = try #require(spans.first?.resource)
            let resAttrs = Dictionary(uniqueKeysWithValues: resource.attributes.map { ($0.key, $0.value.stringValue) })
            #expect(resAttrs["service.name"] == "sdk-tests")
            #expect(resAttrs["evalforge.project"] == "proj-1")
            #expect(resAttrs["telemetry.sdk.language"] == "swift")
            #expect(resAttrs[GenAIKeys.priceTable] == PriceTable.builtInVersion)

            let s = try #require(spans.first { $0.span.name == "chat gpt-4o-mini" }?.span)
            #expect(s.kind == .client)
            #expect(s.traceID.count == 16 && s.spanID.count == 8 && s.parentSpanID.isEmpty)
            #expect(s.traceIDHex == parent.traceID.hexString)
            #expect(s.endTimeUnixNano >= s.startTimeUnixNano && s.startTimeUnixNano > 1_700_000_000_000_000_000)
            #expect(s.string(GenAIKeys.operationName) == "chat")
            #expect(s.string(GenAIKeys.providerName) == "openai")
            #expect(s.string(GenAIKeys.requestModel) == "gpt-4o-mini")
            #expect(s.string(GenAIKeys.responseModel) == "gpt-4o-mini-2024-07-18")
            #expect(s.string(GenAIKeys.responseID) == "chatcmpl-123")
            #expect(s.strings(GenAIKeys.responseFinishReasons) == ["stop"])
            #expect(s.int(GenAIKeys.usageInputTokens) == 1000)
            #expect(s.int(GenAIKeys.usageOutputTokens) == 200)
            #expect(s.int(GenAIKeys.usageCacheReadInputTokens) == 400)
            #expect(s.int(GenAIKeys.usageReasoningOutputTokens) == 50)
            #expect(s.double(GenAIKeys.requestTemperature) == 0.2)
            #expect(s.int(GenAIKeys.requestMaxTokens) == 256)
            #expect(s.double(GenAIKeys.requestTopP) == 0.9)
            #expect(s.strings(GenAIKeys.requestStopSequences) == ["END"])
            #expect(s.int(GenAIKeys.requestSeed) == 7)
            #expect(s.bool(GenAIKeys.requestStream) == true)
            #expect(s.string(GenAIKeys.serverAddress) == "api.openai.com")
            #expect(s.int(GenAIKeys.serverPort) == 443)
            #expect(s.string(GenAIKeys.conversationID) == "conv-1")
            #expect(s.string(GenAIKeys.userID) == "user-9")
            #expect(s.string(GenAIKeys.sessionID) == "sess-3")
            #expect(s.strings(GenAIKeys.tags) == ["beta", "checkout"])
            #expect(s.string("evalforge.metadata.tenant") == "acme")
            #expect(s.string("app.feature") == "search")
            #expect((s.double(GenAIKeys.timeToFirstChunk) ?? -1) >= 0)
            // gpt-4o-mini: 600 plain input × 0.15 + 400 cached × 0.075 + 200 output × 0.60 per million.
            let expected = (600 * 0.15 + 400 * 0.075 + 200 * 0.60) / 1_000_000
            #expect(abs((s.double(GenAIKeys.costUSD) ?? 0) - expected) < 1e-12)
            #expect(s.string(GenAIKeys.inputMessages)?.contains("[REDACTED_EMAIL]") == true)
            #expect(s.string(GenAIKeys.inputMessages)?.contains("example.com") == false)
            #expect(s.string(GenAIKeys.outputMessages)?.contains("ok") == true)
            #expect(s.status.code == .unset)

            let f = try #require(spans.first { $0.span.name == "chat claude-sonnet-4-5" }?.span)
            #expect(f.parentSpanIDHex == parent.spanID.hexString)
            #expect(f.traceIDHex == parent.traceID.hexString)
            #expect(f.status.code == .error)
            #expect(f.status.message == "rate limited")
            #expect(f.string(GenAIKeys.errorType) == "429")
            #expect(f.bool(GenAIKeys.costUnknown) == true)
            #expect(f.double(GenAIKeys.costUSD) == nil)
            #expect(receiver.requests.first?.headers["content-encoding"] == "gzip")
        }
    }

    @Test("a full buffer drops and counts; what was accepted is exported")
    func bufferOverflowDropsAndCounts() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: config(url) {
                $0.buffer.maxSpans = 10
                $0.buffer.maxBatchSpans = 4
            })
            for _ in 0..<25 {
                var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
                s.end()
            }
            var stats = pipeline.statistics
            #expect(stats.recorded == 25)
            #expect(stats.droppedBufferFull == 15)
            #expect(stats.buffered == 10)
            await pipeline.forceFlush()
            #expect(await receiver.waitForSpans(10) == 10)
            stats = pipeline.statistics
            #expect(stats.exported == 10)
            #expect(stats.buffered == 0)
            #expect(receiver.requests.count == 3)  // batches of 4, 4, 2
        }
    }

    @Test("concurrent export requests deliver every span exactly once", arguments: [1, 4])
    func concurrentExports(concurrency: Int) async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: config(url) {
                $0.buffer.maxSpans = 10_000
                $0.buffer.maxBatchSpans = 50
                $0.exporter.maxConcurrentExports = concurrency
            })
            for i in 0..<1_000 {
                var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
                s.usage = TokenUsage(input: i, output: 1)
                s.end()
            }
            await pipeline.forceFlush(timeout: .seconds(120))  // generous: CI runs suites in parallel
            #expect(await receiver.waitForSpans(1_000) >= 1_000)
            #expect(pipeline.statistics.exported == 1_000)
            #expect(receiver.requests.count >= 20)  // 20 batches of 50 (more only if a slow request was retried)
            #expect(receiver.requests.allSatisfy { $0.headers["content-encoding"] == nil })  // gzip is off by default
            let ids = Set(receiver.spans.map { $0.span.spanID })
            #expect(ids.count == 1_000)
        }
    }

    @Test("shutdown flushes what is buffered")
    func shutdownFlushes() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: config(url) { $0.buffer.flushInterval = .seconds(60) })
            let runner = Task { try await pipeline.run() }
            for i in 0..<100 {
                var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
                s.usage = TokenUsage(input: i, output: 1)
                s.end()
            }
            await pipeline.shutdown()
            try await runner.value
            #expect(receiver.spans.count == 100)
            #expect(pipeline.statistics.exported == 100)
        }
    }

    @Test("429 with Retry-After is retried after the given delay")
    func retryAfterHonoured() async throws {
        let receiver = OTLPTestReceiver()
        receiver.enqueueAnswers([(429, "1"), (503, nil)])
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: config(url))
            var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            s.end()
            let start = ContinuousClock.now
            await pipeline.forceFlush(timeout: .seconds(20))
            let elapsed = ContinuousClock.now - start
            #expect(receiver.spans.count == 1)
            #expect(elapsed >= .milliseconds(950))
            let stats = pipeline.statistics
            #expect(stats.exportRequests == 3)
            #expect(stats.exportRetries == 2)
            #expect(stats.exported == 1)
        }
    }

    @Test("a 400 from the collector drops the batch and counts it")
    func rejectedBatchCounted() async throws {
        let receiver = OTLPTestReceiver()
        receiver.enqueueAnswers([(400, nil)])
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: config(url))
            var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            s.end()
            await pipeline.forceFlush()
            #expect(pipeline.statistics.exportFailed == 1)
            #expect(pipeline.statistics.exportRequests == 1)
        }
    }

    @Test("an unreachable collector opens the breaker; recording stays fast and bounded")
    func unreachableCollector() async throws {
        var c = config("http://127.0.0.1:9/v1/traces")
        c.exporter.maxAttempts = 3
        c.exporter.breakerThreshold = 2
        c.exporter.breakerCooldown = .milliseconds(100)
        c.buffer.maxSpans = 100
        let pipeline = EvalForge.Pipeline(configuration: c)
        for _ in 0..<150 {
            var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            s.end()
        }
        await pipeline.forceFlush(timeout: .seconds(10))
        let stats = pipeline.statistics
        #expect(stats.droppedBufferFull == 50)
        #expect(stats.exportFailed == 100)
        #expect(stats.exported == 0)
        // At most maxAttempts requests for the one batch (fewer when a loaded machine lets the
        // flush deadline or the open breaker end the retries first).
        #expect((1...3).contains(stats.exportRequests), "\(stats.exportRequests) requests")
    }

    @Test("head sampling is deterministic and keeps errors and slow calls")
    func sampling() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: config(url) {
                $0.sampling.ratio = 0
                $0.sampling.keepSlowerThan = .milliseconds(20)
            })
            for _ in 0..<50 {
                var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
                s.end()
            }
            var e = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            e.recordError(type: "500")
            e.end()
            var slow = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            try await Task.sleep(for: .milliseconds(30))
            slow.end()
            await pipeline.shutdown()  // decides the unsampled spans held for their traces' fate
            #expect(pipeline.statistics.sampledOut == 50)
            #expect(receiver.spans.count == 2)
        }
        // The ratio decision depends on the trace id only.
        let half = Sampler({ var s = EvalForge.Configuration.Sampling(); s.ratio = 0.5; return s }())
        var kept = 0
        for i in 0..<10_000 {
            let id = IDGenerator.traceID()
            let a = half.keeps(traceID: id, isError: false, durationNanos: 0)
            #expect(a == half.keeps(traceID: id, isError: false, durationNanos: 0))
            if a { kept += 1 }
            _ = i
        }
        #expect(kept > 4_500 && kept < 5_500)
    }
}

