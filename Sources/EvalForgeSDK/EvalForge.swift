import EvalForgeCore
import Logging
import Synchronization
import Tracing

/// EvalForge's SDK: record LLM calls, agent steps and tool executions as OTel GenAI spans and export
/// them to the EvalForge collector.
///
/// ```swift
/// EvalForge.bootstrap(.fromEnvironment())          // once, at start-up
/// let reply = try await EvalForge.withLLMCall(LLMRequest(provider: "openai", model: "gpt-4o")) { span in
///     let r = try await client.chat(...)
///     span.usage = TokenUsage(input: r.promptTokens, output: r.completionTokens)
///     return r
/// }
/// await EvalForge.shutdown()                        // flushes within the shutdown timeout
/// ```
public enum EvalForge {
    /// The SDK version, exported as `telemetry.sdk.version`.
    public static let version = "0.1.0"

    private static let global = Mutex<Pipeline>(Pipeline.disabled)
    private static let globalTask = Mutex<Task<Void, Never>?>(nil)

    /// The pipeline the static API records into: the bootstrapped one, or a disabled one before that.
    public static var pipeline: Pipeline { global.withLock { $0 } }

    /// Creates the global pipeline and starts its export loop in the background. Call once; a second
    /// call replaces the pipeline after shutting the previous one down in the background.
    @discardableResult
    public static func bootstrap(_ configuration: Configuration = .default, logger: Logger = Logger(label: "evalforge.sdk")) -> Pipeline {
        let pipeline = Pipeline(configuration: configuration, logger: logger)
        let previous = global.withLock { g -> Pipeline in
            defer { g = pipeline }
            return g
        }
        let task = Task.detached { _ = try? await pipeline.run() }
        globalTask.withLock { $0 = task }
        Task.detached { await previous.shutdown() }
        return pipeline
    }

    /// Flushes and stops the global pipeline (bounded by `buffer.shutdownTimeout`).
    public static func shutdown() async {
        let p = pipeline
        await p.shutdown()
        global.withLock { $0 = Pipeline.disabled }
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
    /// (LLM calls, nested steps) become its children.
    public static func withStep<T>(
        _ operation: GenAIOperation,
        name: String,
        pipeline: Pipeline? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (inout LLMSpan) async throws -> T
    ) async rethrows -> T {
        var span = (pipeline ?? self.pipeline).startStep(operation, name: name)
        var context = ServiceContext.current ?? .topLevel
        context[EvalForgeParentKey.self] = span.traceParent
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
        var context = ServiceContext.current ?? .topLevel
        context[EvalForgeParentKey.self] = parent
        return try await ServiceContext.withValue(context) { try await body() }
    }

    /// The `traceparent` to send on an outgoing request from here: the current EvalForge step, or
    /// the service tracer's current span; nil outside any trace.
    public static func currentTraceParent() -> TraceParent? {
        currentParent(resolver: pipeline.configuration.parentResolver)
    }

    @inline(__always)
    static func currentParent(resolver: (@Sendable (ServiceContext) -> TraceParent?)?) -> TraceParent? {
        guard let context = ServiceContext.current else { return nil }
        if let p = context[EvalForgeParentKey.self] { return p }
        if let resolver { return resolver(context) }
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

    static func traceParent(from context: ServiceContext) -> TraceParent? {
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: HeaderInjector())
        return carrier["traceparent"].flatMap { TraceParent(header: $0) }
    }
}

/// Errors of the SDK's own API.
public struct EvalForgeError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case alreadyRunning }
    private let code: Code
    public let message: String
    public var description: String { message }

    static let alreadyRunning = EvalForgeError(code: .alreadyRunning, message: "this pipeline's run() is already running or has finished; create a new Pipeline")
}

extension EvalForge.Configuration {
    /// The defaults with the documented environment variables applied; problems are logged.
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
