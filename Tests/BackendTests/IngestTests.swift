import Backend
import Collector
import EvalForgeCompression
import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import EvalForgeSDK
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IngestOracle
import NIOCore
import SwiftProtobuf
import Testing

/// Ingest routes against a real backend; the tests that store data run on every `TestStore`.
@Suite("Backend ingest")
struct IngestTests {
    static let auth: HTTPFields = [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"]

    static func forwardBatch(id: String, spans: [Opentelemetry_Proto_Trace_V1_Span], rollups: RollupTable) throws -> [UInt8] {
        try Gzip.compress(forwardBatchBytes(id: id, spans: spans, rollups: rollups))
    }

    /// The uncompressed `ForwardBatch` protobuf.
    static func forwardBatchBytes(id: String, spans: [Opentelemetry_Proto_Trace_V1_Span], rollups: RollupTable) throws -> [UInt8] {
        var b = Evalforge_V1_ForwardBatch()
        b.batchID = id
        b.collectorID = "test"
        b.resourceSpans = OTLPFixtures.request(spans).resourceSpans
        b.rollups = rollups.rows.map { RollupCoding.proto(key: $0.key, value: $0.value) }
        b.spansAccepted = UInt64(spans.count)
        b.spansKept = UInt64(spans.count)
        return try b.serializedBytes()
    }

    @Test("API keys: missing or wrong keys get 401 and nothing is stored", arguments: TestStore.available)
    func authentication(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        try await app.test(.router) { client in
            let body = ByteBuffer(bytes: try OTLPFixtures.request([OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 1)]).serializedBytes() as [UInt8])
            let none = try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"], body: body)
            #expect(none.status == .unauthorized)
            let wrong = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer ef_nope_nope", .contentType: "application/x-protobuf"], body: body)
            #expect(wrong.status == .unauthorized)
            #expect(String(buffer: wrong.body).contains("invalid"))
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
        }
        let page = try await services.store.listTraces(TraceFilter(projectID: "default"), sort: .startDesc, limit: 10, cursor: nil)
        #expect(page.items.isEmpty)
        await TestStore.tearDown(services)
    }

    @Test("forwarded batches are stored once per batch id, with exact rollups", arguments: TestStore.available)
    func batchIdempotency(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        let t = OTLPFixtures.traceID()
        var spans = (1...20).map { OTLPFixtures.legacySpan(trace: t, id: UInt64($0), error: $0 % 10 == 0) }
        var rollups = RollupTable()
        let normalizer = GenAINormalizer()
        for i in spans.indices {
            if let f = normalizer.normalize(&spans[i], resource: ResourceInfo(service: "checkout", project: "elsewhere")) { rollups.add(f) }
        }
        let body = try Self.forwardBatch(id: "c1-1-20", spans: spans, rollups: rollups)
        try await app.test(.router) { client in
            var headers = Self.auth
            headers[.contentEncoding] = "gzip"
            headers[HTTPField.Name("X-EvalForge-Batch-Id")!] = "c1-1-20"
            for attempt in 0..<3 {
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                #expect(r.status == .ok)
                let response = try Evalforge_V1_ForwardResponse(serializedBytes: Array(r.body.readableBytesView))
                #expect(response.batchID == "c1-1-20")
                #expect(response.duplicate == (attempt > 0))
            }
            // A header that disagrees with the body is refused.
            headers[HTTPField.Name("X-EvalForge-Batch-Id")!] = "other"
            let mismatch = try await client.execute(uri: "/v1/batches", method: .post, headers: headers, body: ByteBuffer(bytes: body))
            #expect(mismatch.status == .badRequest)
            // Garbage is refused with a reason; the process keeps serving.
            let garbage = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(bytes: [0xff, 0x01, 0x02, 0x03]))
            #expect(garbage.status == .badRequest)
            #expect(String(buffer: garbage.body).contains("ForwardBatch"))
            var gz = Self.auth
            gz[.contentEncoding] = "gzip"
            let badGzip = try await client.execute(uri: "/v1/batches", method: .post, headers: gz, body: ByteBuffer(bytes: [0x1f, 0x8b, 0x08, 0x00]))
            #expect(badGzip.status == .badRequest)
        }
        // Stored under the key's project, whatever the resource said.
        let stored = try await services.store.trace(projectID: "default", traceID: t.hexString)
        #expect(stored.count == 20)
        #expect(stored.allSatisfy { $0.provider == "openai" && $0.model == "gpt-4o-mini" && $0.inputTokens == 1000 && $0.outputTokens == 200 })
        let m = try await services.store.metrics(MetricsQuery(projectID: "default", fromUnix: 1_767_225_600 - 60, toUnix: 1_767_225_600 + 3600, intervalSeconds: 3600))
        #expect(m.reduce(0) { $0 + $1.value.requests } == 20)
        #expect(m.reduce(0) { $0 + $1.value.errors } == 2)
        #expect(m.reduce(0) { $0 + $1.value.inputTokens } == 20_000)
        #expect(try await services.store.trace(projectID: "elsewhere", traceID: t.hexString).isEmpty)
        await TestStore.tearDown(services)
    }

    @Test("Content-Encoding zstd, lz4, gzip or none: the same batch is stored alike; corrupt zstd or lz4 400, unknown encodings 415", arguments: TestStore.available)
    func batchEncodings(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        let normalizer = GenAINormalizer()
        let traces = try await app.test(.router) { client -> [(ContentCoding, TraceID)] in
            var traces: [(ContentCoding, TraceID)] = []
            for coding in ContentCoding.allCases {
                let t = OTLPFixtures.traceID()
                traces.append((coding, t))
                var spans = (1...12).map { OTLPFixtures.legacySpan(trace: t, id: UInt64($0), error: $0 == 12) }
                var rollups = RollupTable()
                for i in spans.indices {
                    if let f = normalizer.normalize(&spans[i], resource: ResourceInfo(service: "checkout", project: "p")) { rollups.add(f) }
                }
                let id = "enc-\(coding.rawValue)-\(t.hexString.prefix(8))"
                let body = try coding.encode(Self.forwardBatchBytes(id: id, spans: spans, rollups: rollups), level: 1)
                var headers = Self.auth
                if let encoding = coding.headerValue { headers[.contentEncoding] = encoding }
                headers[HTTPField.Name("X-EvalForge-Batch-Id")!] = id
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                #expect(r.status == .ok, "\(coding): \(String(buffer: r.body))")
                let response = try Evalforge_V1_ForwardResponse(serializedBytes: Array(r.body.readableBytesView))
                #expect(response.batchID == id && !response.duplicate)
            }

            let plain = try Self.forwardBatchBytes(id: "bad-1", spans: [OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 1)], rollups: RollupTable())
            let frame = try Zstd.compress(plain)
            var zstd = Self.auth
            zstd[.contentEncoding] = "zstd"
            // Corrupt zstd: a damaged checksum, a cut frame, a gzip body labelled zstd.
            var damaged = frame
            damaged[damaged.count - 1] ^= 0xFF
            for (what, body) in [("checksum", damaged), ("truncated", Array(frame.dropLast(7))), ("gzip body", try Gzip.compress(plain))] {
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: zstd, body: ByteBuffer(bytes: body))
                #expect(r.status == .badRequest, "\(what)")
                #expect(String(buffer: r.body).contains("Content-Encoding zstd, but zstd body is corrupt"), "\(what): \(String(buffer: r.body))")
            }
            // Corrupt lz4: a damaged content checksum, a cut frame.
            let lz4Frame = try Lz4.compress(plain)
            var lz4 = Self.auth
            lz4[.contentEncoding] = "lz4"
            var lz4Damaged = lz4Frame
            lz4Damaged[lz4Damaged.count - 1] ^= 0xFF
            for (what, body) in [("checksum", lz4Damaged), ("truncated", Array(lz4Frame.dropLast(7)))] {
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: lz4, body: ByteBuffer(bytes: body))
                #expect(r.status == .badRequest, "\(what)")
                #expect(String(buffer: r.body).contains("Content-Encoding lz4, but lz4 body is corrupt"), "\(what): \(String(buffer: r.body))")
            }
            // Unknown encodings: 415 naming the encoding.
            for encoding in ["br", "deflate", "zstd, gzip"] {
                var headers = Self.auth
                headers[.contentEncoding] = encoding
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: headers, body: ByteBuffer(bytes: frame))
                #expect(r.status == .unsupportedMediaType)
                #expect(String(buffer: r.body).contains("unsupported Content-Encoding '\(encoding)'"), "\(String(buffer: r.body))")
                #expect(String(buffer: r.body).contains("zstd, lz4, gzip or identity"))
            }
            // Direct OTLP takes zstd too.
            let t = OTLPFixtures.traceID()
            let otlp = try Zstd.compress(OTLPFixtures.request([OTLPFixtures.legacySpan(trace: t, id: 1)]).serializedBytes() as [UInt8])
            let r = try await client.execute(uri: "/v1/traces", method: .post, headers: zstd, body: ByteBuffer(bytes: otlp))
            #expect(r.status == .ok)
            traces.append((.zstd, t))
            return traces
        }
        for (coding, t) in traces {
            let stored = try await services.store.trace(projectID: "default", traceID: t.hexString)
            let expected = t == traces.last?.1 ? 1 : 12
            #expect(stored.count == expected, "\(coding)")
            #expect(stored.allSatisfy { $0.provider == "openai" && $0.model == "gpt-4o-mini" && $0.inputTokens == 1000 && $0.outputTokens == 200 }, "\(coding)")
        }
        let m = try await services.store.metrics(MetricsQuery(projectID: "default", fromUnix: 1_767_225_600 - 60, toUnix: 1_767_225_600 + 3600, intervalSeconds: 3600))
        // 12 spans (one an error) per coding, and the direct OTLP span.
        #expect(m.reduce(0) { $0 + $1.value.requests } == ContentCoding.allCases.count * 12 + 1)
        #expect(m.reduce(0) { $0 + $1.value.errors } == ContentCoding.allCases.count)
        await TestStore.tearDown(services)
    }

    @Test("direct OTLP: normalized, cost stamped, retries stored once, invalid ids rejected via partial_success", arguments: TestStore.available)
    func directOTLP(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        let t = OTLPFixtures.traceID()
        var bad = OTLPFixtures.legacySpan(trace: t, id: 99)
        bad.spanID = Data([0, 0, 0])
        let request = OTLPFixtures.request([OTLPFixtures.legacySpan(trace: t, id: 1), OTLPFixtures.legacySpan(trace: t, id: 2, model: "claude-sonnet-4-5"), bad])
        let body = try request.serializedBytes() as [UInt8]
        try await app.test(.router) { client in
            for _ in 0..<2 {
                let r = try await client.execute(uri: "/v1/traces", method: .post, headers: Self.auth, body: ByteBuffer(bytes: body))
                #expect(r.status == .ok)
                let response = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(serializedBytes: Array(r.body.readableBytesView))
                #expect(response.partialSuccess.rejectedSpans == 1)
            }
            let json = """
                {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
                "scopeSpans":[{"spans":[{"traceId":"\(t.hexString)","spanId":"00000000000000aa","name":"chat",
                "kind":3,"startTimeUnixNano":"1767225600000000000","endTimeUnixNano":"1767225601000000000",
                "attributes":[{"key":"gen_ai.provider.name","value":{"stringValue":"anthropic"}},{"key":"gen_ai.request.model","value":{"stringValue":"claude-haiku-4-5"}},
                {"key":"gen_ai.usage.input_tokens","value":{"intValue":"10"}}]}]}]}]}
                """
            let r = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/json"], body: ByteBuffer(string: json))
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "application/json")
            let unsupported = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "text/plain"], body: ByteBuffer(string: "x"))
            #expect(unsupported.status == .unsupportedMediaType)
            let truncated = try await client.execute(uri: "/v1/traces", method: .post, headers: Self.auth, body: ByteBuffer(bytes: body.prefix(body.count / 2)))
            #expect(truncated.status == .badRequest)
        }
        let spans = try await services.store.trace(projectID: "default", traceID: t.hexString)
        #expect(spans.count == 3)
        let gpt = try #require(spans.first { $0.model == "gpt-4o-mini" })
        #expect(gpt.provider == "openai")
        #expect(gpt.inputTokens == 1000 && gpt.outputTokens == 200)
        #expect((gpt.costUSD ?? 0) > 0)
        #expect(gpt.userID == "alice" && gpt.sessionID == "s-1")
        #expect(gpt.input.contains("hello"))
        let json = try #require(spans.first { $0.service == "json-svc" })
        #expect(json.provider == "anthropic" && json.inputTokens == 10)
        let m = try await services.store.metrics(MetricsQuery(projectID: "default", fromUnix: 1_767_225_600 - 60, toUnix: 1_767_225_600 + 3600, intervalSeconds: 3600))
        #expect(m.reduce(0) { $0 + $1.value.requests } == 3)
        await TestStore.tearDown(services)
    }

    @Test("oversized bodies get 413 and the backend keeps serving")
    func tooLarge() async throws {
        var c = TestBackend.configuration()
        c.maxBodyBytes = 64 * 1024
        let (app, services) = try await BackendApp.build(configuration: c, logger: TestBackend.logger, closesStoreAtShutdown: false)
        try await app.test(.router) { client in
            let r = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(repeating: 0x41, count: 200 * 1024))
            #expect(r.status == .contentTooLarge)
            let bomb = try Gzip.compress([UInt8](repeating: 0, count: 1 << 20))
            var gz = Self.auth
            gz[.contentEncoding] = "gzip"
            let r2 = try await client.execute(uri: "/v1/batches", method: .post, headers: gz, body: ByteBuffer(bytes: bomb))
            #expect(r2.status == .contentTooLarge)
            // zstd: 1 MiB of zeros is a few dozen bytes; refused while inflating, like gzip.
            var zstd = Self.auth
            zstd[.contentEncoding] = "zstd"
            let zstdBomb = try Zstd.compress([UInt8](repeating: 0, count: 1 << 20))
            #expect(zstdBomb.count < 1024)
            let r3 = try await client.execute(uri: "/v1/batches", method: .post, headers: zstd, body: ByteBuffer(bytes: zstdBomb))
            #expect(r3.status == .contentTooLarge)
            #expect(String(buffer: r3.body).contains("zstd body inflates past the 65536-byte limit"))
            // Same without a declared size in the frame header (RLE blocks, 4 MiB): stopped while inflating.
            var streamed: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x58]
            for i in 0..<32 {
                let header = UInt32(128 * 1024) << 3 | 1 << 1 | (i == 31 ? 1 : 0)
                streamed += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF), 0x00]
            }
            let r4 = try await client.execute(uri: "/v1/batches", method: .post, headers: zstd, body: ByteBuffer(bytes: streamed))
            #expect(r4.status == .contentTooLarge)
            // Just under the limit inflates (and then fails as a protobuf: 400, not 413).
            let under = try Zstd.compress([UInt8](repeating: 0, count: 60 * 1024))
            let r5 = try await client.execute(uri: "/v1/batches", method: .post, headers: zstd, body: ByteBuffer(bytes: under))
            #expect(r5.status == .badRequest)
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
        }
        await TestStore.tearDown(services)
    }

    @Test("SDK → collector → backend over real HTTP: every span stored once, rollups exact", arguments: TestStore.available)
    func endToEnd(_ store: TestStore) async throws {
        let (backend, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        try await backend.test(.live) { backendClient in
            let backendPort = try #require(backendClient.port)
            let queue = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-e2e-\(UUID().uuidString)").path
            var c = CollectorConfiguration.default
            c.port = 0
            c.queueDirectory = queue
            c.backendURL = "http://127.0.0.1:\(backendPort)"
            c.apiKey = TestBackend.apiKey
            c.authMode = .open  // the SDK sends no key (loopback)
            c.flushInterval = .milliseconds(100)
            let (collector, _) = try CollectorApp.build(configuration: c)
            try await collector.test(.live) { collectorClient in
                let port = try #require(collectorClient.port)
                var sdk = EvalForge.Configuration.default
                sdk.serviceName = "checkout"
                sdk.exporter.endpoint = "http://127.0.0.1:\(port)/v1/traces"
                sdk.buffer.flushInterval = .milliseconds(50)
                let pipeline = EvalForge.Pipeline(configuration: sdk)
                for i in 0..<300 {
                    var s = pipeline.startLLMCall(LLMRequest(provider: LLMProvider.anthropic, model: "claude-haiku-4-5"))
                    s.usage = TokenUsage(input: 100, output: 10 + i % 7, cacheRead: 40)
                    if i % 30 == 0 { s.recordError(type: "529", message: "overloaded") }
                    s.end()
                }
                await pipeline.forceFlush()
                #expect(pipeline.statistics.exported == 300)
                let deadline = ContinuousClock.now + .seconds(20)
                var stored = 0
                while ContinuousClock.now < deadline {
                    var cursor: String?
                    stored = 0
                    repeat {
                        let page = try await services.store.listSpans(SpanFilter(trace: TraceFilter(projectID: "default")), limit: 1000, cursor: cursor)
                        stored += page.items.count
                        cursor = page.nextCursor
                    } while cursor != nil
                    if stored >= 300 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(stored == 300)
                let now = Int64(Date().timeIntervalSince1970)
                let m = try await services.store.metrics(MetricsQuery(projectID: "default", fromUnix: now - 3600, toUnix: now + 120, intervalSeconds: 60))
                #expect(m.reduce(0) { $0 + $1.value.requests } == 300)
                #expect(m.reduce(0) { $0 + $1.value.errors } == 10)
                #expect(m.reduce(0) { $0 + $1.value.inputTokens } == 30_000)
                #expect(m.reduce(0) { $0 + $1.value.cacheReadTokens } == 12_000)
            }
            try? FileManager.default.removeItem(atPath: queue)
        }
        await TestStore.tearDown(services)
    }
}
