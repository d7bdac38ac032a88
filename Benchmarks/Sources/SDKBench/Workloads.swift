import EvalForgeSDK
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The same instrumented chat call, recorded through each SDK: operation, provider, request model,
/// response model, response id, finish reasons, input/output/cache-read tokens, temperature and
/// max_tokens (11 attributes; EvalForge adds the cost at export, off the calling thread).
enum ChatCall {
    static let provider = LLMProvider.openAI
    static let requestModel = "gpt-4o-mini"
    static let responseModel = "gpt-4o-mini-2024-07-18"
    static let responseID = "chatcmpl-AbCdEf0123456789"
    static let finishReasons = ["stop"]
    static let spanName = "chat gpt-4o-mini"
    static let inputTokens = 812
    static let outputTokens = 143
    static let cacheReadTokens = 256
    static let temperature = 0.7
    static let maxTokens = 512

    static var request: LLMRequest {
        var r = LLMRequest(provider: provider, model: requestModel)
        r.temperature = temperature
        r.maxTokens = maxTokens
        return r
    }
}

/// EvalForgeSDK with its export loop running to the sink.
final class OursRecorder: Sendable {
    let pipeline: EvalForge.Pipeline
    let path: String
    private let request: LLMRequest
    private let stopReasons: [String]
    private let runner: Task<Void, any Error>

    init(sinkBase: String, path: String) {
        var c = EvalForge.Configuration.default
        c.serviceName = "bench"
        c.exporter.endpoint = sinkBase + path
        self.path = path
        pipeline = EvalForge.Pipeline(configuration: c)
        let pipeline = self.pipeline
        runner = Task.detached { try await pipeline.run() }
        request = ChatCall.request
        stopReasons = ChatCall.finishReasons
    }

    /// One instrumented chat call, as a service would record it around its provider call.
    @inline(__always)
    func record() {
        var span = pipeline.startLLMCall(request)
        span.responseModel = ChatCall.responseModel
        span.responseID = ChatCall.responseID
        span.finishReasons = stopReasons
        span.usage = TokenUsage(input: ChatCall.inputTokens, output: ChatCall.outputTokens, cacheRead: ChatCall.cacheReadTokens)
        span.end()
    }

    /// Blocks (on a dedicated thread) until the buffer is drained by the export loop.
    func waitForDrain() {
        let deadline = monotonicNanos() + 30_000_000_000
        while pipeline.statistics.buffered > 0, monotonicNanos() < deadline { sleepMillis(1) }
        sleepMillis(2)
    }

    func shutdown() async {
        await pipeline.shutdown()
        _ = try? await runner.value
    }
}

/// swift-otel's tracer with its batch span processor and OTLP/HTTP (protobuf) exporter, all defaults
/// except the endpoint (and no logs/metrics backends).
final class PeerRecorder: Sendable {
    let path: String
    private let tracer: OTelTracerBox
    private let group: ServiceGroup
    private let runner: Task<Void, any Error>

    init(sinkBase: String, path: String) throws {
        var c = OTel.Configuration.default
        c.serviceName = "bench"
        c.diagnosticLogLevel = .error
        c.logs.enabled = false
        c.metrics.enabled = false
        c.traces.otlpExporter.endpoint = sinkBase + path
        c.traces.otlpExporter.protocol = .httpProtobuf
        self.path = path
        let backend = try OTel.makeTracingBackend(configuration: c)
        tracer = OTelTracerBox(backend.factory)
        var logger = Logger(label: "bench.peer")
        logger.logLevel = .error
        let group = ServiceGroup(configuration: .init(services: [backend.service], logger: logger))
        self.group = group
        runner = Task.detached { try await group.run() }
    }

    /// The idiomatic form: one `span.attributes[...] = ...` per attribute.
    @inline(__always)
    func recordWithSetters() { tracer.recordWithSetters() }

    /// The batched form: all attributes in one `updateAttributes` (one lock round trip).
    @inline(__always)
    func recordWithUpdateAttributes() { tracer.recordWithUpdateAttributes() }

    /// Graceful shutdown: the batch processor flushes what it holds, then the exporter stops.
    func shutdown() async {
        await group.triggerGracefulShutdown()
        _ = try? await runner.value
    }
}

/// Keeps the concrete (opaque) tracer type so calls are not made through an existential.
struct OTelTracerBox: Sendable {
    private let record1: @Sendable () -> Void
    private let record2: @Sendable () -> Void

    init<T: Tracer>(_ tracer: T) {
        record1 = { Self.setters(tracer) }
        record2 = { Self.update(tracer) }
    }

    @inline(__always) func recordWithSetters() { record1() }
    @inline(__always) func recordWithUpdateAttributes() { record2() }

    @inline(__always)
    static func setters<T: Tracer>(_ tracer: T) {
        tracer.withSpan(ChatCall.spanName, ofKind: .client) { span in
            span.attributes[GenAIKeys.operationName] = "chat"
            span.attributes[GenAIKeys.providerName] = ChatCall.provider
            span.attributes[GenAIKeys.requestModel] = ChatCall.requestModel
            span.attributes[GenAIKeys.requestTemperature] = ChatCall.temperature
            span.attributes[GenAIKeys.requestMaxTokens] = ChatCall.maxTokens
            span.attributes[GenAIKeys.responseModel] = ChatCall.responseModel
            span.attributes[GenAIKeys.responseID] = ChatCall.responseID
            span.attributes[GenAIKeys.responseFinishReasons] = ChatCall.finishReasons
            span.attributes[GenAIKeys.usageInputTokens] = ChatCall.inputTokens
            span.attributes[GenAIKeys.usageOutputTokens] = ChatCall.outputTokens
            span.attributes[GenAIKeys.usageCacheReadInputTokens] = ChatCall.cacheReadTokens
        }
    }

    @inline(__always)
    static func update<T: Tracer>(_ tracer: T) {
        tracer.withSpan(ChatCall.spanName, ofKind: .client) { span in
            span.updateAttributes { a in
                a[GenAIKeys.operationName] = "chat"
                a[GenAIKeys.providerName] = ChatCall.provider
                a[GenAIKeys.requestModel] = ChatCall.requestModel
                a[GenAIKeys.requestTemperature] = ChatCall.temperature
                a[GenAIKeys.requestMaxTokens] = ChatCall.maxTokens
                a[GenAIKeys.responseModel] = ChatCall.responseModel
                a[GenAIKeys.responseID] = ChatCall.responseID
                a[GenAIKeys.responseFinishReasons] = ChatCall.finishReasons
                a[GenAIKeys.usageInputTokens] = ChatCall.inputTokens
                a[GenAIKeys.usageOutputTokens] = ChatCall.outputTokens
                a[GenAIKeys.usageCacheReadInputTokens] = ChatCall.cacheReadTokens
            }
        }
    }
}
