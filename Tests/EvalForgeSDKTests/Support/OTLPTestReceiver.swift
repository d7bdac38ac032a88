import EvalForgeCore
import EvalForgeOTLP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

typealias ExportRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
typealias OTLPSpan = Opentelemetry_Proto_Trace_V1_Span

/// A real OTLP/HTTP receiver on loopback that decodes every request with the generated protobuf
/// types, standing in for the collector. Scripted answers let tests exercise retries.
final class OTLPTestReceiver: Sendable {
    struct Received: Sendable {
        var request: ExportRequest
        var headers: [String: String]
    }

    private let received = Mutex<[Received]>([])
    /// Answers for the next requests, in order (status, Retry-After); 200 when empty.
    private let script = Mutex<[(Int, String?)]>([])
    let requestCount = Atomic<Int>(0)

    func enqueueAnswers(_ answers: [(Int, String?)]) { script.withLock { $0.append(contentsOf: answers) } }

    var requests: [Received] { received.withLock { $0 } }

    var spans: [(resource: Opentelemetry_Proto_Resource_V1_Resource, span: OTLPSpan)] {
        requests.flatMap { r in
            r.request.resourceSpans.flatMap { rs in rs.scopeSpans.flatMap { ss in ss.spans.map { (rs.resource, $0) } } }
        }
    }

    /// Waits until at least `count` spans arrived or `timeout` passes.
    func waitForSpans(_ count: Int, timeout: Duration = .seconds(30)) async -> Int {
        let deadline = ContinuousClock.now + timeout
        while spans.count < count, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        return spans.count
    }

    func buildApplication() -> some ApplicationProtocol {
        let router = Router()
        router.post("/v1/traces") { request, context -> Response in
            self.requestCount.add(1, ordering: .relaxed)
            if let (status, retryAfter) = self.script.withLock({ $0.isEmpty ? nil : $0.removeFirst() }), status != 200 {
                var headers = HTTPFields()
                if let retryAfter { headers[.retryAfter] = retryAfter }
                return Response(status: .init(code: status), headers: headers)
            }
            var body = try await request.body.collect(upTo: 64 << 20)
            var bytes = body.readBytes(length: body.readableBytes) ?? []
            if request.headers[.contentEncoding] == "gzip" {
                bytes = try Gzip.decompress(bytes, limit: 256 << 20)
            }
            let decoded = try ExportRequest(serializedBytes: bytes)
            var headers: [String: String] = [:]
            for f in request.headers { headers[f.name.canonicalName] = f.value }
            self.received.withLock { $0.append(Received(request: decoded, headers: headers)) }
            let response = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse()
            let out: [UInt8] = try response.serializedBytes()
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"], body: .init(byteBuffer: ByteBuffer(bytes: out)))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// Runs `body` with the receiver listening; passes its `/v1/traces` URL.
    func withRunning<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        try await buildApplication().test(.live) { client in
            let port = try #require(client.port)
            return try await body("http://127.0.0.1:\(port)/v1/traces")
        }
    }
}

extension OTLPSpan {
    func attribute(_ key: String) -> Opentelemetry_Proto_Common_V1_AnyValue? {
        attributes.first { $0.key == key }?.value
    }
    func string(_ key: String) -> String? {
        guard let v = attribute(key), case .stringValue(let s)? = v.value else { return nil }
        return s
    }
    func int(_ key: String) -> Int64? {
        guard let v = attribute(key), case .intValue(let i)? = v.value else { return nil }
        return i
    }
    func double(_ key: String) -> Double? {
        guard let v = attribute(key), case .doubleValue(let d)? = v.value else { return nil }
        return d
    }
    func bool(_ key: String) -> Bool? {
        guard let v = attribute(key), case .boolValue(let b)? = v.value else { return nil }
        return b
    }
    func strings(_ key: String) -> [String]? {
        guard let v = attribute(key), case .arrayValue(let a)? = v.value else { return nil }
        return a.values.compactMap { if case .stringValue(let s)? = $0.value { return s } else { return nil } }
    }
    var traceIDHex: String { Hex.encode(bytes: traceID) }
    var spanIDHex: String { Hex.encode(bytes: spanID) }
    var parentSpanIDHex: String { Hex.encode(bytes: parentSpanID) }
}
