import EvalForgeCompression
import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import EvalForgeSDK
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Collector

@Suite("SDK → collector → backend over real HTTP")
struct ForwardingTests {
    /// Runs a backend stand-in and a collector (live, on loopback) forwarding to it.
    static func withStack(
        backend: BackendStandIn,
        _ edit: @escaping @Sendable (inout CollectorConfiguration) -> Void = { _ in },
        _ body: @Sendable (_ collectorURL: String, _ pipeline: CollectorPipeline) async throws -> Void
    ) async throws {
        try await backend.buildApplication().test(.live) { backendClient in
            let backendPort = try #require(backendClient.port)
            var c = CollectorPipelineTests.config()
            c.port = 0
            c.backendURL = "http://127.0.0.1:\(backendPort)"
            c.flushInterval = .milliseconds(100)
            c.initialBackoff = .milliseconds(20)
            c.maxBackoff = .milliseconds(200)
            edit(&c)
            let (app, pipeline) = try CollectorApp.build(configuration: c)
            try await app.test(.live) { collectorClient in
                let port = try #require(collectorClient.port)
                try await body("http://127.0.0.1:\(port)", pipeline)
            }
        }
    }

    @Test("spans recorded by the SDK arrive normalized, with exact rollups")
    func sdkThroughCollector() async throws {
        let backend = BackendStandIn()
        try await Self.withStack(backend: backend) { url, _ in
            var sdk = EvalForge.Configuration.default
            sdk.serviceName = "checkout"
            sdk.project = "shop"
            sdk.exporter.endpoint = url + "/v1/traces"
            sdk.buffer.flushInterval = .milliseconds(50)
            let pipeline = EvalForge.Pipeline(configuration: sdk)
            for i in 0..<500 {
                var s = pipeline.startLLMCall(LLMRequest(provider: LLMProvider.anthropic, model: "claude-haiku-4-5"))
                s.usage = TokenUsage(input: 100, output: 10 + i % 7, cacheRead: 40)
                if i % 50 == 0 { s.recordError(type: "529", message: "overloaded") }
                s.end()
            }
            await pipeline.forceFlush()
            #expect(pipeline.statistics.exported == 500)
            #expect(await backend.waitFor(spans: 500) == 500)
            let rollups = backend.rollups.rows
            #expect(rollups.values.reduce(0) { $0 + $1.requests } == 500)
            #expect(rollups.filter { $0.key.isError }.values.reduce(0) { $0 + $1.errors } == 10)
            #expect(rollups.keys.allSatisfy { $0.project == "shop" && $0.service == "checkout" && $0.provider == "anthropic" && $0.model == "claude-haiku-4-5" })
            #expect(rollups.values.reduce(0) { $0 + $1.inputTokens } == 50_000)
            #expect(rollups.values.reduce(0) { $0 + $1.cacheReadTokens } == 20_000)
            let cost = rollups.values.reduce(0.0) { $0 + $1.costUSD }
            #expect(cost > 0)
            #expect(backend.uniqueSpanIDs.count == 500)
        }
    }

    @Test("backend down, then up: everything acknowledged arrives exactly once")
    func backendOutage() async throws {
        let backend = BackendStandIn()
        backend.down.store(true, ordering: .relaxed)
        try await Self.withStack(backend: backend) { url, pipeline in
            let client = OTLPClient(url: url)
            var sent = 0
            for _ in 0..<20 {
                let t = SpanFactory.traceID()
                let r = SpanFactory.request((1...25).map { SpanFactory.span(trace: t, id: UInt64($0)) })
                #expect(try await client.post(r) == 200)
                sent += 25
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(backend.spanCount == 0)
            #expect(backend.requests.load(ordering: .relaxed) > 1)  // retried while down
            #expect(pipeline.statistics.queueDepthRecords == 20)
            backend.down.store(false, ordering: .relaxed)
            #expect(await backend.waitFor(spans: sent) == sent)
            try await Task.sleep(for: .milliseconds(300))
            #expect(backend.spanCount == sent)
            #expect(backend.uniqueSpanIDs.count == sent)
            #expect(backend.acceptedTotal == UInt64(sent))
            #expect(pipeline.statistics.queueDepthRecords == 0)
        }
    }

    @Test("each forward.compression: sent with its Content-Encoding, the backend stores the same data", arguments: ForwardCompression.allCases)
    func compression(_ compression: ForwardCompression) async throws {
        let backend = BackendStandIn()
        try await Self.withStack(backend: backend, { $0.compression = compression }) { url, _ in
            let client = OTLPClient(url: url)
            var sent = 0
            for i in 0..<10 {
                let t = SpanFactory.traceID()
                let request = SpanFactory.request((1...30).map { SpanFactory.span(trace: t, id: UInt64($0), input: 100 + i) })
                let status = try await client.post(request)
                #expect(status == 200)
                sent += 30
            }
            #expect(await backend.waitFor(spans: sent) == sent)
            #expect(backend.uniqueSpanIDs.count == sent)
            #expect(backend.acceptedTotal == UInt64(sent))
            #expect(backend.rollups.rows.values.reduce(0) { $0 + $1.requests } == UInt64(sent))
            #expect(backend.rollups.rows.values.reduce(0) { $0 + $1.inputTokens } == UInt64(30 * (0..<10).reduce(0) { $0 + 100 + $1 }))
            let expected = ["lz4": "lz4", "zstd": "zstd", "gzip": "gzip", "none": ""][compression.rawValue]!
            let encodings = backend.stored.withLock { $0.encodings }
            #expect(!encodings.isEmpty && encodings.allSatisfy { $0 == expected }, "\(encodings)")
        }
    }

    @Test("a zstd batch left in the outbox is resent with zstd after a restart configured for gzip")
    func outboxKeepsItsEncoding() async throws {
        let backend = BackendStandIn()
        let queue = CollectorPipelineTests.tempDir()
        backend.down.store(true, ordering: .relaxed)
        let first = 4 * 25
        try await Self.withStack(backend: backend, {
            $0.queueDirectory = queue
            $0.compression = .zstd
            $0.shutdownTimeout = .milliseconds(200)
        }) { url, _ in
            let client = OTLPClient(url: url)
            for _ in 0..<4 {
                let t = SpanFactory.traceID()
                #expect(try await client.post(SpanFactory.request((1...25).map { SpanFactory.span(trace: t, id: UInt64($0)) })) == 200)
            }
            // Wait until a batch is in the outbox (written before the first, failing, send).
            let deadline = ContinuousClock.now + .seconds(10)
            while (try? Outbox(directory: queue + "/outbox").pending().isEmpty) ?? true, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let left = try Outbox(directory: queue + "/outbox").pending()
        #expect(!left.isEmpty && left.allSatisfy { $0.coding == .zstd })
        let names = try FileManager.default.contentsOfDirectory(atPath: queue + "/outbox").filter { $0.hasPrefix("batch-") }
        #expect(!names.isEmpty && names.allSatisfy { $0.hasSuffix(".pb.zst") }, "\(names)")
        #expect(backend.spanCount == 0)

        backend.down.store(false, ordering: .relaxed)
        try await Self.withStack(backend: backend, {
            $0.queueDirectory = queue
            $0.compression = .gzip
        }) { url, _ in
            let client = OTLPClient(url: url)
            let t = SpanFactory.traceID()
            #expect(try await client.post(SpanFactory.request((1...25).map { SpanFactory.span(trace: t, id: UInt64($0)) })) == 200)
            let total = first + 25
            #expect(await backend.waitFor(spans: total) == total)
            try await Task.sleep(for: .milliseconds(200))
            #expect(backend.spanCount == total && backend.uniqueSpanIDs.count == total)
            let encodings = backend.stored.withLock { $0.encodings }
            // The stored zstd batches first (sent as zstd although gzip is configured now), then gzip.
            #expect(Array(encodings.prefix(left.count)) == Array(repeating: "zstd", count: left.count), "\(encodings)")
            #expect(encodings.dropFirst(left.count).contains("gzip"), "\(encodings)")
            #expect(encodings.dropFirst(left.count).allSatisfy { $0 == "gzip" }, "\(encodings)")
            #expect(try Outbox(directory: queue + "/outbox").pending().isEmpty)
        }
    }

    @Test("an outbox written before zstd (batch-<first>-<last>.pb.gz) is read as gzip; unknown files are ignored")
    func outboxSuffixes() throws {
        let dir = CollectorPipelineTests.tempDir()
        let outbox = try Outbox(directory: dir)
        let body = Array("batch".utf8)
        try outbox.write(Outbox.Entry(firstSeq: 1, lastSeq: 5, body: try Gzip.compress(body), coding: .gzip))
        try outbox.write(Outbox.Entry(firstSeq: 6, lastSeq: 9, body: try Zstd.compress(body), coding: .zstd))
        try outbox.write(Outbox.Entry(firstSeq: 10, lastSeq: 12, body: body, coding: .identity))
        try outbox.write(Outbox.Entry(firstSeq: 17, lastSeq: 20, body: try Lz4.compress(body), coding: .lz4))
        FileManager.default.createFile(atPath: dir + "/batch-13-14.pb.br", contents: Data(body))
        FileManager.default.createFile(atPath: dir + "/batch-15-16.pb.zst.tmp", contents: Data(body))
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(names == ["batch-1-5.pb.gz", "batch-10-12.pb", "batch-13-14.pb.br", "batch-15-16.pb.zst.tmp", "batch-17-20.pb.lz4", "batch-6-9.pb.zst"])
        let pending = outbox.pending()
        #expect(pending.map(\.firstSeq) == [1, 6, 10, 17])
        #expect(pending.map(\.coding) == [.gzip, .zstd, .identity, .lz4])
        #expect(try pending.map { try $0.coding.decode($0.body, limit: 100) } == [body, body, body, body])
        for e in pending { outbox.remove(e) }
        #expect(outbox.pending().isEmpty)
    }

    @Test("tail sampling at the edge: rollups count every span, batches carry the kept traces")
    func edgeMode() async throws {
        let backend = BackendStandIn()
        try await Self.withStack(backend: backend, {
            $0.sampling.ratio = 0.1
            $0.sampling.decisionWait = .milliseconds(200)
            $0.sampling.costThresholdUSD = nil
        }) { url, _ in
            let client = OTLPClient(url: url)
            var errorTraces = 0
            for i in 0..<300 {
                let t = SpanFactory.traceID()
                let error = i % 30 == 0
                if error { errorTraces += 1 }
                _ = try await client.post(SpanFactory.request([
                    SpanFactory.span(trace: t, id: 2, parent: 1, error: error),
                    SpanFactory.span(trace: t, id: 1, durationMs: 500),
                ]))
            }
            #expect(await backend.waitFor(accepted: 600) == 600)
            let rows = backend.rollups.rows
            #expect(rows.values.reduce(0) { $0 + $1.requests } == 600)
            let kept = backend.spanCount
            #expect(kept % 2 == 0)
            #expect(kept >= errorTraces * 2)
            #expect(kept < 200)  // ~10% of 300 traces plus the 10 errored ones, two spans each
        }
    }
}

/// Posts OTLP protobuf with URLSession, as any exporter would.
struct OTLPClient: Sendable {
    let url: String
    func post(_ r: ExportTraceRequest) async throws -> Int {
        var req = URLRequest(url: URL(string: url + "/v1/traces")!)
        req.httpMethod = "POST"
        req.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
        req.httpBody = try r.serializedData()
        let (_, resp) = try await URLSession.shared.data(for: req)
        return (resp as? HTTPURLResponse)?.statusCode ?? 0
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite("Forwarding window")
struct InFlightWindowTests {
    static func prepared(_ first: UInt64, _ last: UInt64) -> Forwarder.Prepared {
        Forwarder.Prepared(entry: Outbox.Entry(firstSeq: first, lastSeq: last, body: [], coding: .zstd), kept: Int(last - first + 1), persisted: OutboxWrite())
    }

    @Test("an outbox write's completion reaches tasks that waited before it and after it")
    func outboxWriteCompletion() async {
        let write = OutboxWrite()
        async let early = write.wait()
        async let early2 = write.wait()
        try? await Task.sleep(for: .milliseconds(20))
        write.complete(false)
        let (a, b) = await (early, early2)
        #expect(a == false && b == false)
        #expect(await write.wait() == false)
        let ok = OutboxWrite()
        ok.complete(true)
        #expect(await ok.wait())
    }

    @Test("acknowledgements in any order release batches only in order")
    func releasesInOrder() {
        var w = InFlightWindow()
        for (f, l) in [(1, 10), (11, 20), (21, 30), (31, 40)] as [(UInt64, UInt64)] { w.append(Self.prepared(f, l)) }
        #expect(w.finish(firstSeq: 21).isEmpty)  // third done: nothing before it is
        #expect(w.finish(firstSeq: 11).isEmpty)
        #expect(w.count == 4)
        #expect(w.finish(firstSeq: 1).map(\.entry.lastSeq) == [10, 20, 30])  // the done prefix, oldest first
        #expect(w.count == 1)
        #expect(w.finish(firstSeq: 99).isEmpty)  // unknown: ignored
        #expect(w.finish(firstSeq: 31).map(\.entry.lastSeq) == [40])
        #expect(w.count == 0)
    }
}
