import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Collector

#if canImport(FoundationNetworking)
import FoundationNetworking
import TestProcesses
#endif

/// Refusals from the backend never release acknowledged data: 401/403/413 hold forwarding (degraded,
/// retried, resumed once the cause is fixed), only a 400 dead-letters a batch; batch ids survive a
/// wiped WAL; batches are bounded by bytes.
@Suite("Forwarding never silently releases acknowledged data")
struct ForwardingSafetyTests {
    static func queue(_ directory: String) -> @Sendable (inout CollectorConfiguration) -> Void {
        { $0.queueDirectory = directory }
    }

    /// The detailed health of the collector whose operator listener is at `url`.
    static func health(_ url: String) async throws -> CollectorStatistics {
        let data = try await URLSession.shared.data(from: URL(string: url + "/healthz")!).0
        return try JSONDecoder().decode(CollectorStatistics.self, from: data)
    }

    static func send(_ url: String, spans n: Int) async throws -> Int {
        let t = SpanFactory.traceID()
        return try await OTLPClient(url: url).post(SpanFactory.request((1...n).map { SpanFactory.span(trace: t, id: UInt64($0)) }))
    }

    static func waitUntil(_ timeout: Duration = .seconds(30), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }

    @Test("413 (and Retry-After: inf): the batch is held, not released; accepted once the backend accepts")
    func tooLargeIsHeld() async throws {
        let backend = BackendStandIn()
        backend.forcedStatus.store(413, ordering: .relaxed)
        try await ForwardingTests.withStack(backend: backend) { (url: String, pipeline: CollectorPipeline) async throws in
            #expect(try await Self.send(url, spans: 10) == 200)
            #expect(await Self.waitUntil { backend.requests.load(ordering: .relaxed) >= 3 })
            let held = pipeline.statistics
            #expect(held.status == "degraded")
            #expect(held.degradedReason?.contains("413") == true)
            #expect(held.queueDepthRecords == 1)
            #expect(held.deadLetters == 0)
            #expect(backend.spanCount == 0)
            backend.forcedStatus.store(0, ordering: .relaxed)
            #expect(await backend.waitFor(spans: 10) == 10)
            #expect(await Self.waitUntil { pipeline.statistics.status == "ok" })
            #expect(await Self.waitUntil { pipeline.statistics.queueDepthRecords == 0 })
        }
        #expect(backend.uniqueSpanIDs.count == 10)
    }

    @Test("429 (a tier's rate limit, Retry-After): batches are held and retried, not released or dead-lettered; delivered once the limit lifts")
    func rateLimitedIsHeldAndRetried() async throws {
        let backend = BackendStandIn()
        backend.forcedStatus.store(429, ordering: .relaxed)
        try await ForwardingTests.withStack(backend: backend) { (url: String, pipeline: CollectorPipeline) async throws in
            for _ in 0..<3 { #expect(try await Self.send(url, spans: 7) == 200) }
            // Retried (Retry-After, bounded by the backoff ceiling), never given up on.
            #expect(await Self.waitUntil { backend.requests.load(ordering: .relaxed) >= 8 })
            #expect(pipeline.statistics.queueDepthRecords == 3)
            #expect(pipeline.statistics.deadLetters == 0)
            #expect(backend.spanCount == 0)
            backend.forcedStatus.store(0, ordering: .relaxed)
            #expect(await backend.waitFor(spans: 21) == 21)
            #expect(await Self.waitUntil { pipeline.statistics.queueDepthRecords == 0 })
            #expect(pipeline.statistics.deadLetters == 0)
        }
        #expect(backend.uniqueSpanIDs.count == 21)
    }

    @Test("401 after a key rotation: the queue is kept, health is degraded, forwarding resumes with the reloaded key")
    func rotatedKey() async throws {
        let backend = BackendStandIn()
        backend.requiredKey.withLock { $0 = "new-key" }
        try await ForwardingTests.withStack(backend: backend, { $0.apiKey = "old-key" }) { (url: String, pipeline: CollectorPipeline) async throws in
            for _ in 0..<5 { #expect(try await Self.send(url, spans: 20) == 200) }
            #expect(await Self.waitUntil { pipeline.statistics.status == "degraded" })
            let h = pipeline.statistics
            #expect(h.degradedReason?.contains("401") == true)
            #expect(h.queueDepthRecords == 5)
            #expect(backend.spanCount == 0)
            pipeline.reload(apiKey: "new-key")  // what SIGHUP does after re-reading the configuration
            #expect(await backend.waitFor(spans: 100) == 100)
            #expect(await Self.waitUntil { pipeline.statistics.status == "ok" })
            #expect(await Self.waitUntil { pipeline.statistics.queueDepthRecords == 0 })
            #expect(pipeline.statistics.deadLetters == 0)
        }
        #expect(backend.uniqueSpanIDs.count == 100)
    }

    @Test("400 (malformed, proven by the backend): dead-lettered with the batch and counted, then released")
    func malformedIsDeadLettered() async throws {
        let backend = BackendStandIn()
        backend.forcedStatus.store(400, ordering: .relaxed)
        let queue = CollectorPipelineTests.tempDir()
        try await ForwardingTests.withStack(backend: backend, Self.queue(queue)) { (url: String, pipeline: CollectorPipeline) async throws in
            #expect(try await Self.send(url, spans: 4) == 200)
            #expect(await Self.waitUntil { pipeline.statistics.deadLetters == 1 })
            #expect(await Self.waitUntil { pipeline.statistics.queueDepthRecords == 0 })
            backend.forcedStatus.store(0, ordering: .relaxed)
            #expect(try await Self.send(url, spans: 3) == 200)
            #expect(await backend.waitFor(spans: 3) == 3)
        }
        let (entries, _) = try DeadLetterFile.read(path: queue + "/" + DeadLetterFile.fileName)
        #expect(entries.count == 1)
        #expect(entries.first?.kind == .rejectedBatch)
        #expect(entries.first?.reason.contains("400") == true)
        #expect(entries.first.map { !$0.payload.isEmpty } == true)
    }

    @Test("400 while the dead-letter file cannot be written: the batch is held, not released, and set aside once it can")
    func malformedIsHeldWhenTheDeadLetterFileFails() async throws {
        let backend = BackendStandIn()
        backend.forcedStatus.store(400, ordering: .relaxed)
        let queue = CollectorPipelineTests.tempDir()
        let deadLetter = queue + "/" + DeadLetterFile.fileName
        // A directory where the file should be: open(2) fails with EISDIR, even for root.
        try FileManager.default.createDirectory(atPath: deadLetter, withIntermediateDirectories: true)
        try await ForwardingTests.withStack(backend: backend, Self.queue(queue)) { (url: String, pipeline: CollectorPipeline) async throws in
            #expect(try await Self.send(url, spans: 4) == 200)
            #expect(await Self.waitUntil { pipeline.statistics.status == "degraded" })
            let held = pipeline.statistics
            #expect(held.degradedReason?.contains("dead-letter") == true, "\(held.degradedReason ?? "")")
            #expect(held.queueDepthRecords == 1)
            #expect(held.deadLetters == 0)
            try FileManager.default.removeItem(atPath: deadLetter)
            #expect(await Self.waitUntil { pipeline.statistics.deadLetters == 1 })
            #expect(await Self.waitUntil { pipeline.statistics.queueDepthRecords == 0 })
        }
        let (entries, _) = try DeadLetterFile.read(path: deadLetter)
        #expect(entries.count == 1 && entries.first?.kind == .rejectedBatch)
    }

    @Test("a wiped WAL directory: new batch ids are not answered as duplicates")
    func wipedWAL() async throws {
        let backend = BackendStandIn()
        let queue = CollectorPipelineTests.tempDir()
        try await ForwardingTests.withStack(backend: backend, Self.queue(queue)) { (url: String, _: CollectorPipeline) async throws in
            #expect(try await Self.send(url, spans: 5) == 200)
            #expect(await backend.waitFor(spans: 5) == 5)
        }
        let firstIDs = backend.stored.withLock { $0.batchIDs }
        try FileManager.default.removeItem(atPath: queue)
        try FileManager.default.createDirectory(atPath: queue, withIntermediateDirectories: true)
        try await ForwardingTests.withStack(backend: backend, Self.queue(queue)) { (url: String, _: CollectorPipeline) async throws in
            #expect(try await Self.send(url, spans: 6) == 200)
            #expect(await backend.waitFor(spans: 11) == 11)
        }
        let ids = backend.stored.withLock { $0.batchIDs }
        #expect(backend.stored.withLock { $0.duplicateBatches } == 0)
        #expect(Set(ids).count == ids.count)
        #expect(ids.count > firstIDs.count)
        // The same collector id and sequence numbers, a different epoch.
        #expect(ids.allSatisfy { $0.split(separator: "-").count >= 4 })
    }

    @Test("batches are bounded by bytes; a span above the limit is refused with 413 before it is acknowledged")
    func bytesBound() async throws {
        let backend = BackendStandIn()
        try await ForwardingTests.withStack(backend: backend, { $0.maxBatchBytes = 256 << 10; $0.flushInterval = .milliseconds(300) }) { url, pipeline in
            // 40 requests of ~20 KB spans: about 800 KB, more than three batches' worth.
            for _ in 0..<40 {
                var s = SpanFactory.span(trace: SpanFactory.traceID(), id: 1)
                s.attributes.append(SpanFactory.kv("gen_ai.output.messages", String(repeating: "x", count: 20_000)))
                #expect(try await OTLPClient(url: url).post(SpanFactory.request([s])) == 200)
            }
            #expect(await backend.waitFor(spans: 40) == 40)
            #expect(backend.stored.withLock { $0.batchIDs.count } >= 4)
            // One span larger than a batch: 413 with the reason, nothing accepted.
            var big = SpanFactory.span(trace: SpanFactory.traceID(), id: 1)
            big.attributes.append(SpanFactory.kv("gen_ai.output.messages", String(repeating: "y", count: 300_000)))
            var req = URLRequest(url: URL(string: url + "/v1/traces")!)
            req.httpMethod = "POST"
            req.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
            req.httpBody = try SpanFactory.request([big]).serializedData()
            let before = pipeline.statistics.spansReceived
            let (data, resp) = try await URLSession.shared.data(for: req)
            #expect((resp as? HTTPURLResponse)?.statusCode == 413)
            #expect(String(decoding: data, as: UTF8.self).contains("max_batch_bytes"))
            #expect(pipeline.statistics.spansReceived == before)
        }
        // Every batch the stand-in received fits the limit.
        #expect(backend.stored.withLock { $0.batchIDs.count } >= 4)
    }

    @Test("forward.max_batch_bytes and forward.collector_id are checked when configured")
    func configuration() throws {
        var c = CollectorConfiguration.default
        try c.apply(yaml: "forward: {max_batch_bytes: 1048576, collector_id: host-a}")
        #expect(c.maxBatchBytes == 1 << 20)
        func error(_ yaml: String) -> String {
            var c = CollectorConfiguration.default
            do { try c.apply(yaml: yaml); return "" } catch { return "\(error)" }
        }
        #expect(error("forward: {max_batch_bytes: 1024}").contains("forward.max_batch_bytes"))
        #expect(error("forward: {max_batch_bytes: 67108864}").contains("forward.max_batch_bytes"))
        #expect(error("forward: {collector_id: '\(String(repeating: "h", count: 300))'}").contains("forward.collector_id"))
        #expect(error("queue: {fsync: 'interval:99999999999'}").contains("queue.fsync"))
    }

    @Test("the real `evalforge collector`: SIGHUP reloads forward.api_key and held batches go through")
    func sighupReloadsKey() async throws {
        #expect(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let backend = BackendStandIn()
        backend.requiredKey.withLock { $0 = "rotated" }
        try await backend.buildApplication().test(.live) { backendClient in
            let backendPort = try #require(backendClient.port)
            let port = TestProcesses.freeLoopbackPort()
            let operatorPort = TestProcesses.freeLoopbackPort()
            let queue = CollectorPipelineTests.tempDir()
            let config = queue + "-collector.yaml"
            func write(key: String) throws {
                try """
                    queue: {directory: \(queue), fsync: always}
                    forward: {backend_url: "http://127.0.0.1:\(backendPort)", api_key: \(key), flush_interval_ms: 50, initial_backoff_ms: 20, max_backoff_ms: 200}
                    """.write(toFile: config, atomically: true, encoding: .utf8)
            }
            try write(key: "old")
            let p = ChildProcess()
            p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
            p.arguments = ["collector", "--open", "--config", config, "--port", "\(port)", "--operator-port", "\(operatorPort)", "--log-level", "error"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            defer { p.terminate(); p.waitUntilExit() }
            #expect(await TestProcesses.waitHealthy(port))
            let url = "http://127.0.0.1:\(port)"
            let operatorURL = "http://127.0.0.1:\(operatorPort)"
            #expect(try await Self.send(url, spans: 8) == 200)
            #expect(await Self.waitUntil { (try? await Self.health(operatorURL))?.status == "degraded" })
            #expect(backend.spanCount == 0)
            try write(key: "rotated")
            kill(p.processIdentifier, SIGHUP)
            #expect(await backend.waitFor(spans: 8, timeout: .seconds(10)) == 8)
            #expect(await Self.waitUntil { (try? await Self.health(operatorURL))?.status == "ok" })
            #expect(p.isRunning)
        }
    }
}
