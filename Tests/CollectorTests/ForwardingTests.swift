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
        Forwarder.Prepared(entry: Outbox.Entry(firstSeq: first, lastSeq: last, body: []), kept: Int(last - first + 1))
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
