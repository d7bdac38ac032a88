import Backend
import EvalForgeCore
import EvalForgeOTLP
import EvalForgeStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization

/// A backend on a fresh temporary data directory (SQLite), or on ClickHouse when
/// `EVALFORGE_TEST_CLICKHOUSE_URL` is set and `clickHouse` is requested.
enum TestBackend {
    static let apiKey = "ef_test_key_project_default"

    static func configuration(clickHouse: Bool = false) -> BackendConfiguration {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-backend-\(UUID().uuidString)").path
        var c = BackendConfiguration(host: "127.0.0.1", port: 0, dataDirectory: dir, bootstrapAPIKey: apiKey)
        if clickHouse, let url = ProcessInfo.processInfo.environment["EVALFORGE_TEST_CLICKHOUSE_URL"] {
            c.clickHouse = ClickHouseConfiguration(url: url, database: "evalforge_test_\(UInt32.random(in: 0...UInt32.max))")
        }
        return c
    }

    static var logger: Logger {
        var l = Logger(label: "test.backend")
        l.logLevel = .warning
        return l
    }
}

/// Builds OTLP requests with GenAI spans for ingest tests.
enum OTLPFixtures {
    static func kv(_ k: String, _ v: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = k
        kv.value.stringValue = v
        return kv
    }

    static func kv(_ k: String, _ v: Int) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = k
        kv.value.intValue = Int64(v)
        return kv
    }

    static let counter = Atomic<UInt64>(1)

    static func traceID() -> TraceID {
        let n = counter.add(1, ordering: .relaxed).newValue
        return TraceID(high: n &* 0x9E37_79B9_7F4A_7C15 | 1, low: (n &* 0xBF58_476D_1CE4_E5B9) ^ 0x1234_5678)
    }

    static func bytes(_ t: TraceID) -> Data { Data(withUnsafeBytes(of: (t.high.bigEndian, t.low.bigEndian)) { Array($0) }) }
    static func bytes(_ id: UInt64) -> Data { Data(withUnsafeBytes(of: id.bigEndian) { Array($0) }) }

    /// An LLM span using the deprecated GenAI names (normalization must map them).
    static func legacySpan(trace: TraceID, id: UInt64, model: String = "gpt-4o-mini", input: Int = 1000, output: Int = 200, error: Bool = false) -> Opentelemetry_Proto_Trace_V1_Span {
        var s = Opentelemetry_Proto_Trace_V1_Span()
        s.traceID = bytes(trace)
        s.spanID = bytes(id)
        s.name = "chat \(model)"
        s.kind = .client
        s.startTimeUnixNano = 1_767_225_600_000_000_000 + id * 1_000_000
        s.endTimeUnixNano = s.startTimeUnixNano + 400_000_000
        s.attributes = [
            kv("gen_ai.system", "openai"), kv("gen_ai.request.model", model), kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.usage.prompt_tokens", input), kv("gen_ai.usage.completion_tokens", output),
            kv("user.id", "alice"), kv("session.id", "s-1"),
            kv("gen_ai.input.messages", "[{\"role\":\"user\",\"content\":\"hello\"}]"),
        ]
        if error { s.status.code = .error }
        return s
    }

    static func request(_ spans: [Opentelemetry_Proto_Trace_V1_Span], service: String = "checkout", project: String? = nil) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        var r = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        rs.resource.attributes = [kv("service.name", service)]
        if let project { rs.resource.attributes.append(kv("evalforge.project", project)) }
        var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        ss.spans = spans
        rs.scopeSpans = [ss]
        r.resourceSpans = [rs]
        return r
    }
}
