import EvalForgeCore
import EvalForgeOTLP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Prometheus
import Testing
import TestProcesses

@testable import Collector

@Suite("OTLP/HTTP receiver: formats, status codes and bad input")
struct ReceiverTests {
    static func withCollector(_ edit: (inout CollectorConfiguration) -> Void = { _ in }, _ body: @Sendable (any TestClientProtocol, CollectorPipeline) async throws -> Void) async throws {
        var c = CollectorPipelineTests.config()
        c.port = 0
        c.backendURL = "http://127.0.0.1:9"
        c.flushInterval = .seconds(3600)  // the tests seal batches themselves
        c.shutdownTimeout = .milliseconds(200)
        edit(&c)
        let (app, pipeline) = try CollectorApp.build(configuration: c)
        try await app.test(.router) { client in try await body(client, pipeline) }
    }

    static func protobuf(_ r: ExportTraceRequest) throws -> ByteBuffer { ByteBuffer(bytes: try r.serializedBytes() as [UInt8]) }

    @Test("protobuf, gzip and JSON requests are accepted and answered in kind")
    func formats() async throws {
        try await Self.withCollector { client, pipeline in
            let t = SpanFactory.traceID()
            let req = SpanFactory.request([SpanFactory.span(trace: t, id: 1)])
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"], body: Self.protobuf(req)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "application/x-protobuf")
                let decoded = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(serializedBytes: Array(r.body.readableBytesView))
                #expect(!decoded.hasPartialSuccess)
            }
            let gz = try Gzip.compress(try SpanFactory.request([SpanFactory.span(trace: t, id: 2)]).serializedBytes() as [UInt8])
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf", .contentEncoding: "gzip"], body: ByteBuffer(bytes: gz)) { r in
                #expect(r.status == .ok)
            }
            let json = """
                {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
                 "scopeSpans":[{"scope":{"name":"x"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
                 "parentSpanId":"","name":"chat gpt-4o","kind":3,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
                 "attributes":[{"key":"gen_ai.system","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
                 {"key":"gen_ai.usage.prompt_tokens","value":{"intValue":"12"}},{"key":"gen_ai.usage.completion_tokens","value":{"intValue":3}}],
                 "status":{"code":"STATUS_CODE_ERROR"}}]}]}]}
                """
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json)) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "application/json")
            }
            #expect(pipeline.statistics.spansReceived == 3)
            let b = try #require(pipeline.seal(force: true))
            let jsonSpan = try #require(b.kept.first { Hex.encode(bytes: $0.span.traceID) == "5b8efff798038103d269b633813fc60c" })
            #expect(Hex.encode(bytes: jsonSpan.span.spanID) == "eee19b7ec3c1b174")
            #expect(jsonSpan.span.status.code == .error)
            #expect(jsonSpan.span.attributes.first { $0.key == "gen_ai.provider.name" }?.value.stringValue == "openai")
            #expect(jsonSpan.span.attributes.first { $0.key == "gen_ai.usage.input_tokens" }?.value.intValue == 12)
            #expect(!jsonSpan.span.attributes.contains { $0.key == "gen_ai.usage.prompt_tokens" })
        }
    }

    @Test("bad input gets a clear 4xx and the collector keeps serving")
    func badInput() async throws {
        try await Self.withCollector({ $0.maxBodyBytes = 1 << 20 }) { client, pipeline in
            let valid: [UInt8] = try SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 1)]).serializedBytes()
            func post(_ body: [UInt8], type: String = "application/x-protobuf", encoding: String? = nil) async throws -> (HTTPResponse.Status, String) {
                var headers: HTTPFields = [.contentType: type]
                if let encoding { headers[.contentEncoding] = encoding }
                return try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { r in
                    (r.status, String(buffer: r.body))
                }
            }
            var (status, text) = try await post([0xde, 0xad, 0xbe, 0xef, 0xff, 0xff])
            #expect(status == .badRequest && text.contains("protobuf"))
            (status, text) = try await post(Array(valid.prefix(valid.count - 9)))
            #expect(status == .badRequest)
            // Wrong wire type for resource_spans (varint instead of length-delimited).
            (status, text) = try await post([0x08, 0x01])
            #expect(status == .badRequest)
            (status, text) = try await post(valid, type: "text/plain")
            #expect(status == .unsupportedMediaType && text.contains("Content-Type"))
            (status, text) = try await post(valid, encoding: "br")
            #expect(status == .unsupportedMediaType && text.contains("Content-Encoding"))
            (status, text) = try await post([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02], encoding: "gzip")
            #expect(status == .badRequest && text.contains("gzip"))
            (status, text) = try await post([UInt8](repeating: 0x41, count: 2 << 20))
            #expect(status == .contentTooLarge)
            // A gzip bomb: small on the wire, past the limit inflated.
            (status, text) = try await post(try Gzip.compress([UInt8](repeating: 0, count: 4 << 20)), encoding: "gzip")
            #expect(status == .contentTooLarge && text.contains("inflates"))
            // Invalid UTF-8 in a string field.
            var bad = SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 2)])
            bad.resourceSpans[0].scopeSpans[0].spans[0].name = "PLACEHOLDER"
            var bytes: [UInt8] = try bad.serializedBytes()
            // The name's bytes, not the first 'P' byte (a random id may hold 0x50 before it).
            let marker = Array("PLACEHOLDER".utf8)
            let at = try #require((0...(bytes.count - marker.count)).first { Array(bytes[$0..<($0 + marker.count)]) == marker })
            bytes[at] = 0xff
            bytes[at + 1] = 0xfe
            (status, text) = try await post(bytes)
            #expect(status == .badRequest && text.contains("UTF-8"))
            (status, text) = try await post(Array("{not json".utf8), type: "application/json")
            #expect(status == .badRequest && text.contains("JSON"))
            (status, text) = try await post(Array(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.utf8), type: "application/json")
            #expect(status == .badRequest && text.contains("traceId"))
            // Huge attribute values inside the limit are fine.
            var huge = SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 3)])
            huge.resourceSpans[0].scopeSpans[0].spans[0].attributes.append(SpanFactory.kv("big", String(repeating: "x", count: 500_000)))
            (status, _) = try await post(try huge.serializedBytes())
            #expect(status == .ok)
            // Still serving, nothing accepted lost.
            (status, _) = try await post(valid)
            #expect(status == .ok)
            #expect(pipeline.statistics.spansReceived == 2)
            let b = try #require(pipeline.seal(force: true))
            #expect(b.accepted == 2)
        }
    }

    @Test("a full queue answers 503 with Retry-After and accepts nothing")
    func backpressure() async throws {
        try await Self.withCollector({ $0.queueMaxBytes = 1 << 20 }) { client, pipeline in
            var last = HTTPResponse.Status.ok
            var retryAfter: String?
            var accepted = 0
            for i in 0..<64 where last == .ok {
                var r = SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: UInt64(i + 1))])
                r.resourceSpans[0].scopeSpans[0].spans[0].attributes.append(SpanFactory.kv("pad", String(repeating: "y", count: 60_000)))
                try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"], body: Self.protobuf(r)) { resp in
                    last = resp.status
                    retryAfter = resp.headers[.retryAfter]
                }
                if last == .ok { accepted += 1 }
            }
            #expect(last == .serviceUnavailable)
            #expect(retryAfter != nil)
            #expect(pipeline.statistics.spansReceived == accepted)
        }
    }

    @Test("the receiver's /healthz has only the status and version and it serves no /metrics; the operator listener serves both with details")
    func operations() async throws {
        var c = CollectorPipelineTests.config()
        c.port = 0
        c.backendURL = "http://127.0.0.1:9"
        c.flushInterval = .seconds(3600)
        c.shutdownTimeout = .milliseconds(200)
        let operatorPort = TestProcesses.freeLoopbackPort()
        c.operatorPort = operatorPort
        let (app, _) = try CollectorApp.build(configuration: c)
        try await app.test(.live) { client in
            let r = SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 1), SpanFactory.span(trace: SpanFactory.traceID(), id: 1)])
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"], body: Self.protobuf(r)) { _ in }
            try await client.execute(uri: "/healthz", method: .get) { resp in
                #expect(resp.status == .ok)
                #expect(String(buffer: resp.body) == "{\"status\":\"ok\",\"version\":\"\(EvalForgeVersion.release)\"}")
            }
            try await client.execute(uri: "/metrics", method: .get) { resp in
                #expect(resp.status == .notFound)
            }
            let op = "http://127.0.0.1:\(operatorPort)"
            #expect(await TestProcesses.waitHealthy(operatorPort), "the operator listener did not answer")
            let health = String(decoding: try await URLSession.shared.data(from: URL(string: op + "/healthz")!).0, as: UTF8.self)
            #expect(health.contains("\"spansReceived\":2"), "\(health)")
            let metrics = String(decoding: try await URLSession.shared.data(from: URL(string: op + "/metrics")!).0, as: UTF8.self)
            #expect(metrics.contains("evalforge_collector_spans_received_total 2"))
            #expect(metrics.contains("evalforge_collector_queue_depth_records"))
        }
    }
}
