import EvalForgeCore
import Foundation
import Testing

@testable import EvalForgeSDK

@Suite("Price table")
struct PriceTableTests {
    @Test func lookups() {
        let t = PriceTable.builtIn
        #expect(t.price(for: "gpt-4o")?.input == 2.50)
        #expect(t.price(for: "gpt-4o-2024-08-06")?.input == 2.50)
        #expect(t.price(for: "gpt-4o-mini-2024-07-18")?.input == 0.15)
        #expect(t.price(for: "claude-sonnet-4-5-20250929")?.output == 15)
        #expect(t.price(for: "claude-3-5-sonnet-latest")?.input == 3)
        #expect(t.price(for: "anthropic.claude-3-5-haiku-20241022-v1:0")?.input == 0.80)
        #expect(t.price(for: "openai/gpt-4.1-mini")?.output == 1.60)
        #expect(t.price(for: "my-finetune") == nil)
        #expect(t.cost(model: "my-finetune", usage: TokenUsage(input: 10, output: 10)) == nil)
        #expect(t.cost(model: "gpt-4o", usage: TokenUsage()) == nil)
    }

    @Test("unlisted variants are unknown, not priced as the listed model they start with")
    func noPrefixPricing() {
        let t = PriceTable.builtIn
        #expect(t.price(for: "o1-pro") == nil)
        #expect(t.price(for: "o1-pro-2025-03-19") == nil)
        #expect(t.price(for: "gpt-4o-mini-audio-preview") == nil)
        #expect(t.price(for: "gpt-4o-mini-audio-preview-2024-12-17") == nil)
        #expect(t.price(for: "gpt-4.1-mini-finetuned") == nil)
        #expect(t.cost(model: "o1-pro", usage: TokenUsage(input: 1000, output: 1000)) == nil)
        // Dated snapshots and explicit aliases still resolve, to the right entry.
        #expect(t.price(for: "o1-2024-12-17")?.input == 15)
        #expect(t.price(for: "o1-preview")?.input == 15)
        #expect(t.price(for: "o1-preview-2024-09-12")?.input == 15)
        #expect(t.price(for: "gpt-4-turbo-preview")?.input == 10)
        #expect(t.price(for: "claude-opus-4-1-20250805")?.input == 15)
        #expect(t.price(for: "claude-opus-4-20250514")?.input == 15)
        #expect(t.price(for: "us.anthropic.claude-sonnet-4-5-20250929-v1:0")?.input == 3)
        // User overrides keep the aliases.
        #expect(t.merging(["x": ModelPrice(input: 1, output: 1)]).price(for: "o1-preview")?.input == 15)
    }

    @Test func anthropicCacheAccounting() {
        let u = TokenUsage.anthropic(inputTokens: 100, outputTokens: 50, cacheReadInputTokens: 1000, cacheCreationInputTokens: 200)
        #expect(u.input == 1300)
        let cost = PriceTable.builtIn.cost(model: "claude-sonnet-4-5", usage: u)!
        let expected = (100 * 3.0 + 1000 * 0.30 + 200 * 3.75 + 50 * 15.0) / 1_000_000
        #expect(abs(cost - expected) < 1e-12)
    }

    @Test func overrides() {
        let t = PriceTable.builtIn.merging(["my-finetune": ModelPrice(input: 1, output: 2)])
        #expect(t.version.hasSuffix("+custom"))
        #expect(t.cost(model: "my-finetune", usage: TokenUsage(input: 1_000_000, output: 1_000_000)) == 3)
    }
}

@Suite("Server-sent events")
struct SSETests {
    @Test func splitAcrossChunksAndLineEndings() {
        let text = "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: comment\n\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n"
        let bytes = Array(text.utf8)
        for chunk in [1, 2, 3, 7, 1000] {
            var p = ServerSentEventParser()
            var events: [ServerSentEvent] = []
            var i = 0
            while i < bytes.count {
                events += p.feed(bytes[i..<min(i + chunk, bytes.count)])
                i += chunk
            }
            #expect(events.map(\.event) == ["message_start", "message", "message"])
            #expect(events.map(\.data) == ["{\"a\":1}", "line1\nline2", "[DONE]"])
        }
    }
}

@Suite("Content redaction")
struct RedactionTests {
    @Test func masks() {
        var c = EvalForge.Configuration.Content()
        c.maxBytes = 1000
        let r = ContentRedactor(c)
        var truncated = false
        let out = r.apply("mail jane.doe@example.org key sk-proj-abcdefghijklmnopqrstuv card 4111 1111 1111 1111 order 1234567890123", truncated: &truncated)
        #expect(out.contains("[REDACTED_EMAIL]") && !out.contains("jane.doe"))
        #expect(out.contains("[REDACTED_API_KEY]") && !out.contains("sk-proj"))
        #expect(out.contains("[REDACTED_CARD]") && !out.contains("4111"))
        #expect(out.contains("1234567890123"))  // fails Luhn: not a card
        #expect(!truncated)
    }

    /// The byte scanners against the regular expressions they replace, on random text built from
    /// fragments of keys, addresses and card numbers.
    @Test func scannersAgreeWithRegularExpressions() {
        let email = #/[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}/#
        let key = #/(sk-(ant-|proj-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|(?i:bearer)\s+[A-Za-z0-9._\-]{20,})/#
        let card = #/\b\d(?:[ \-]?\d){12,18}\b/#.wordBoundaryKind(.simple)
        let fragments = ["sk-", "sk-ant-", "AKIA", "AIza", "ghp_", "gho_", "xoxb-", "Bearer ", "bearer\t", "BEARER  ",
                         "@", ".", "..", "com", "io", "x", "a.b", "-", "_", "%", "+", " ", "\n", "4111", "1111 ", "1-",
                         "0", "12345", "ABCDEFGH", "abcdefghij", "Z9", "é", "jane", "@example.org",
                         // prose, so that the scanners' block skipping runs before and between matches
                         "Summarise the customer's last three orders ", "and suggest a follow up. ", "The shoes, a jacket "]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            var s = ""
            for _ in 0..<Int.random(in: 1...24, using: &rng) { s += fragments.randomElement(using: &rng)! }
            #expect(ContentRedactor.maskEmails(s) == s.replacing(email, with: "[REDACTED_EMAIL]"), "\(s)")
            #expect(ContentRedactor.maskAPIKeys(s) == s.replacing(key, with: "[REDACTED_API_KEY]"), "\(s)")
            let expectedCards = s.replacing(card) { m in
                let digits = m.output.filter(\.isNumber)
                return Self.luhn(digits) ? "[REDACTED_CARD]" : String(m.output)
            }
            #expect(ContentRedactor.maskCardNumbers(s) == expectedCards, "\(s)")
        }
    }

    static func luhn(_ digits: some StringProtocol) -> Bool {
        var sum = 0, double = false
        for ch in digits.reversed() {
            guard var v = ch.wholeNumberValue else { return false }
            if double { v = v * 2 > 9 ? v * 2 - 9 : v * 2 }
            sum += v
            double.toggle()
        }
        return digits.count >= 13 && sum % 10 == 0
    }

    @Test func hookAndTruncation() {
        var c = EvalForge.Configuration.Content()
        c.masks = []
        c.maxBytes = 10
        c.redact = { $0.replacingOccurrences(of: "secret", with: "******") }
        let r = ContentRedactor(c)
        var truncated = false
        let out = r.apply("secret héllo wörld", truncated: &truncated)
        #expect(truncated)
        #expect(out.utf8.count <= 10)
        #expect(out.hasPrefix("******"))
        #expect(String(decoding: Array(out.utf8), as: UTF8.self) == out)  // still valid UTF-8
    }
}

@Suite("Configuration from the environment")
struct ConfigurationTests {
    @Test func standardAndEvalForgeVariables() {
        let (c, problems) = EvalForge.Configuration.default.applyingEnvironment([
            "OTEL_SERVICE_NAME": "checkout",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=ml%20ops",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
            "EVALFORGE_API_KEY": "ef_123",
            "EVALFORGE_SAMPLE_RATIO": "0.25",
            "EVALFORGE_BUFFER_MAX_SPANS": "1000",
            "EVALFORGE_CAPTURE_CONTENT": "true",
            "EVALFORGE_REDACT": "emails",
        ])
        #expect(problems.isEmpty)
        #expect(c.serviceName == "checkout")
        #expect(c.resourceAttributes == ["deployment.environment": "prod", "team": "ml ops"])
        #expect(c.exporter.endpoint == "http://collector:4318/v1/traces")
        #expect(c.exporter.headers["x-tenant"] == "acme")
        #expect(c.exporter.headers["Authorization"] == "Bearer ef_123")
        #expect(c.sampling.ratio == 0.25)
        #expect(c.buffer.maxSpans == 1000)
        #expect(c.content.capture)
        #expect(c.content.masks == [.emails])
    }

    @Test func badValuesAreReportedAndIgnored() {
        let (c, problems) = EvalForge.Configuration.default.applyingEnvironment([
            "EVALFORGE_SAMPLE_RATIO": "2",
            "EVALFORGE_BUFFER_MAX_SPANS": "lots",
            "EVALFORGE_CAPTURE_CONTENT": "maybe",
            "EVALFORGE_REDACT": "emails,phones",
        ])
        #expect(problems.count == 4)
        #expect(problems.contains { $0.contains("EVALFORGE_BUFFER_MAX_SPANS") && $0.contains("integer") })
        #expect(c.sampling.ratio == 1)
        #expect(c.buffer.maxSpans == EvalForge.Configuration.default.buffer.maxSpans)
        #expect(!c.content.capture)
    }
}

@Suite("Adapters on malformed input")
struct AdapterRobustnessTests {
    @Test func malformedBodiesNeverCrash() {
        let pipeline = EvalForge.Pipeline(configuration: .default)
        let bodies: [Data] = [
            Data(), Data([0xff, 0xfe, 0x00]), Data("{".utf8), Data("[]".utf8), Data("{\"choices\": 3}".utf8),
            Data("{\"usage\": {\"prompt_tokens\": \"many\"}, \"choices\": []}".utf8),
            Data(repeating: 0x7b, count: 1 << 20),
        ]
        for body in bodies {
            var a = pipeline.startLLMCall(OpenAIChatAdapter.request(fromBody: body))
            OpenAIChatAdapter.recordResponse(body, into: &a)
            var b = pipeline.startLLMCall(AnthropicMessagesAdapter.request(fromBody: body))
            AnthropicMessagesAdapter.recordResponse(body, into: &b)
            // No usage is invented from garbage (an empty `choices` list is the one non-error case);
            // none of these is an Anthropic message (no content blocks): always a failed span.
            #expect(a.isError || a.usage.isEmpty)
            #expect(b.isError)
        }
        var s = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
        OpenAIChatAdapter.recordResponse(Data("{\"usage\": {\"prompt_tokens\": \"many\", \"completion_tokens\": 3}, \"choices\": []}".utf8), into: &s)
        #expect(s.usage.input == nil && s.usage.output == 3)
        var t = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
        OpenAIChatAdapter.recordResponse(Data("not json".utf8), into: &t)
        #expect(t.isError)
        #expect(t.record.errorType == "malformed_response")
    }

    /// Chat Completions and the Responses API share one usage reader under their own key names:
    /// the same figures land in the same places, and a bad figure is named by its own API's path.
    @Test func openAIUsageUnderBothAPIsKeyNames() {
        let pipeline = EvalForge.Pipeline(configuration: .default)
        func problem(_ span: LLMSpan) -> String {
            guard case .string(let s)? = span.record.attributes.first(where: { $0.0 == GenAIKeys.responseProblem })?.1 else { return "" }
            return s
        }
        var chat = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
        OpenAIChatAdapter.recordResponse(Data(#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":"lots"}}}"#.utf8), into: &chat)
        #expect(chat.usage.input == 10 && chat.usage.output == 7 && chat.usage.cacheRead == 4 && chat.usage.reasoning == nil)
        #expect(problem(chat).contains("usage.completion_tokens_details.reasoning_tokens"))
        var responses = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4.1"))
        OpenAIResponsesAdapter.recordResponse(Data(#"{"status":"completed","output":[],"usage":{"input_tokens":10,"output_tokens":7,"input_tokens_details":{"cached_tokens":-1},"output_tokens_details":{"reasoning_tokens":2}}}"#.utf8), into: &responses)
        #expect(responses.usage.input == 10 && responses.usage.output == 7 && responses.usage.cacheRead == nil && responses.usage.reasoning == 2)
        #expect(problem(responses).contains("usage.input_tokens_details.cached_tokens: -1"))
        #expect(!problem(responses).contains("prompt_tokens"))
    }

    @Test func truncatedStreamIsAnError() {
        let pipeline = EvalForge.Pipeline(configuration: .default)
        var span = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
        var r = OpenAIChatAdapter.StreamRecorder()
        r.observe(#"{"id":"c1","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}"#, into: &span)
        r.finish(into: &span)
        #expect(span.isError)
        #expect(span.record.errorType == "stream_truncated")
        #expect(span.record.firstChunkNanos > 0)

        var a = pipeline.startLLMCall(LLMRequest(provider: "anthropic", model: "claude-haiku-4-5"))
        var ar = AnthropicMessagesAdapter.StreamRecorder()
        ar.observe(ServerSentEvent(event: "message_start", data: #"{"type":"message_start","message":{"id":"m1","model":"claude-haiku-4-5","usage":{"input_tokens":12,"cache_read_input_tokens":100,"output_tokens":1}}}"#), into: &a)
        ar.observe(ServerSentEvent(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#), into: &a)
        ar.observe(ServerSentEvent(event: "message_delta", data: #"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#), into: &a)
        ar.finish(into: &a)
        #expect(a.record.errorType == "stream_truncated")  // no message_stop
        #expect(a.usage.input == 112 && a.usage.output == 9 && a.usage.cacheRead == 100)
        #expect(a.finishReasons == ["end_turn"])
    }
}

@Suite("Incoming traceparent sampled flag")
struct ParentSampledTests {
    static let declined = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    static let accepted = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// A step and an LLM call under `header`, flushed to a real receiver; returns the final counters,
    /// the outgoing traceparent and the names of the spans that arrived.
    static func run(_ header: String, respect: Bool = true, error: Bool = false, keepTrace: Bool = true) async throws -> (EvalForge.Statistics, String?, Set<String>) {
        let receiver = OTLPTestReceiver()
        return try await receiver.withRunning { url in
            var c = EvalForge.Configuration.default
            c.exporter.endpoint = url
            c.sampling.respectParentSampled = respect
            c.sampling.keepTraceOfKeptSpans = keepTrace
            let pipeline = EvalForge.Pipeline(configuration: c)
            let outgoing = await EvalForge.withTraceParent(header) { () async -> String? in
                await EvalForge.withStep(.invokeAgent, name: "a", pipeline: pipeline) { _ in
                    await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"), pipeline: pipeline) { span in
                        if error { span.recordError(type: "500") }
                        return span.traceParent.header
                    }
                }
            }
            await pipeline.shutdown()
            return (pipeline.statistics, outgoing, Set(receiver.spans.map(\.span.name)))
        }
    }

    @Test("sampled=0 from upstream is respected by default, down to the outgoing traceparent")
    func respected() async throws {
        let (stats, outgoing, names) = try await Self.run(Self.declined)
        #expect(stats.recorded == 2 && stats.sampledOut == 2 && stats.buffered == 0 && names.isEmpty)
        #expect(outgoing?.hasSuffix("-00") == true)
        #expect(outgoing?.contains("4bf92f3577b34da6a3ce929d0e0e4736") == true)
    }

    @Test("sampled=1, or respectParentSampled off, records as before; an error keeps its trace's spans")
    func notDeclined() async throws {
        let (a, outA, namesA) = try await Self.run(Self.accepted)
        #expect(a.sampledOut == 0 && a.exported == 2 && outA?.hasSuffix("-01") == true && namesA.count == 2)
        let (b, _, _) = try await Self.run(Self.declined, respect: false)
        #expect(b.sampledOut == 0 && b.exported == 2)
        // The errored call is kept by the local rule, and so is its step (same trace, this process).
        let (c, _, namesC) = try await Self.run(Self.declined, error: true)
        #expect(c.exported == 2 && c.sampledOut == 0 && namesC == ["invoke_agent a", "chat gpt-4o"])
        // Turned off: the errored call alone, as before.
        let (d, _, namesD) = try await Self.run(Self.declined, error: true, keepTrace: false)
        #expect(d.exported == 1 && d.sampledOut == 1 && namesD == ["chat gpt-4o"])
        let env = EvalForge.Configuration.default.applyingEnvironment(["EVALFORGE_SAMPLE_RESPECT_PARENT": "false", "EVALFORGE_SAMPLE_KEEP_TRACE": "off"])
        #expect(env.configuration.sampling.respectParentSampled == false && env.configuration.sampling.keepTraceOfKeptSpans == false && env.problems.isEmpty)
    }
}

@Suite("Recording path")
struct RecordingPathTests {
    @Test("ending moves the whole record into the buffer; the span keeps its ids, times and figures")
    func endMovesRecordIntoBuffer() throws {
        let pipeline = EvalForge.Pipeline(configuration: { var c = EvalForge.Configuration.default; c.content.capture = true; return c }())
        var request = LLMRequest(provider: LLMProvider.openAI, model: "gpt-4o-mini")
        request.tags = ["t"]
        request.metadata = ["k": "v"]
        var span = pipeline.startLLMCall(request)
        span.responseModel = "gpt-4o-mini-2024-07-18"
        span.responseID = "chatcmpl-1"
        span.finishReasons = ["stop"]
        span.usage = TokenUsage(input: 3, output: 2)
        span.setOutput("[]")
        span.setAttribute("app.feature", "search")
        let parent = span.traceParent
        span.end()
        span.end()  // a second end does nothing
        #expect(span.traceParent == parent && span.usage == TokenUsage(input: 3, output: 2))
        #expect(pipeline.statistics.recorded == 1 && pipeline.statistics.buffered == 1)

        var batch: [SpanRecord] = []
        pipeline.buffer.drain(into: &batch)
        let r = try #require(batch.first)
        #expect(batch.count == 1)
        #expect(r.traceID == parent.traceID && r.spanID == parent.spanID.value)
        #expect(r.request.model == "gpt-4o-mini" && r.request.provider == "openai" && r.request.tags == ["t"] && r.request.metadata == ["k": "v"])
        #expect(r.responseModel == "gpt-4o-mini-2024-07-18" && r.responseID == "chatcmpl-1" && r.finishReasons == ["stop"])
        #expect(r.output == "[]" && r.attributes.count == 1 && r.attributes.first?.0 == "app.feature")
        #expect(r.endUnixNanos >= r.startUnixNanos && r.spanName == "chat gpt-4o-mini")
    }

    @Test("span starts are wall-clock times read through the monotonic clock, also after a refresh")
    func startIsWallClock() {
        let pipeline = EvalForge.Pipeline(configuration: .default)
        for refresh in [false, true] {
            if refresh { pipeline.refreshWallClockOffset() }
            let before = Clocks.unixNanos()
            let span = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "m"))
            let after = Clocks.unixNanos()
            // Two separate clock reads make the derived time exact only to a few microseconds.
            #expect(span.record.startUnixNanos &+ 1_000_000 >= before && span.record.startUnixNanos <= after &+ 1_000_000)
        }
    }

    @Test("root ids from one counter step stay unique alongside child span ids")
    func rootIDsUnique() {
        var spans = Set<UInt64>()
        var traces = Set<TraceID>()
        var invalid = 0
        for _ in 0..<20_000 {
            let (trace, span) = IDGenerator.rootIDs()
            let child = IDGenerator.spanID()
            if !trace.isValid || span == 0 || child == 0 { invalid += 1 }
            traces.insert(trace)
            spans.insert(span)
            spans.insert(child)
        }
        #expect(invalid == 0 && traces.count == 20_000 && spans.count == 40_000)
    }

    @Test("what an ended span keeps is plain data: its fields carry no references")
    func plainFieldsArePOD() {
        // `LLMSpan.takeRecord()` leaves `SpanRecord.Plain` behind; a String or class field there would be
        // retained on every end().
        #expect(_isPOD(SpanRecord.Plain.self))
        #expect(MemoryLayout<LLMRequest>.size == MemoryLayout<Int>.size)
        // Every byte of a record is moved into the buffer on the calling thread: three cache lines at most.
        #expect(MemoryLayout<SpanRecord>.size <= 192)
        #expect(MemoryLayout<SpanRecord.Plain>.size % 16 == 0)
    }

    @Test("packed usage and cost, the single finish reason and the rare fields read back as written, copies keep value semantics")
    func compactRecordRoundTrips() throws {
        let pipeline = EvalForge.Pipeline(configuration: { var c = EvalForge.Configuration.default; c.content.capture = true; return c }())
        var span = pipeline.startLLMCall(LLMRequest(provider: LLMProvider.anthropic, model: "claude"))
        #expect(span.usage == TokenUsage() && span.costUSD == nil && span.finishReasons.isEmpty)
        for u in [TokenUsage(input: 0, output: nil, cacheRead: 5, cacheCreation: nil, reasoning: 7), TokenUsage(input: .max, output: .min, cacheRead: nil, cacheCreation: 3, reasoning: nil)] {
            span.usage = u
            #expect(span.usage == u)
        }
        span.costUSD = 0
        #expect(span.costUSD == 0)
        span.costUSD = nil
        #expect(span.costUSD == nil)
        span.finishReasons = ["stop", "length"]
        #expect(span.finishReasons == ["stop", "length"])
        span.finishReasons = ["end_turn"]
        #expect(span.finishReasons == ["end_turn"] && span.record.rare?.finishReasons.isEmpty != false)
        var copy = span
        copy.recordError(type: "timeout", message: "slow")
        copy.setAttribute("k", .int(1))
        #expect(span.record.errorType == nil && span.record.attributes.isEmpty && !span.record.isError)
        span.setSystemInstructions("[]")
        span.setInput("[1]")
        span.setOutput("[2]")
        #expect(copy.record.errorType == "timeout" && copy.record.errorMessage == "slow" && copy.record.attributes.count == 1 && copy.record.input == nil)
        span.finishReasons = ["a", "b", "c"]
        span.costUSD = 1.25
        span.end()
        var batch: [SpanRecord] = []
        pipeline.buffer.drain(into: &batch)
        let r = try #require(batch.first)
        #expect(r.usage == TokenUsage(input: .max, output: .min, cacheRead: nil, cacheCreation: 3, reasoning: nil) && r.costUSD == 1.25)
        #expect(r.finishReasons == ["a", "b", "c"] && r.systemInstructions == "[]" && r.input == "[1]" && r.output == "[2]" && r.errorType == nil)
        #expect(span.usage == r.usage && span.finishReasons.isEmpty && span.record.input == nil)
    }

    @Test("a span the buffer refuses (full) or that is sampled out is emptied like a buffered one and counted; the buffer keeps what it took")
    func refusedSpansAreEmptiedAndCounted() throws {
        let full = EvalForge.Pipeline(configuration: { var c = EvalForge.Configuration.default; c.buffer.maxSpans = 2; return c }())
        var ids: [UInt64] = []
        for i in 0..<3 {
            var span = full.startLLMCall(LLMRequest(provider: LLMProvider.openAI, model: "m\(i)"))
            span.responseID = "r\(i)"
            span.usage = TokenUsage(input: i, output: 1)
            ids.append(span.traceParent.spanID.value)
            span.end()
            #expect(span.responseID == nil && span.request.model.isEmpty && span.usage == TokenUsage(input: i, output: 1))
        }
        #expect(full.statistics.recorded == 3 && full.statistics.droppedBufferFull == 1 && full.statistics.buffered == 2)
        var batch: [SpanRecord] = []
        full.buffer.drain(into: &batch)
        #expect(batch.map(\.spanID) == Array(ids.prefix(2)) && batch.map(\.request.model) == ["m0", "m1"] && batch.map(\.responseID) == ["r0", "r1"])
        #expect(full.statistics.buffered == 0)

        let none = EvalForge.Pipeline(configuration: { var c = EvalForge.Configuration.default; c.sampling.ratio = 0; c.sampling.keepErrors = false; c.sampling.keepSlowerThan = nil; return c }())
        var span = none.startLLMCall(LLMRequest(provider: LLMProvider.openAI, model: "m"))
        span.responseID = "r"
        span.end()
        #expect(span.responseID == nil && span.request.model.isEmpty)
        #expect(none.statistics.recorded == 1 && none.statistics.sampledOut == 1 && none.statistics.buffered == 0)
    }

    @Test("requests keep value semantics behind their shared storage")
    func requestCopyOnWrite() {
        let pipeline = EvalForge.Pipeline(configuration: .default)
        var request = LLMRequest(provider: LLMProvider.openAI, model: "m")
        request.tags = ["a"]
        var copy = request
        copy.tags.append("b")
        copy.model = "n"
        copy.metadata["k"] = "v"
        #expect(request.tags == ["a"] && request.model == "m" && request.metadata.isEmpty)
        #expect(copy.tags == ["a", "b"] && copy.model == "n" && copy.metadata == ["k": "v"])

        var span = pipeline.startLLMCall(request)
        span.request.model = "late"
        span.request.tags.append("c")
        #expect(request.model == "m" && request.tags == ["a"])
        #expect(span.request.model == "late" && span.request.tags == ["a", "c"])
        span.end()
        #expect(span.request.model.isEmpty && span.request.tags.isEmpty)
        var batch: [SpanRecord] = []
        pipeline.buffer.drain(into: &batch)
        #expect(batch.first?.request.model == "late" && batch.first?.request.tags == ["a", "c"])
        #expect(LLMRequest.empty.model.isEmpty && LLMRequest.empty.provider.isEmpty)
    }
}
