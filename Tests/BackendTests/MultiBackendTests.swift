import AsyncHTTPClient
import Backend
import Collector
import EvalForgeCore
import EvalForgeOTLP
@testable import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import TestProcesses

/// Issue 16 §4: exactly once when a batch is retried on another backend. Two real `evalforge
/// backend` processes share one store (one SQLite data directory, or one ClickHouse database); the
/// collector reaches A through a proxy that passes each batch to A and, once A answered (the batch
/// is stored), drops the answer and answers 502 — a load balancer whose upstream connection broke
/// after the request. The collector fails over to B with the same batch id; B finds it in the shared
/// batch ledger. Every span is stored once.
@Suite("Several backends: exactly once across a failover", .serialized)
struct MultiBackendTests {
    /// Passes requests to `upstream`; while `dropAnswers` is set, answers 502 to every batch A
    /// stored (counted in `lost`).
    final class LosingProxy: Sendable {
        let upstream: String
        let dropAnswers = Atomic<Bool>(true)
        let lost = Atomic<Int>(0)
        let forwarded = Atomic<Int>(0)

        init(upstream: String) { self.upstream = upstream }

        func buildApplication() -> some ApplicationProtocol {
            let router = Router()
            router.get("/readyz") { _, _ -> Response in
                let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: self.upstream + "/readyz"), timeout: .seconds(5))
                return Response(status: .init(code: Int(r.status.code)), body: .init(byteBuffer: try await r.body.collect(upTo: 1 << 16)))
            }
            router.post("/v1/batches") { request, _ -> Response in
                var upstream = HTTPClientRequest(url: self.upstream + "/v1/batches")
                upstream.method = .POST
                for name in [HTTPField.Name.contentType, .contentEncoding, .authorization] {
                    if let v = request.headers[name] { upstream.headers.add(name: name.rawName, value: v) }
                }
                if let id = HTTPField.Name("X-EvalForge-Batch-Id"), let v = request.headers[id] { upstream.headers.add(name: "X-EvalForge-Batch-Id", value: v) }
                upstream.body = .bytes(try await request.body.collect(upTo: 64 << 20))
                let r = try await HTTPClient.shared.execute(upstream, timeout: .seconds(30))
                let body = try await r.body.collect(upTo: 1 << 20)
                self.forwarded.add(1, ordering: .relaxed)
                if r.status == .ok, self.dropAnswers.load(ordering: .relaxed) {
                    self.lost.add(1, ordering: .relaxed)
                    return Response(status: .badGateway, body: .init(byteBuffer: ByteBuffer(string: "upstream connection lost")))
                }
                return Response(status: .init(code: Int(r.status.code)), body: .init(byteBuffer: body))
            }
            return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        }
    }

    @Test("A stores a batch and its answer is lost; the collector retries it on B; everything is stored exactly once",
          .timeLimit(.minutes(5)), arguments: TestStore.available)
    func failoverAfterLostAnswer(_ store: TestStore) async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-two-backends-\(UUID().uuidString)").path
        let queue = dir + "-queue"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: queue)
        }
        let clickHouse = store.clickHouseConfiguration(prefix: "evalforge_two_")
        let (portA, portB) = (TestProcesses.freeLoopbackPort(), TestProcesses.freeLoopbackPort())
        // One after the other: the second finds the schema migrated.
        let a = RunningBackend(try BackendCrashTests.startBackend(port: portA, dir: dir, clickHouse: clickHouse))
        defer { a.kill(SIGKILL) }
        try #require(await TestProcesses.waitHealthy(portA), "backend A did not start")
        let b = RunningBackend(try BackendCrashTests.startBackend(port: portB, dir: dir, clickHouse: clickHouse))
        defer { b.kill(SIGKILL) }
        try #require(await TestProcesses.waitHealthy(portB), "backend B did not start")

        let proxy = LosingProxy(upstream: "http://127.0.0.1:\(portA)")
        let sentIDs = try await proxy.buildApplication().test(.live) { proxyClient -> Set<String> in
            let proxyPort = try #require(proxyClient.port)
            var c = CollectorConfiguration.default
            c.authMode = .open  // the test sends without a key; CollectorAuthTests covers keys
            c.port = 0
            c.queueDirectory = queue
            c.backendURLs = ["http://127.0.0.1:\(proxyPort)", "http://127.0.0.1:\(portB)"]
            c.apiKey = TestBackend.apiKey
            c.collectorID = "two-backends-test"
            c.flushInterval = .milliseconds(30)
            c.maxBatchSpans = 20
            c.initialBackoff = .milliseconds(50)
            c.maxBackoff = .milliseconds(300)
            c.healthInterval = .milliseconds(200)  // A's readiness passes through the proxy: it keeps getting batches
            c.shutdownTimeout = .seconds(1)
            c.sampling.rootGrace = .milliseconds(20)
            let (collector, pipeline) = try CollectorApp.build(configuration: c)
            return try await collector.test(.live) { client -> Set<String> in
                var sentIDs = Set<String>()
                for n in 0..<30 {
                    let trace = OTLPFixtures.traceID()
                    let spans = (0..<10).map { j in OTLPFixtures.legacySpan(trace: trace, id: UInt64(n * 100 + j + 1), model: "gpt-4o-mini", input: 100 + j) }
                    let r = try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"],
                                                     body: ByteBuffer(bytes: try OTLPFixtures.request(spans).serializedBytes() as [UInt8]))
                    #expect(r.status == .ok)
                    for s in spans { sentIDs.insert(Hex.encode(bytes: s.traceID) + "/" + Hex.encode(bytes: s.spanID)) }
                    try await Task.sleep(for: .milliseconds(40))
                }
                let drained = ContinuousClock.now + .seconds(90)
                while pipeline.statistics.queueDepthRecords > 0 || pipeline.statistics.pendingTraces > 0, ContinuousClock.now < drained {
                    try await Task.sleep(for: .milliseconds(50))
                }
                let s = pipeline.statistics
                #expect(s.queueDepthRecords == 0 && s.deadLetters == 0, "\(s)")
                #expect(s.spansForwarded == sentIDs.count)
                #expect(proxy.lost.load(ordering: .relaxed) >= 1, "no answer was lost: the test proved nothing")
                // A lost answer goes to B at once when B is healthy; when B is busy too (a slow store
                // answering 503) it waits for the backoff instead. Either way it is stored once (below).
                #expect(s.failovers >= 1, "no lost answer was retried on B at once: \(s)")
                return sentIDs
            }
        }

        // Stop both, then count straight from the shared store.
        #expect(a.kill(SIGTERM).status == 0)
        #expect(b.kill(SIGTERM).status == 0)
        try await Self.expectStoredOnce(sentIDs, dir: dir, clickHouse: clickHouse)
    }

    /// Every id in `expected` is stored exactly once in the shared store, nothing else, and the
    /// rollups count each span once (a batch stored twice would add its rollups twice).
    static func expectStoredOnce(_ expected: Set<String>, dir: String, clickHouse: ClickHouseConfiguration?) async throws {
        let sentIDs = expected
        let spanStore: any SpanStore
        if let clickHouse {
            spanStore = try await ClickHouseStore(configuration: clickHouse, logger: TestBackend.logger)
        } else {
            spanStore = try SQLiteStore(path: dir + "/evalforge-telemetry.sqlite", logger: TestBackend.logger)
        }
        var ids: [String] = []
        var cursor: String?
        repeat {
            let page = try await spanStore.listSpans(SpanFilter(trace: TraceFilter(projectID: "default")), limit: 5000, cursor: cursor)
            ids += page.items.map { $0.traceID + "/" + $0.spanID }
            cursor = page.nextCursor
        } while cursor != nil
        let stored = Set(ids)
        #expect(sentIDs.subtracting(stored).isEmpty && stored.subtracting(sentIDs).isEmpty, "\(sentIDs.subtracting(stored).count) spans missing, \(stored.subtracting(sentIDs).count) unknown")
        #expect(ids.count == Set(ids).count, "\(ids.count - Set(ids).count) spans stored twice")
        #expect(try await spanStore.countSpans(projectID: "default", fromUnixNanos: nil, toUnixNanos: nil) == sentIDs.count)
        // Rollups count each LLM span once too: the lost batches' rollups were not added twice.
        let m = try await spanStore.metrics(MetricsQuery(projectID: "default", fromUnix: 1_767_225_600 - 60, toUnix: 1_767_225_600 + 3600, intervalSeconds: 3600))
        #expect(m.reduce(0) { $0 + $1.value.requests } == UInt64(sentIDs.count))
        if let ch = spanStore as? ClickHouseStore { try? await ch.http.execute("DROP DATABASE IF EXISTS \(ch.db)") }
        await spanStore.shutdown()
    }

    @Test("kill -9 of one backend while batches flow: the collector moves to the other; everything acknowledged is stored exactly once",
          .timeLimit(.minutes(6)), arguments: TestStore.available)
    func killOneBackend(_ store: TestStore) async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-two-backends-kill-\(UUID().uuidString)").path
        let queue = dir + "-queue"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: queue)
        }
        let clickHouse = store.clickHouseConfiguration(prefix: "evalforge_two_kill_")
        let (portA, portB) = (TestProcesses.freeLoopbackPort(), TestProcesses.freeLoopbackPort())
        let a = RunningBackend(try BackendCrashTests.startBackend(port: portA, dir: dir, clickHouse: clickHouse))
        defer { a.kill(SIGKILL) }
        try #require(await TestProcesses.waitHealthy(portA), "backend A did not start")
        let b = RunningBackend(try BackendCrashTests.startBackend(port: portB, dir: dir, clickHouse: clickHouse))
        defer { b.kill(SIGKILL) }
        try #require(await TestProcesses.waitHealthy(portB), "backend B did not start")

        var c = CollectorConfiguration.default
        c.authMode = .open  // the test sends without a key; CollectorAuthTests covers keys
        c.port = 0
        c.queueDirectory = queue
        c.backendURLs = ["http://127.0.0.1:\(portA)", "http://127.0.0.1:\(portB)"]
        c.apiKey = TestBackend.apiKey
        c.collectorID = "two-backends-kill-test"
        c.flushInterval = .milliseconds(20)
        c.maxBatchSpans = 40
        c.initialBackoff = .milliseconds(50)
        c.maxBackoff = .milliseconds(300)
        c.healthInterval = .milliseconds(200)
        c.shutdownTimeout = .seconds(1)
        c.sampling.rootGrace = .milliseconds(20)
        let (collector, pipeline) = try CollectorApp.build(configuration: c)
        let acked = AckedSpans()
        try await collector.test(.live) { client in
            let collectorPort = try #require(client.port)
            let stop = Flag()
            let load = Task {
                var n = 0
                // Bounded (at most 3,000 spans), so the slowest store drains it within the test's time.
                while !stop.isSet, n < 300 {
                    let trace = OTLPFixtures.traceID()
                    let spans = (0..<10).map { j in OTLPFixtures.legacySpan(trace: trace, id: UInt64(n * 100 + j + 1), model: "gpt-4o-mini", input: 100 + j) }
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(collectorPort)/v1/traces")
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/x-protobuf")
                    request.body = .bytes(ByteBuffer(bytes: try OTLPFixtures.request(spans).serializedBytes() as [UInt8]))
                    let r = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                    _ = try await r.body.collect(upTo: 1 << 20)
                    if r.status == .ok {
                        acked.ids.withLock { ids in for s in spans { ids.insert(Hex.encode(bytes: s.traceID) + "/" + Hex.encode(bytes: s.spanID)) } }
                    }
                    n += 1
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            let flowing = ContinuousClock.now + .seconds(60)
            while pipeline.statistics.batchesForwarded < 6, ContinuousClock.now < flowing { try await Task.sleep(for: .milliseconds(20)) }
            #expect(pipeline.statistics.batchesForwarded >= 6, "nothing was forwarded before the kill")
            a.kill(SIGKILL)
            let forwardedAtKill = pipeline.statistics.batchesForwarded
            // B alone takes the stream: more batches are acknowledged without restarting A.
            let resumed = ContinuousClock.now + .seconds(60)
            while pipeline.statistics.batchesForwarded < forwardedAtKill + 10, ContinuousClock.now < resumed { try await Task.sleep(for: .milliseconds(20)) }
            #expect(pipeline.statistics.batchesForwarded >= forwardedAtKill + 10, "forwarding did not go on with B")
            stop.set()
            try await load.value
            let drained = ContinuousClock.now + .seconds(150)
            while pipeline.statistics.queueDepthRecords > 0 || pipeline.statistics.pendingTraces > 0, ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(50)) }
            let s = pipeline.statistics
            try #require(s.queueDepthRecords == 0 && s.deadLetters == 0, "\(s)")
            #expect(s.backends.first?.healthy == false, "the killed backend is still marked healthy: \(s.backends)")
            #expect(s.status == "ok", "one backend down is not degraded forwarding: \(s)")
        }
        #expect(b.kill(SIGTERM).status == 0)
        let all = acked.ids.withLock { $0 }
        #expect(all.count >= 200, "too little load to mean anything: \(all.count) spans acknowledged")
        try await Self.expectStoredOnce(all, dir: dir, clickHouse: clickHouse)
    }
}
