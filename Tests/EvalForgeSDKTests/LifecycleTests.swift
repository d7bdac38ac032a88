import EvalForgeCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import Tracing

@testable import EvalForgeSDK

private func lifecycleConfig(_ url: String, _ edit: (inout EvalForge.Configuration) -> Void = { _ in }) -> EvalForge.Configuration {
    var c = EvalForge.Configuration.default
    c.serviceName = "lifecycle-tests"
    c.exporter.endpoint = url
    c.exporter.initialBackoff = .milliseconds(20)
    edit(&c)
    return c
}

@Suite("Lifecycle: the pipeline as a swift-service-lifecycle Service, bootstrap once")
struct LifecycleTests {
    @Test("a ServiceGroup runs the pipeline; graceful shutdown flushes what is buffered to the receiver within the deadline")
    func serviceGroupGracefulShutdownFlushes() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            // An hour between flushes: only the shutdown flush can deliver these spans.
            let pipeline = EvalForge.Pipeline(configuration: lifecycleConfig(url) {
                $0.buffer.flushInterval = .seconds(3600)
                $0.buffer.shutdownTimeout = .seconds(5)
            })
            let group = ServiceGroup(services: [pipeline], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                for i in 0..<5 {
                    await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "lifecycle-\(i)"), pipeline: pipeline) { span in
                        span.usage = TokenUsage(input: 3, output: 2)
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
                #expect(receiver.spans.isEmpty)  // nothing flushed before shutdown
                let start = ContinuousClock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                // Returns (never hangs); the 5 s deadline plus slack for a loaded machine.
                #expect(ContinuousClock.now - start < .seconds(30))
            }
            #expect(receiver.spans.count == 5)
            #expect(pipeline.statistics.exported == 5 && pipeline.statistics.buffered == 0)
            // The loop ran once: a second run is refused with a message.
            await #expect(throws: EvalForgeError.self) { try await pipeline.run() }
        }
    }

    @Test("bootstrap: a second call throws and keeps the first pipeline; statistics stay readable after shutdown; withSpan spans nest with no other tracer")
    func bootstrapOnceTracerAndStatistics() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let noTracerBefore = InstrumentationSystem.instrument is NoOpInstrument
            let pipeline = try EvalForge.bootstrap(lifecycleConfig(url), installTracer: true)
            #expect(EvalForge.pipeline === pipeline)
            let second = #expect(throws: EvalForgeError.self) { try EvalForge.bootstrap(lifecycleConfig(url)) }
            #expect(second?.description.contains("already called") == true)
            #expect(EvalForge.pipeline === pipeline)

            if noTracerBefore {
                #expect(InstrumentationSystem.tracer is EvalForge.Tracer)
                // The process tracer is EvalForge's: withSpan through swift-distributed-tracing's global API.
                await withSpan("GET /bootstrap-handler", ofKind: .server) { _ in
                    await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "bootstrap-llm")) { span in
                        span.usage = TokenUsage(input: 1, output: 1)
                    }
                }
            }
            await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "bootstrap-llm-2")) { _ in }
            await EvalForge.shutdown()

            let spans = receiver.spans.map(\.span)
            #expect(spans.contains { $0.string(GenAIKeys.requestModel) == "bootstrap-llm-2" })
            if noTracerBefore {
                let server = try #require(spans.first { $0.name == "GET /bootstrap-handler" })
                let llm = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "bootstrap-llm" })
                #expect(server.kind == .server && server.parentSpanID.isEmpty)
                #expect(server.string(GenAIKeys.operationName) == nil)
                #expect(llm.parentSpanIDHex == server.spanIDHex && llm.traceIDHex == server.traceIDHex)
            }
            // After shutdown the global pipeline is still the bootstrapped one, counters intact.
            #expect(EvalForge.pipeline === pipeline)
            #expect(EvalForge.pipeline.statistics.exported >= (noTracerBefore ? 3 : 1))
            #expect(EvalForge.pipeline.statistics.recorded == pipeline.statistics.recorded)
        }
    }
}

@Suite("One span tree whichever API started which span")
struct TracerNestingTests {
    @Test("EvalForge.Tracer with no other tracer: withSpan, steps and LLM calls nest in any order")
    func evalForgeTracerNests() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: lifecycleConfig(url))
            let tracer = EvalForge.Tracer(pipeline: pipeline)
            await withTracer(tracer) {
                await withSpan("POST /answer", ofKind: .server) { span in
                    span.attributes["http.request.method"] = "POST"
                    await EvalForge.withStep(.invokeAgent, name: "planner", pipeline: pipeline) { _ in
                        await withSpan("db.query") { _ in
                            await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "inner-llm"), pipeline: pipeline) { _ in }
                        }
                        await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "step-llm"), pipeline: pipeline) { _ in }
                    }
                }
            }
            await pipeline.forceFlush()
            let spans = Dictionary(receiver.spans.map { ($0.span.name, $0.span) }, uniquingKeysWith: { a, _ in a })
            let server = try #require(spans["POST /answer"])
            let agent = try #require(spans["invoke_agent planner"])
            let db = try #require(spans["db.query"])
            let inner = try #require(spans["chat inner-llm"])
            let stepLLM = try #require(spans["chat step-llm"])
            #expect(server.parentSpanID.isEmpty && server.kind == .server)
            #expect(server.string("http.request.method") == "POST")
            #expect(agent.parentSpanIDHex == server.spanIDHex)
            #expect(db.parentSpanIDHex == agent.spanIDHex && db.kind == .internal)
            #expect(inner.parentSpanIDHex == db.spanIDHex)
            #expect(stepLLM.parentSpanIDHex == agent.spanIDHex)
            #expect(Set([server, agent, db, inner, stepLLM].map(\.traceIDHex)).count == 1)
        }
    }

    @Test("EvalForge.Tracer continues an incoming traceparent (as TracingMiddleware extracts it) and injects the current span")
    func evalForgeTracerPropagation() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: lifecycleConfig(url))
            let tracer = EvalForge.Tracer(pipeline: pipeline)
            var context = ServiceContext.topLevel
            tracer.extract(["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"], into: &context, using: W3CInjection.HeaderExtractor())
            var outgoing: [String: String] = [:]
            tracer.withSpan("GET /continued", context: context, ofKind: .server) { span in
                tracer.inject(span.context, into: &outgoing, using: W3CInjection.HeaderInjector())
            }
            await pipeline.forceFlush()
            let server = try #require(receiver.spans.first { $0.span.name == "GET /continued" }?.span)
            #expect(server.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736" && server.parentSpanIDHex == "00f067aa0ba902b7")
            #expect(outgoing["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-\(server.spanIDHex)-01")
        }
    }

    @Test("with another W3C tracer (as swift-otel): its span started inside withStep is the step's child, and an LLM call inside that span is its child")
    func externalTracerSpanInsideStep() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: lifecycleConfig(url))
            let other = W3CTestTracer()
            await withTracer(other) {
                await other.withSpan("GET /request", ofKind: .server) { _ in
                    await EvalForge.withStep(.executeTool, name: "lookup", pipeline: pipeline) { _ in
                        await other.withSpan("http.client GET /inventory", ofKind: .client) { _ in
                            await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "deep-llm"), pipeline: pipeline) { _ in }
                        }
                    }
                }
            }
            await pipeline.forceFlush()
            let request = try #require(other.span(named: "GET /request")?.traceParent)
            let client = try #require(other.span(named: "http.client GET /inventory"))
            let step = try #require(receiver.spans.first { $0.span.name == "execute_tool lookup" }?.span)
            let llm = try #require(receiver.spans.first { $0.span.name == "chat deep-llm" }?.span)
            #expect(step.parentSpanIDHex == request.spanID.hexString)
            #expect(client.parent?.spanID.hexString == step.spanIDHex)
            #expect(llm.parentSpanIDHex == client.traceParent?.spanID.hexString)
            #expect(Set([step.traceIDHex, llm.traceIDHex, request.traceID.hexString]).count == 1)
        }
    }
}

@Suite("An errored span kept by the local rule keeps its trace")
struct TraceKeepingTests {
    @Test("at ratio 0, an error keeps the spans of its trace recorded before (in an earlier export) and after it; other traces are dropped and counted")
    func errorKeepsItsTrace() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            let pipeline = EvalForge.Pipeline(configuration: lifecycleConfig(url) {
                $0.sampling.ratio = 0
                $0.sampling.keepSlowerThan = nil
                $0.buffer.flushInterval = .milliseconds(50)
            })
            let group = ServiceGroup(services: [pipeline], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await EvalForge.withStep(.invokeAgent, name: "kept-agent", pipeline: pipeline) { _ in
                    await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "kept-ok"), pipeline: pipeline) { _ in }
                    // Several export cycles pass: the successful call is drained and held meanwhile.
                    try await Task.sleep(for: .milliseconds(300))
                    await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "kept-error"), pipeline: pipeline) { span in
                        span.recordError(type: "500")
                    }
                    try await Task.sleep(for: .milliseconds(150))
                }
                await EvalForge.withStep(.invokeAgent, name: "dropped-agent", pipeline: pipeline) { _ in
                    await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "dropped-ok"), pipeline: pipeline) { _ in }
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let names = Set(receiver.spans.map(\.span.name))
            #expect(names == ["invoke_agent kept-agent", "chat kept-ok", "chat kept-error"])
            let stats = pipeline.statistics
            #expect(stats.recorded == 5 && stats.exported == 3 && stats.sampledOut == 2 && stats.buffered == 0)
            let spans = receiver.spans.map(\.span)
            let agent = try #require(spans.first { $0.name == "invoke_agent kept-agent" })
            #expect(spans.allSatisfy { $0.traceIDHex == agent.traceIDHex })
        }
    }
}

@Suite("OpenAI stream usage and gen_ai.request.stream")
struct StreamUsageTests {
    @Test("include_usage is added unless the caller set it; bodies that do not stream are unchanged")
    func requestingStreamUsage() throws {
        func object(_ d: Data) throws -> [String: Any] { try #require(try JSONSerialization.jsonObject(with: d) as? [String: Any]) }
        let plain = Data(#"{"model":"gpt-4o","stream":true,"messages":[]}"#.utf8)
        let added = try object(OpenAIChatAdapter.requestingStreamUsage(plain))
        #expect((added["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect(added["model"] as? String == "gpt-4o")
        let kept = Data(#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false}}"#.utf8)
        #expect(OpenAIChatAdapter.requestingStreamUsage(kept) == kept)
        let other = try object(OpenAIChatAdapter.requestingStreamUsage(Data(#"{"stream":true,"stream_options":{"x":1}}"#.utf8)))
        #expect((other["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect((other["stream_options"] as? [String: Any])?["x"] as? Int == 1)
        for unchanged in [#"{"model":"gpt-4o"}"#, #"{"stream":false}"#, "not json", #"{"stream":true,"stream_options":"odd"}"#, ""] {
            #expect(OpenAIChatAdapter.requestingStreamUsage(Data(unchanged.utf8)) == Data(unchanged.utf8))
        }
    }
}

@Suite("TraceKeeper bounds")
struct TraceKeeperBoundsTests {
    static func record(_ trace: TraceID, _ decision: SamplingDecision) -> SpanRecord {
        var r = SpanRecord(traceID: trace, spanID: IDGenerator.spanID(), parentSpanID: 0, kind: .client, name: nil,
                           request: LLMRequest(provider: "openai", model: "m"), startUnixNanos: 1)
        r.sampling = decision
        return r
    }

    @Test("held spans are bounded (the oldest dropped first), released by a later kept span of their trace, dropped after the hold time or at shutdown")
    func bounds() {
        let keeper = TraceKeeper(capacity: 3, holdFor: .seconds(10))
        let traces = (0..<5).map { _ in IDGenerator.traceID() }
        var batch = traces.map { Self.record($0, .notSampled) }
        #expect(keeper.filter(&batch, now: 1_000, final: false) == 2)  // 5 held, capacity 3: the 2 oldest go
        #expect(batch.isEmpty && keeper.heldCount == 3)
        // An error in trace 4 (held) releases its held span with it; trace 0 was dropped for room.
        batch = [Self.record(traces[4], .keptByRule), Self.record(traces[0], .notSampled)]
        #expect(keeper.filter(&batch, now: 2_000, final: false) == 0)
        #expect(Set(batch.map(\.traceID)) == [traces[4]] && batch.count == 2)
        #expect(keeper.heldCount == 3)  // traces 2, 3 and the new span of trace 0
        // A later span of the kept trace is kept; held spans past the hold time are dropped.
        batch = [Self.record(traces[4], .notSampled)]
        let later: UInt64 = 2_000 + 10_000_000_000
        #expect(keeper.filter(&batch, now: later, final: false) == 3)
        #expect(batch.count == 1 && keeper.heldCount == 0)
        // Shutdown decides everything still undecided.
        batch = [Self.record(traces[1], .notSampled), Self.record(traces[2], .sampled)]
        #expect(keeper.filter(&batch, now: later + 1, final: true) == 1)
        #expect(batch.map(\.traceID) == [traces[2]] && keeper.heldCount == 0)
    }
}
