import EvalForgeCompression
import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// A real HTTP server standing in for the backend: decodes forwarded batches, stores each batch id
/// once (as the backend does), and can be told to fail.
final class BackendStandIn: Sendable {
    struct Stored: Sendable {
        var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
        var rollups = RollupTable()
        var batchIDs: [String] = []
        var duplicateBatches = 0
        var accepted: UInt64 = 0
        /// The `Content-Encoding` of every batch request, in arrival order ("" when absent).
        var encodings: [String] = []
    }

    let stored = Mutex(Stored())
    /// While true every request gets 503.
    let down = Atomic<Bool>(false)
    /// While non-zero every request gets this status (a refusal: 400, 401, 413…), with `Retry-After: inf`.
    let forcedStatus = Atomic<Int>(0)
    /// When set, a request without `Authorization: Bearer <key>` gets 401 (a rotated key).
    let requiredKey = Mutex<String?>(nil)
    let requests = Atomic<Int>(0)

    var spanCount: Int { stored.withLock { $0.spans.count } }
    var rollups: RollupTable { stored.withLock { $0.rollups } }
    var acceptedTotal: UInt64 { stored.withLock { $0.accepted } }
    var uniqueSpanIDs: Set<String> { stored.withLock { Set($0.spans.map { Hex.encode(bytes: $0.traceID) + Hex.encode(bytes: $0.spanID) }) } }

    func waitFor(spans n: Int, timeout: Duration = .seconds(60)) async -> Int {
        let deadline = ContinuousClock.now + timeout
        while spanCount < n, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return spanCount
    }

    func waitFor(accepted n: UInt64, timeout: Duration = .seconds(60)) async -> UInt64 {
        let deadline = ContinuousClock.now + timeout
        while acceptedTotal < n, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return acceptedTotal
    }

    func buildApplication(port: Int = 0) -> some ApplicationProtocol {
        let router = Router()
        // Readiness as the backend answers it: 503 while down.
        router.get("/readyz") { _, _ -> Response in
            Response(status: self.down.load(ordering: .relaxed) ? .serviceUnavailable : .ok)
        }
        router.post("/v1/batches") { request, _ -> Response in
            self.requests.add(1, ordering: .relaxed)
            if self.down.load(ordering: .relaxed) { return Response(status: .serviceUnavailable, headers: [.retryAfter: "0"]) }
            let forced = self.forcedStatus.load(ordering: .relaxed)
            if forced != 0 {
                _ = try await request.body.collect(upTo: 256 << 20)
                return Response(status: .init(code: forced), headers: [.retryAfter: "inf"], body: .init(byteBuffer: ByteBuffer(string: "refused by the stand-in")))
            }
            if let key = self.requiredKey.withLock({ $0 }), request.headers[.authorization] != "Bearer \(key)" {
                _ = try await request.body.collect(upTo: 256 << 20)
                return Response(status: .unauthorized, body: .init(byteBuffer: ByteBuffer(string: "invalid API key")))
            }
            let body = try await request.body.collect(upTo: 256 << 20)
            let encoding = request.headers[.contentEncoding] ?? ""
            guard let coding = ContentCoding(header: encoding) else { return Response(status: .unsupportedMediaType) }
            let bytes = try coding.decode(Array(body.readableBytesView), limit: 1 << 30)
            let batch = try Evalforge_V1_ForwardBatch(serializedBytes: bytes)
            self.stored.withLock { s in
                s.encodings.append(encoding)
                if s.batchIDs.contains(batch.batchID) {
                    s.duplicateBatches += 1
                    return
                }
                s.batchIDs.append(batch.batchID)
                s.accepted += batch.spansAccepted
                for rs in batch.resourceSpans { for ss in rs.scopeSpans { s.spans.append(contentsOf: ss.spans) } }
                for r in batch.rollups {
                    if let (k, v) = RollupCoding.rollup(r) { s.rollups.merge(key: k, value: v) }
                }
            }
            return Response(status: .ok)
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }
}

/// Builds OTLP requests with realistic LLM spans.
enum SpanFactory {
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

    static func span(trace: TraceID, id: UInt64, parent: UInt64 = 0, model: String = "gpt-4o-mini", input: Int = 100, output: Int = 20, durationMs: UInt64 = 300, error: Bool = false, startNanos: UInt64 = 1_763_000_000_000_000_000) -> Opentelemetry_Proto_Trace_V1_Span {
        var s = Opentelemetry_Proto_Trace_V1_Span()
        s.traceID = Data(withUnsafeBytes(of: (trace.high.bigEndian, trace.low.bigEndian)) { Array($0) })
        s.spanID = Data(withUnsafeBytes(of: id.bigEndian) { Array($0) })
        if parent != 0 { s.parentSpanID = Data(withUnsafeBytes(of: parent.bigEndian) { Array($0) }) }
        s.name = "chat \(model)"
        s.kind = .client
        s.startTimeUnixNano = startNanos
        s.endTimeUnixNano = startNanos + durationMs * 1_000_000
        s.attributes = [
            kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"), kv("gen_ai.request.model", model),
            kv("gen_ai.usage.input_tokens", input), kv("gen_ai.usage.output_tokens", output),
        ]
        if error {
            s.status.code = .error
            s.attributes.append(kv("error.type", "500"))
        }
        return s
    }

    static func request(_ spans: [Opentelemetry_Proto_Trace_V1_Span], service: String = "svc", project: String? = nil) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        var r = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        rs.resource.attributes = [kv("service.name", service)]
        if let project { rs.resource.attributes.append(kv("evalforge.project", project)) }
        var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        ss.scope.name = "test"
        ss.spans = spans
        rs.scopeSpans = [ss]
        r.resourceSpans = [rs]
        return r
    }

    static let counter = Atomic<UInt64>(1)
    static func traceID() -> TraceID {
        let n = counter.add(1, ordering: .relaxed).newValue
        return TraceID(high: n &* 0x9E37_79B9_7F4A_7C15 | 1, low: (n &* 0xBF58_476D_1CE4_E5B9) ^ 0x1234_5678)
    }
}
