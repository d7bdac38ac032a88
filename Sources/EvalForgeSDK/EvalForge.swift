import EvalForgeCore
import Logging
import Synchronization
import Tracing

/// EvalForge's SDK: record LLM calls, agent steps and tool executions as OTel GenAI spans and export
/// them to the EvalForge collector.
///
/// ```swift
/// let evalforge = try EvalForge.bootstrap(.fromEnvironment())   // once, at start-up
/// let group = ServiceGroup(services: [server, evalforge], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()                                         // graceful shutdown flushes
///
/// let reply = try await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "gpt-4o")) { span in
///     let r = try await client.chat(...)
///     span.usage = TokenUsage(input: r.promptTokens, output: r.completionTokens)
///     return r
/// }
/// ```
public enum EvalForge {
    /// The SDK version, exported as `telemetry.sdk.version`.
    public static let version = EvalForgeVersion.release

    private struct Global {
        var pipeline = Pipeline.disabled
        var bootstrapped = false
    }

    private static let global = Mutex(Global())

    /// The pipeline the static API records into: the bootstrapped one (also after its shutdown, so its
    /// `statistics` stay readable), or a disabled one before `bootstrap`.
    public static var pipeline: Pipeline { global.withLock { $0.pipeline } }

    /// Creates the process's pipeline, which the static API (`withLLMCall`, `withStep`,
    /// `LLMHTTPClient` without a pipeline) records into, and returns it: it is a swift-service-lifecycle
    /// `Service`, so add it to the application's `ServiceGroup`, which runs its export loop and, on
    /// graceful shutdown, lets it flush within `buffer.shutdownTimeout`. The SDK starts no task of its
    /// own. A script without a ServiceGroup calls `EvalForge.shutdown()` (or `forceFlush()`) before
    /// exiting instead.
    ///
    /// Like swift-log's and swift-distributed-tracing's bootstraps it is once per process: a second
    /// call throws `EvalForgeError` and leaves the first pipeline in place.
    ///
    /// - Parameters:
    ///   - configuration: `.default` is the documented defaults and ignores the environment;
    ///     `.fromEnvironment()` is the same defaults with the `OTEL_*` / `EVALFORGE_*` variables
    ///     applied (collector URL, service name, sampling, …), what a deployed service wants.
    ///   - installTracer: when true and no swift-distributed-tracing instrument is bootstrapped yet,
    ///     bootstraps `EvalForge.Tracer` as the process's tracer, so `withSpan` spans are recorded
    ///     through this pipeline and LLM spans nest under them. When one is (swift-otel, bootstrapped
    ///     before this call), EvalForge defers to it and nests LLM spans under its spans. Do not
    ///     bootstrap another tracer after this: swift-distributed-tracing allows one bootstrap.
    @discardableResult
    public static func bootstrap(_ configuration: Configuration = .default, logger: Logger = Logger(label: "evalforge.sdk"), installTracer: Bool = false) throws -> Pipeline {
        let pipeline = Pipeline(configuration: configuration, logger: logger)
        try global.withLock { g throws(EvalForgeError) in
            guard !g.bootstrapped else { throw EvalForgeError.alreadyBootstrapped }
            g.bootstrapped = true
            g.pipeline = pipeline
        }
        if installTracer {
            if InstrumentationSystem.instrument is NoOpInstrument {
                InstrumentationSystem.bootstrap(Tracer(pipeline: pipeline))
            } else {
                logger.debug("a swift-distributed-tracing instrument is already bootstrapped; EvalForge spans nest under its spans")
            }
        }
        return pipeline
    }

    /// Flushes and stops the bootstrapped pipeline: waits for its running export loop to finish
    /// (bounded by `buffer.shutdownTimeout`), or flushes directly when none runs. The pipeline stays
    /// the global one, so `EvalForge.pipeline.statistics` still reads its final counters.
    public static func shutdown() async {
        await pipeline.shutdown()
    }

    /// Records `body` as an LLM call. Thrown errors mark the span failed (HTTP status, timeout,
    /// cancellation → `error.type`) and are rethrown; the span ends when `body` returns.
    public static func withLLMCall<T>(
        _ request: LLMRequest,
        pipeline: Pipeline? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (inout LLMSpan) async throws -> T
    ) async rethrows -> T {
        var span = (pipeline ?? self.pipeline).startLLMCall(request)
        do {
            let result = try await body(&span)
            span.end()
            return result
        } catch {
            span.recordError(error)
            span.end()
            throw error
        }
    }

    /// Records `body` as an agent step, tool execution or retrieval; spans started inside it
    /// (LLM calls, nested steps, and spans of the process's swift-distributed-tracing tracer) become
    /// its children. `context` (user, session, tags, metadata) is recorded on the step and on every
    /// span started inside it, as with `withContext(_:_:)`.
    public static func withStep<T>(
        _ operation: GenAIOperation,
        name: String,
        context: LLMCallContext? = nil,
        pipeline: Pipeline? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (inout LLMSpan) async throws -> T
    ) async rethrows -> T {
        guard let context else { return try await step(operation, name: name, pipeline: pipeline, body) }
        return try await withContext(context) { try await step(operation, name: name, pipeline: pipeline, body) }
    }

    private static func step<T>(
        _ operation: GenAIOperation,
        name: String,
        pipeline: Pipeline?,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (inout LLMSpan) async throws -> T
    ) async rethrows -> T {
        var span = (pipeline ?? self.pipeline).startStep(operation, name: name)
        let context = W3CInjection.context(continuing: ServiceContext.current ?? .topLevel, with: span.traceParent)
        do {
            let result = try await ServiceContext.withValue(context) { try await body(&span) }
            span.end()
            return result
        } catch {
            span.recordError(error)
            span.end()
            throw error
        }
    }

    /// Runs `body` as part of the trace in an incoming W3C `traceparent` header (ignored when absent
    /// or malformed), so spans recorded inside continue that trace.
    public static func withTraceParent<T>(
        _ header: String?,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> T
    ) async rethrows -> T {
        guard let header, let parent = TraceParent(header: header) else { return try await body() }
        let context = W3CInjection.context(continuing: ServiceContext.current ?? .topLevel, with: parent)
        return try await ServiceContext.withValue(context) { try await body() }
    }

    /// The `traceparent` to send on an outgoing request from here: the current EvalForge step, or
    /// the service tracer's current span; nil outside any trace.
    public static func currentTraceParent() -> TraceParent? {
        currentParent(resolver: pipeline.configuration.parentResolver)
    }

    /// `resolver` is read only inside a service context: a span start outside any (the common case)
    /// does not retain and release the configured closure.
    @inline(__always)
    static func currentParent(resolver: @autoclosure () -> (@Sendable (ServiceContext) -> TraceParent?)?) -> TraceParent? {
        guard let context = ServiceContext.current else { return nil }
        if let p = context[EvalForgeParentKey.self] { return p }
        if let resolver = resolver() { return resolver(context) }
        return W3CInjection.traceParent(from: context)
    }
}

/// Where EvalForge keeps its current step in the `ServiceContext`.
enum EvalForgeParentKey: ServiceContextKey {
    typealias Value = TraceParent
    static var nameOverride: String? { "evalforge.parent" }
}

/// Reads the service tracer's current span as a W3C traceparent through the tracer-agnostic injector.
enum W3CInjection {
    struct HeaderInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
            carrier[key.lowercased()] = value
        }
    }

    struct HeaderExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key.lowercased()] }
    }

    static func traceParent(from context: ServiceContext) -> TraceParent? {
        traceParent(from: context, instrument: InstrumentationSystem.instrument)
    }

    static func traceParent(from context: ServiceContext, instrument: any Instrument) -> TraceParent? {
        var carrier: [String: String] = [:]
        instrument.inject(context, into: &carrier, using: HeaderInjector())
        return carrier["traceparent"].flatMap { TraceParent(header: $0) }
    }

    /// `context` with `step` as the current span for both EvalForge and the process's tracer.
    ///
    /// With another tracer (swift-otel) bootstrapped, the step is handed to it as a W3C remote parent,
    /// so the spans it starts inside the step are the step's children; when it took the step (it
    /// injects it back), EvalForge reads the current span from that tracer alone, so an LLM call
    /// inside such a span nests under the span and not beside it: one tree whichever API started
    /// which span. Without one, or with `EvalForge.Tracer`, EvalForge's own key carries the step.
    static func context(continuing base: ServiceContext, with step: TraceParent) -> ServiceContext {
        var context = base
        context[EvalForgeParentKey.self] = step
        let instrument = InstrumentationSystem.instrument
        guard !(instrument is NoOpInstrument), !(instrument is EvalForge.Tracer) else { return context }
        instrument.extract(["traceparent": step.header], into: &context, using: HeaderExtractor())
        if traceParent(from: context, instrument: instrument)?.spanID == step.spanID {
            context[EvalForgeParentKey.self] = nil
        }
        return context
    }
}

/// Errors of the SDK's own API.
public struct EvalForgeError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case alreadyRunning, alreadyBootstrapped }
    private let code: Code
    public let message: String
    public var description: String { message }

    static let alreadyRunning = EvalForgeError(code: .alreadyRunning, message: "this pipeline's run() is already running or has finished; create a new Pipeline")
    static let alreadyBootstrapped = EvalForgeError(
        code: .alreadyBootstrapped,
        message: "EvalForge.bootstrap was already called in this process; call it once at start-up and pass the Pipeline it returned (or EvalForge.pipeline) where it is needed")
}

extension EvalForge.Configuration {
    /// `.default` with the documented environment variables applied (collector URL and headers,
    /// service name, sampling, buffer, content capture, price file): what a deployed service wants,
    /// so operators configure it without a rebuild. Bad values are logged and leave the default.
    public static func fromEnvironment(logger: Logger = Logger(label: "evalforge.sdk")) -> Self {
        let (c, problems) = Self.default.applyingEnvironment(ProcessEnvironment.variables)
        for p in problems { logger.warning("ignored bad EvalForge setting", metadata: ["problem": "\(p)"]) }
        return c
    }
}

import Foundation
enum ProcessEnvironment {
    static var variables: [String: String] { ProcessInfo.processInfo.environment }
}
