import EvalForgeCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import EvalForgeSDK

/// A provider (and collector) that answers exactly what a test scripts — absurd headers, absurd token
/// counts, garbage and truncated bodies — over real HTTP on loopback.
final class HostilePeer: Sendable {
    struct Answer: Sendable {
        var status = 200
        var headers: [(String, String)] = []
        /// Body chunks, written one after another (a stream cut short is just fewer chunks).
        var chunks: [String] = []
        var contentType = "application/json"
        /// Raw bytes written after the chunks (for binary bodies).
        var raw: [UInt8] = []
        /// Pause after each chunk (a provider trickling its answer).
        var chunkDelay: Duration = .milliseconds(2)
    }

    private let answer = Mutex(Answer())

    func set(_ a: Answer) { answer.withLock { $0 = a } }

    func buildApplication() -> some ApplicationProtocol {
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            let a = self.answer.withLock { $0 }
            var headers = HTTPFields()
            headers[.contentType] = a.contentType
            for (k, v) in a.headers {
                if let name = HTTPField.Name(k) { headers[name] = v }
            }
            return Response(status: .init(code: a.status), headers: headers, body: ResponseBody { writer in
                for c in a.chunks {
                    try await writer.write(ByteBuffer(string: c))
                    try await Task.sleep(for: a.chunkDelay)
                }
                if !a.raw.isEmpty { try await writer.write(ByteBuffer(bytes: a.raw)) }
                try await writer.finish(nil)
            })
        }
        router.post("/v1/chat/completions", use: handler)
        router.post("/v1/messages", use: handler)
        router.post("/v1/responses", use: handler)
        router.post("/v1/embeddings", use: handler)
        router.post("/v1/traces", use: handler)
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// Runs `body` with the peer listening; passes its base URL (`http://127.0.0.1:PORT`).
    func withRunning<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        try await buildApplication().test(.live) { client in
            let port = try #require(client.port)
            return try await body("http://127.0.0.1:\(port)")
        }
    }
}

@Suite("Hostile provider and collector answers never crash or block the host")
struct HostilePeerTests {
    static let openAIBody = Data(#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#.utf8)
    static let openAIStreamBody = Data(#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}"#.utf8)
    static let anthropicBody = Data(#"{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#.utf8)

    /// A hostile provider, an OTLP receiver standing in for the collector, and a pipeline exporting to it.
    static func withStack(_ body: @Sendable (_ peer: HostilePeer, _ base: String, _ pipeline: EvalForge.Pipeline, _ receiver: OTLPTestReceiver) async throws -> Void) async throws {
        let peer = HostilePeer()
        let receiver = OTLPTestReceiver()
        try await peer.withRunning { base in
            try await receiver.withRunning { url in
                var c = EvalForge.Configuration.default
                c.exporter.endpoint = url
                c.content.capture = true
                let pipeline = EvalForge.Pipeline(configuration: c)
                try await body(peer, base, pipeline, receiver)
            }
        }
    }

    @Test("Retry-After values from a peer are bounded: seconds, HTTP dates, garbage")
    func retryAfterParsing() {
        let now: Int64 = 1_700_000_000  // Tue, 14 Nov 2023 22:13:20 GMT
        #expect(RetryAfter.parse("5", nowUnixSeconds: now) == .seconds(5))
        #expect(RetryAfter.parse(" 0 ", nowUnixSeconds: now) == .zero)
        #expect(RetryAfter.parse("1.5", nowUnixSeconds: now) == .milliseconds(1500))
        #expect(RetryAfter.parse("99999999999999999999999999", nowUnixSeconds: now) == RetryAfter.maximum)
        #expect(RetryAfter.parse("86400", nowUnixSeconds: now) == RetryAfter.maximum)
        for bad in ["inf", "Infinity", "-inf", "nan", "NaN", "-1", "1e300", "1e309", "", "  ", "soon", "5s", "0x10", "1.", "+5", "Tue, 14 Nov 2023 22:13:20 PST"] {
            #expect(RetryAfter.parse(bad, nowUnixSeconds: now) == nil, "\(bad)")
        }
        #expect(RetryAfter.parse(nil, nowUnixSeconds: now) == nil)
        #expect(RetryAfter.parse("Tue, 14 Nov 2023 22:13:50 GMT", nowUnixSeconds: now) == .seconds(30))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", nowUnixSeconds: now) == .zero)
        #expect(RetryAfter.parse("Fri, 31 Dec 9999 23:59:59 GMT", nowUnixSeconds: now) == RetryAfter.maximum)
        #expect(RetryAfter.parse("Tue, 14 Nov 2023 22:13:50 GMT", nowUnixSeconds: .min) == RetryAfter.maximum)
        #expect(RetryAfter.parse("Tue, 14 Nov 2023 22:13:50 GMT", nowUnixSeconds: .max) == .zero)
        #expect(RetryAfter.parse("Tue, 99 Nov 2023 22:13:50 GMT", nowUnixSeconds: now) == nil)
        #expect(RetryAfter.parse("Thu, 01 Jan 1970 00:01:00 GMT", nowUnixSeconds: 0) == .seconds(60))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", nowUnixSeconds: 784_111_767) == .seconds(10))
        #expect(RetryAfter.parse("Thu, 29 Feb 2024 12:00:00 GMT", nowUnixSeconds: 1_709_208_000 - 1) == .seconds(1))
        // The transport's reading (real clock).
        #expect(OTLPHTTPTransport.retryAfter("inf") == nil)
        #expect(OTLPHTTPTransport.retryAfter("1e300") == nil)
    }

    @Test("Retry-After: inf (and other absurd values) from the provider reach the caller as an error, not a crash", arguments: ["inf", "1e300", "-1", "nan", "99999999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT", "garbage"])
    func retryAfterFromProvider(_ value: String) async throws {
        try await Self.withStack { peer, base, pipeline, receiver in
            peer.set(.init(status: 429, headers: [("Retry-After", value)], chunks: [#"{"error":{"message":"slow down","type":"rate_limit"}}"#]))
            let client = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", pipeline: pipeline)
            do {
                _ = try await client.send(Self.openAIBody)
                Issue.record("expected a 429")
            } catch let e as LLMHTTPError {
                #expect(e.status == 429)
                #expect(e.retryAfter.map { $0 >= .zero && $0 <= RetryAfter.maximum } ?? true)
            }
            // The same answer on a stream.
            await #expect(throws: LLMHTTPError.self) {
                for try await _ in client.stream(Self.openAIStreamBody) {}
            }
            await pipeline.forceFlush()
            #expect(receiver.spans.filter { $0.span.string(GenAIKeys.errorType) == "429" }.count == 2)
        }
    }

    @Test("absurd token counts are left out and named; the call still succeeds and cost stays finite")
    func absurdUsage() async throws {
        try await Self.withStack { peer, base, pipeline, receiver in
            let client = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", pipeline: pipeline)
            peer.set(.init(chunks: [#"{"id":"c1","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1e300,"completion_tokens":-5,"prompt_tokens_details":{"cached_tokens":9223372036854775807},"completion_tokens_details":{"reasoning_tokens":"many"}}}"#]))
            _ = try await client.send(Self.openAIBody)
            peer.set(.init(chunks: [#"{"id":"c2","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":2.5e1}}"#]))
            _ = try await client.send(Self.openAIBody)
            let anthropic = try LLMHTTPClient(api: .anthropicMessages, baseURL: base, pipeline: pipeline)
            peer.set(.init(chunks: [#"{"id":"m1","type":"message","model":"claude-haiku-4-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":9223372036854775807,"cache_read_input_tokens":9223372036854775807,"cache_creation_input_tokens":9223372036854775807,"output_tokens":3}}"#]))
            _ = try await anthropic.send(Self.anthropicBody)
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            let bad = try #require(spans.first { $0.string(GenAIKeys.responseID) == "c1" })
            #expect(bad.int(GenAIKeys.usageInputTokens) == nil && bad.int(GenAIKeys.usageOutputTokens) == nil)
            #expect(bad.int(GenAIKeys.usageCacheReadInputTokens) == nil && bad.int(GenAIKeys.usageReasoningOutputTokens) == nil)
            let problem = try #require(bad.string(GenAIKeys.responseProblem))
            #expect(problem.contains("usage.prompt_tokens") && problem.contains("usage.completion_tokens: -5"))
            #expect(problem.contains("cached_tokens") && problem.contains("reasoning_tokens"))
            #expect(bad.status.code == .unset)
            #expect(bad.double(GenAIKeys.costUSD) == nil && bad.bool(GenAIKeys.costUnknown) == true)
            let good = try #require(spans.first { $0.string(GenAIKeys.responseID) == "c2" })
            #expect(good.int(GenAIKeys.usageInputTokens) == 12 && good.int(GenAIKeys.usageOutputTokens) == 25)
            #expect(good.string(GenAIKeys.responseProblem) == nil)
            let an = try #require(spans.first { $0.string(GenAIKeys.responseID) == "m1" })
            #expect(an.int(GenAIKeys.usageInputTokens) == nil && an.int(GenAIKeys.usageOutputTokens) == 3)
            #expect(an.string(GenAIKeys.responseProblem)?.contains("usage.input_tokens") == true)
            for s in spans { #expect(s.double(GenAIKeys.costUSD).map { $0.isFinite && $0 >= 0 } ?? true) }
        }
    }

    @Test("garbage and truncated bodies and streams mark the span, keep what is known, and return")
    func garbageAndTruncated() async throws {
        try await Self.withStack { peer, base, pipeline, receiver in
            let client = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", pipeline: pipeline)
            peer.set(.init(chunks: [#"{"id":"trunc","model":"gpt-4o","choi"#]))
            await #expect(throws: LLMHTTPError.self) { _ = try await client.send(Self.openAIBody) }
            peer.set(.init(chunks: ["\u{0}\u{1}not json at all"]))
            await #expect(throws: LLMHTTPError.self) { _ = try await client.send(Self.openAIBody) }
            // A stream with a garbage event, absurd usage, then cut before its final chunk.
            peer.set(.init(chunks: [
                "data: {\"id\":\"s1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
                "data: }}}garbage{{{\n\n",
                "data: {\"id\":\"s1\",\"choices\":[{\"index\":99999999999999999999,\"delta\":{\"content\":\"lo\"}}],\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":1e300}}\n\n",
                "data: {\"id\":\"s1\",\"choi",
            ], contentType: "text/event-stream"))
            var events = 0
            await #expect(throws: (any Error).self) {
                for try await _ in client.stream(Self.openAIStreamBody) { events += 1 }
            }
            #expect(events >= 3)
            // Anthropic stream cut after message_start, with absurd usage.
            let anthropic = try LLMHTTPClient(api: .anthropicMessages, baseURL: base, pipeline: pipeline)
            peer.set(.init(chunks: [
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"a1\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":-7,\"output_tokens\":1e300}}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1e300,\"delta\":{\"text\":\"x\"}}\n\n",
            ], contentType: "text/event-stream"))
            await #expect(throws: (any Error).self) {
                for try await _ in anthropic.stream(Data(#"{"model":"claude-haiku-4-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}"#.utf8)) {}
            }
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            #expect(spans.count == 4)
            #expect(spans.filter { $0.string(GenAIKeys.errorType) == "malformed_response" }.count == 2)
            let s1 = try #require(spans.first { $0.string(GenAIKeys.responseID) == "s1" })
            #expect(s1.string(GenAIKeys.errorType) == "stream_truncated" && s1.status.code == .error)
            #expect(s1.string(GenAIKeys.responseModel) == "gpt-4o")
            #expect(s1.double(GenAIKeys.timeToFirstChunk) != nil)
            let p1 = try #require(s1.string(GenAIKeys.responseProblem))
            #expect(p1.contains("not a JSON object") && p1.contains("usage.prompt_tokens: -1"))
            let a1 = try #require(spans.first { $0.string(GenAIKeys.responseID) == "a1" })
            #expect(a1.string(GenAIKeys.errorType) == "stream_truncated")
            #expect(a1.int(GenAIKeys.usageInputTokens) == nil && a1.int(GenAIKeys.usageOutputTokens) == nil)
            #expect(a1.string(GenAIKeys.responseProblem)?.contains("usage.input_tokens: -7") == true)
        }
    }

    @Test("a provider trickling its answer cannot hold a send past maxCallDuration")
    func trickle() async throws {
        try await Self.withStack { peer, base, pipeline, receiver in
            peer.set(.init(chunks: ["{"] + Array(repeating: " ", count: 200), chunkDelay: .milliseconds(100)))
            let client = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", maxCallDuration: .milliseconds(500), pipeline: pipeline)
            let start = ContinuousClock.now
            await #expect(throws: (any Error).self) { _ = try await client.send(Self.openAIBody) }
            // The trickle lasts 20 s; a bounded send ends near 0.5 s (10 s leaves room for a loaded machine).
            #expect(ContinuousClock.now - start < .seconds(10))
            await pipeline.forceFlush()
            #expect(receiver.spans.map { $0.span.string(GenAIKeys.errorType) } == ["timeout"])
        }
    }

    @Test("a collector answering absurd partial_success or Retry-After does not crash the exporter")
    func hostileCollector() async throws {
        let peer = HostilePeer()
        try await peer.withRunning { base in
            var c = EvalForge.Configuration.default
            c.exporter.endpoint = base + "/v1/traces"
            c.exporter.maxAttempts = 2
            c.exporter.initialBackoff = .milliseconds(5)
            let pipeline = EvalForge.Pipeline(configuration: c)
            // ExportTraceServiceResponse{partial_success{rejected_spans = Int64.min}}: field 1 (len 11) → field 1 varint.
            var body = [UInt8(0x0A), 11, 0x08]
            var v = UInt64(bitPattern: Int64.min)
            while v >= 0x80 {
                body.append(UInt8(v & 0x7F) | 0x80)
                v >>= 7
            }
            body.append(UInt8(v))
            body[1] = UInt8(body.count - 2)
            #expect(OTLPHTTPTransport.rejectedSpans(in: Data(body)) == Int.max)
            peer.set(.init(contentType: "application/x-protobuf", raw: body))
            var span = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            span.end()
            await pipeline.forceFlush()
            #expect(pipeline.statistics.exportFailed == 1 && pipeline.statistics.exported == 0)
            // 503 with Retry-After: inf is retried with ordinary backoff.
            peer.set(.init(status: 503, headers: [("Retry-After", "inf")]))
            var s2 = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            s2.end()
            let start = ContinuousClock.now
            await pipeline.forceFlush(timeout: .seconds(30))
            // An honoured `Retry-After: inf` would hold the flush for its whole 30 s timeout.
            #expect(ContinuousClock.now - start < .seconds(20))
            #expect(pipeline.statistics.exportRetries >= 1 && pipeline.statistics.exportFailed == 2)
        }
    }

    @Test("absurd configuration is pinned into bounds; recording and export keep working")
    func absurdConfiguration() async throws {
        let (env, problems) = EvalForge.Configuration.default.applyingEnvironment([
            "EVALFORGE_SAMPLE_KEEP_SLOWER_THAN_MS": "9223372036854775807",
            "EVALFORGE_BATCH_MAX_SPANS": "9223372036854775807",
            "EVALFORGE_BUFFER_MAX_SPANS": "9223372036854775807",
            "EVALFORGE_FLUSH_INTERVAL_MS": "9223372036854775807",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "99999999999",
            "EVALFORGE_SAMPLE_RATIO": "nan",
        ])
        #expect(problems.count == 6)
        #expect(env.buffer.maxBatchSpans == EvalForge.Configuration.default.buffer.maxBatchSpans)
        var c = EvalForge.Configuration.default
        c.sampling.ratio = .nan
        c.sampling.keepSlowerThan = .seconds(Int64.max)
        c.buffer.maxSpans = .max
        c.buffer.maxBatchSpans = .max
        c.buffer.flushInterval = .seconds(Int64.max)
        c.buffer.shutdownTimeout = .seconds(-5)
        c.exporter.timeout = .seconds(Int64.max)
        c.exporter.initialBackoff = .seconds(Int64.max)
        c.exporter.maxBackoff = .seconds(Int64.max)
        c.exporter.breakerCooldown = .seconds(Int64.max)
        c.exporter.maxAttempts = .max
        c.content.maxBytes = -1
        c.content.capture = true
        let b = c.bounded()
        #expect(b.sampling.ratio == 1 && b.buffer.maxSpans == EvalForge.Configuration.maxBufferSpans)
        #expect(b.buffer.maxBatchSpans == b.buffer.maxSpans && b.buffer.shutdownTimeout == .zero)
        #expect(b.exporter.timeout == EvalForge.Configuration.maxDuration && b.content.maxBytes == 0)
        #expect(Backoff.delay(attempt: 1000, initial: b.exporter.initialBackoff, max: b.exporter.maxBackoff) <= EvalForge.Configuration.maxDuration)
        #expect(Sampler(c.sampling).slowNanos == UInt64.max)
        let receiver = OTLPTestReceiver()
        let absurd = c
        try await receiver.withRunning { url in
            var c = absurd
            c.exporter.endpoint = url
            let pipeline = EvalForge.Pipeline(configuration: c)
            var span = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            span.usage = TokenUsage(input: .max, output: .max, cacheRead: .max, cacheCreation: .max)
            span.costUSD = .nan
            span.setOutput("some text")
            span.end()
            var s2 = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            s2.usage = TokenUsage(input: .max, output: .max)
            s2.end()
            await pipeline.forceFlush()
            #expect(receiver.spans.count == 2)
            for (_, s) in receiver.spans {
                #expect(s.double(GenAIKeys.costUSD).map { $0.isFinite } ?? (s.bool(GenAIKeys.costUnknown) == true))
            }
            #expect(receiver.spans.first?.span.string(GenAIKeys.outputMessages) == "")
        }
        #expect(TokenUsage.anthropic(inputTokens: .max, outputTokens: 1, cacheReadInputTokens: .max, cacheCreationInputTokens: .max).input == .max)
        // An absurd client timeout is pinned, not handed to URLSession.
        _ = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: "http://127.0.0.1:9/v1", timeout: .seconds(Int64.max))
    }
}
