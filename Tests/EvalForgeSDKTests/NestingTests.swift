import EvalForgeCore
import Foundation
import InMemoryTracing
import Testing
import Tracing

@testable import EvalForgeSDK

@Suite("Span trees: EvalForge steps and the service's own tracer")
struct NestingTests {
    /// An InMemoryTracer that makes W3C-shaped ids, so its spans can parent EvalForge spans.
    static func hexTracer() -> InMemoryTracer {
        InMemoryTracer(idGenerator: .init(
            nextTraceID: { IDGenerator.traceID().hexString },
            nextSpanID: { SpanID(IDGenerator.spanID()).hexString }))
    }

    static func inMemoryResolver(_ context: ServiceContext) -> TraceParent? {
        guard let c = context.inMemorySpanContext, let t = TraceID(hex: c.traceID), let s = SpanID(hex: c.spanID) else { return nil }
        return TraceParent(traceID: t, spanID: s)
    }

    @Test("LLM calls inside a service span are its children, with the same trace id")
    func nestsUnderServiceTracer() async throws {
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            var c = EvalForge.Configuration.default
            c.exporter.endpoint = url
            c.parentResolver = NestingTests.inMemoryResolver
            let pipeline = EvalForge.Pipeline(configuration: c)
            let tracer = NestingTests.hexTracer()

            try await tracer.withSpan("GET /answer", ofKind: .server) { _ in
                try await EvalForge.withStep(.invokeAgent, name: "planner", pipeline: pipeline) { _ in
                    try await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"), pipeline: pipeline) { span in
                        span.usage = TokenUsage(input: 10, output: 5)
                    }
                    try await EvalForge.withStep(.executeTool, name: "search", pipeline: pipeline) { _ in
                        try await EvalForge.withStep(.retrieval, name: "docs-index", pipeline: pipeline) { _ in }
                    }
                }
            }
            // A call outside any span starts its own trace.
            try await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"), pipeline: pipeline) { _ in }
            await pipeline.forceFlush()

            let server = try #require(tracer.finishedSpans.first)
            let spans = Dictionary(receiver.spans.map { ($0.span.name, $0.span) }, uniquingKeysWith: { a, _ in a })
            let agent = try #require(spans["invoke_agent planner"])
            let tool = try #require(spans["execute_tool search"])
            let retrieval = try #require(spans["retrieval docs-index"])
            let llm = try #require(receiver.spans.first { $0.span.name == "chat gpt-4o" && $0.span.parentSpanID.count == 8 }?.span)
            let root = try #require(receiver.spans.first { $0.span.name == "chat gpt-4o" && $0.span.parentSpanID.isEmpty }?.span)

            #expect(agent.traceIDHex == server.context.inMemorySpanContext?.traceID)
            #expect(agent.parentSpanIDHex == server.context.inMemorySpanContext?.spanID)
            #expect(llm.parentSpanIDHex == agent.spanIDHex)
            #expect(tool.parentSpanIDHex == agent.spanIDHex)
            #expect(retrieval.parentSpanIDHex == tool.spanIDHex)
            #expect(Set([agent, tool, retrieval, llm].map(\.traceIDHex)).count == 1)
            #expect(root.traceIDHex != agent.traceIDHex)
            #expect(agent.kind == .internal && llm.kind == .client)
            #expect(agent.string(GenAIKeys.agentName) == "planner")
            #expect(tool.string(GenAIKeys.toolName) == "search")
        }
    }

    @Test("W3C traceparent in and out")
    func traceParentPropagation() async throws {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let pipeline = EvalForge.Pipeline(configuration: .default)
        #expect(EvalForge.currentTraceParent() == nil)
        await EvalForge.withTraceParent(incoming) {
            #expect(EvalForge.currentTraceParent()?.header == incoming)
            let span = pipeline.startLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"))
            #expect(span.traceParent.traceID.hexString == "4bf92f3577b34da6a3ce929d0e0e4736")
            #expect(span.record.parentSpanID == 0x00f0_67aa_0ba9_02b7)
            // Outgoing header for the child.
            let out = span.traceParent.header
            #expect(TraceParent(header: out)?.spanID == span.traceParent.spanID)
        }
        // Malformed headers are ignored, not fatal.
        await EvalForge.withTraceParent("00-zzzz-00f067aa0ba902b7-01") {
            #expect(EvalForge.currentTraceParent() == nil)
        }
        #expect(TraceParent(header: "00-00000000000000000000000000000000-00f067aa0ba902b7-01") == nil)
        #expect(TraceParent(header: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == nil)
    }

    @Test("thrown errors mark the span and are rethrown")
    func errorsRecorded() async throws {
        struct Boom: Error {}
        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            var c = EvalForge.Configuration.default
            c.exporter.endpoint = url
            let pipeline = EvalForge.Pipeline(configuration: c)
            await #expect(throws: Boom.self) {
                try await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"), pipeline: pipeline) { _ in throw Boom() }
            }
            let task = Task {
                try await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "gpt-4o"), pipeline: pipeline) { _ in
                    try await Task.sleep(for: .seconds(30))
                }
            }
            try await Task.sleep(for: .milliseconds(50))
            task.cancel()
            _ = await task.result
            await pipeline.forceFlush()
            let types = Set(receiver.spans.compactMap { $0.span.string(GenAIKeys.errorType) })
            #expect(types.contains("cancelled"))
            #expect(types.contains { $0.hasSuffix("Boom") })
            #expect(receiver.spans.allSatisfy { $0.span.status.code == .error })
        }
    }
}
