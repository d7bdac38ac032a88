import EvalForgeSDK
import Foundation
import Hummingbird
import Logging
import OTel
import ServiceLifecycle

/// Settings read from the environment (each has a default that works with `evalforge dev`).
struct Settings: Sendable {
    /// `PORT`: where this service listens. Default 8081 (8080 is the mock LLM, 3000 the backend).
    var port = 8081
    /// `LLM_BASE_URL`: an OpenAI-compatible API. Default the mock LLM, http://127.0.0.1:8080/v1.
    var llmBaseURL = "http://127.0.0.1:8080/v1"
    /// `LLM_MODEL`. Default gpt-4o-mini.
    var model = "gpt-4o-mini"
    /// `OPENAI_API_KEY`. Default "mock" (the mock LLM accepts any key).
    var llmAPIKey = "mock"
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (full URL) for the service's own spans, or
    /// `EVALFORGE_COLLECTOR_URL` + `/v1/traces`. Default the collector, http://127.0.0.1:4318/v1/traces.
    var tracesEndpoint = "http://127.0.0.1:4318/v1/traces"

    static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> Settings {
        var s = Settings()
        if let v = env["PORT"] {
            guard let p = Int(v), (1...65535).contains(p) else { throw SettingsError("PORT=\(v): expected a port number 1…65535") }
            s.port = p
        }
        if let v = env["LLM_BASE_URL"], !v.isEmpty { s.llmBaseURL = v }
        if let v = env["LLM_MODEL"], !v.isEmpty { s.model = v }
        if let v = env["OPENAI_API_KEY"], !v.isEmpty { s.llmAPIKey = v }
        if let v = env["EVALFORGE_COLLECTOR_URL"], !v.isEmpty {
            s.tracesEndpoint = (v.hasSuffix("/") ? String(v.dropLast()) : v) + "/v1/traces"
        }
        if let v = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], !v.isEmpty { s.tracesEndpoint = v }
        return s
    }
}

struct SettingsError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@main
struct HummingbirdService {
    static func main() async throws {
        let settings = try Settings.fromEnvironment()
        let logger = Logger(label: "hummingbird-service")

        // 1. swift-otel: the service's own spans (one server span per request from Hummingbird's
        //    TracingMiddleware) go over OTLP/HTTP protobuf to the EvalForge collector. Bootstrapping
        //    installs the OTel tracer as the global `InstrumentationSystem` tracer.
        var otel = OTel.Configuration.default
        otel.serviceName = "hummingbird-service"
        otel.metrics.enabled = false
        otel.logs.enabled = false
        otel.traces.otlpExporter.protocol = .httpProtobuf
        otel.traces.otlpExporter.endpoint = settings.tracesEndpoint   // an explicit endpoint is used as is
        otel.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
        let otelService = try OTel.bootstrap(configuration: otel)

        // 2. EvalForge SDK: LLM spans go to the same collector. swift-otel is bootstrapped first, so
        //    EvalForge defers to its tracer: with no parent given, a new LLM span asks swift-otel's W3C
        //    propagator for the current span in `ServiceContext.current`, so an LLM call made in a
        //    request handler is that request's child. `bootstrap` returns the SDK's `Service`.
        var evalforge = EvalForge.Configuration.fromEnvironment()
        evalforge.serviceName = "hummingbird-service"
        let evalforgeService = try EvalForge.bootstrap(evalforge)

        let llm = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: settings.llmBaseURL, apiKey: settings.llmAPIKey)
        // One ServiceGroup runs everything and shuts down in reverse order on SIGINT/SIGTERM: the
        // HTTP server stops first, then EvalForge flushes its spans, then swift-otel exports what is left.
        let app = buildApplication(settings: settings, llm: llm, services: [otelService, evalforgeService], logger: logger)
        try await app.runService()
    }
}
