import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Collector

@Suite("Collector pipeline: dedup, rollups, tail sampling, WAL")
struct CollectorPipelineTests {
    static func tempDir() -> String {
        let d = NSTemporaryDirectory() + "evalforge-collector-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static func config(_ edit: (inout CollectorConfiguration) -> Void = { _ in }) -> CollectorConfiguration {
        var c = CollectorConfiguration.default
        c.queueDirectory = tempDir()
        c.fsync = "never"
        c.authMode = .open  // most tests send without a key; AuthTests covers keys
        c.sampling.decisionWait = .milliseconds(100)
        c.sampling.rootGrace = .milliseconds(10)
        edit(&c)
        return c
    }

    static func ingest(_ p: CollectorPipeline, _ r: ExportTraceRequest) async throws -> CollectorPipeline.IngestResult {
        try await p.ingest(r, raw: try r.serializedBytes())
    }

    @Test("duplicates are dropped before aggregation")
    func dedup() async throws {
        let p = try CollectorPipeline(configuration: Self.config())
        let t = SpanFactory.traceID()
        let spans = (1...10).map { SpanFactory.span(trace: t, id: UInt64($0)) }
        let first = try await Self.ingest(p, SpanFactory.request(spans))
        #expect(first.accepted == 10 && first.duplicates == 0)
        let again = try await Self.ingest(p, SpanFactory.request(Array(spans[5...]) + [SpanFactory.span(trace: t, id: 11)]))
        #expect(again.accepted == 1 && again.duplicates == 5)
        // Repeated inside one request.
        let within = try await Self.ingest(p, SpanFactory.request([SpanFactory.span(trace: t, id: 12), SpanFactory.span(trace: t, id: 12)]))
        #expect(within.accepted == 1 && within.duplicates == 1)
        let batch = try #require(p.seal(force: true))
        let row = try #require(batch.rollups.rows.values.first)
        #expect(row.requests == 12)
        #expect(row.inputTokens == 1200)
        #expect(p.statistics.duplicatesDropped == 6)
    }

    @Test("zero and malformed ids are rejected with a reason; the rest is accepted")
    func invalidIDs() async throws {
        let p = try CollectorPipeline(configuration: Self.config())
        var bad = SpanFactory.span(trace: SpanFactory.traceID(), id: 1)
        bad.traceID = Data(count: 16)
        var short = SpanFactory.span(trace: SpanFactory.traceID(), id: 2)
        short.spanID = Data([1, 2, 3])
        let good = SpanFactory.span(trace: SpanFactory.traceID(), id: 3)
        let r = try await Self.ingest(p, SpanFactory.request([bad, short, good]))
        #expect(r.accepted == 1 && r.rejected == 2)
        #expect(r.rejectionReason?.contains("invalid trace id") == true)
    }

    @Test("rollups are exact whatever the sampling ratio; errors keep whole traces")
    func rollupsExactUnderSampling() async throws {
        let p = try CollectorPipeline(configuration: Self.config {
            $0.sampling.ratio = 0
            $0.sampling.costThresholdUSD = nil
        })
        var expectedInput: UInt64 = 0
        var errorTrace: TraceID?
        for i in 0..<200 {
            let t = SpanFactory.traceID()
            let isError = i == 17
            if isError { errorTrace = t }
            // A root agent span and two LLM calls; the error is on the second call.
            let root = SpanFactory.span(trace: t, id: 1, model: "gpt-4o", input: 10, durationMs: 900)
            let a = SpanFactory.span(trace: t, id: 2, parent: 1, model: "gpt-4o", input: 100 + i, durationMs: UInt64(100 + i))
            let b = SpanFactory.span(trace: t, id: 3, parent: 1, model: "claude-sonnet-4-5", input: 50, output: 5, error: isError)
            expectedInput += UInt64(10 + 100 + i + 50)
            _ = try await Self.ingest(p, SpanFactory.request([a]))
            _ = try await Self.ingest(p, SpanFactory.request([b, root]))
        }
        try await Task.sleep(for: .milliseconds(150))
        var kept: [KeptSpan] = []
        var table = RollupTable()
        var accepted = 0
        while let b = p.seal(force: true) {
            kept += b.kept
            table.merge(b.rollups)
            accepted += b.accepted
        }
        #expect(accepted == 600)
        #expect(table.rows.values.reduce(0) { $0 + $1.requests } == 600)
        #expect(table.rows.values.reduce(0) { $0 + $1.inputTokens } == expectedInput)
        #expect(table.rows.filter { $0.key.isError }.values.reduce(0) { $0 + $1.errors } == 1)
        // Only the errored trace survives sampling, whole.
        #expect(kept.count == 3)
        #expect(Set(kept.map { TraceID(bytes: $0.span.traceID)! }) == [errorTrace!])
        // Latency sketch: p50 of the gpt-4o calls (100…299 ms and 900 ms roots) within 1%.
        let gpt = table.rows.filter { $0.key.model == "gpt-4o" && !$0.key.isError }.values.reduce(into: RollupValue()) { $0.merge($1) }
        let p50 = try #require(gpt.latencyMs.quantile(0.5))
        #expect(abs(p50 - 299) / 299 < 0.02)
        #expect(p.statistics.sampledOut == 597)
    }

    @Test("cost stamped from the price table; unknown models stay unknown")
    func costStamping() async throws {
        let p = try CollectorPipeline(configuration: Self.config())
        let t = SpanFactory.traceID()
        _ = try await Self.ingest(p, SpanFactory.request([
            SpanFactory.span(trace: t, id: 1, model: "gpt-4o", input: 1_000_000, output: 0),
            SpanFactory.span(trace: t, id: 2, model: "house-model-7b", input: 10, output: 10),
        ]))
        let b = try #require(p.seal(force: true))
        let gpt = try #require(b.rollups.rows.first { $0.key.model == "gpt-4o" }?.value)
        #expect(abs(gpt.costUSD - 2.5) < 1e-9)
        let house = try #require(b.rollups.rows.first { $0.key.model == "house-model-7b" }?.value)
        #expect(house.costUSD == 0 && house.costUnknownRequests == 1)
        let houseSpan = try #require(b.kept.first { $0.span.name.contains("house") }?.span)
        #expect(houseSpan.attributes.contains { $0.key == GenAIKeys.costUnknown })
        let gptSpan = try #require(b.kept.first { $0.span.name == "chat gpt-4o" }?.span)
        #expect(gptSpan.attributes.first { $0.key == GenAIKeys.costUSD }?.value.doubleValue == 2.5)
    }

    @Test("the WAL replays unacknowledged records after a restart, exactly once")
    func walReplay() async throws {
        let c = Self.config()
        do {
            let p = try CollectorPipeline(configuration: c)
            for _ in 0..<5 {
                let t = SpanFactory.traceID()
                _ = try await Self.ingest(p, SpanFactory.request([SpanFactory.span(trace: t, id: 1), SpanFactory.span(trace: t, id: 2)]))
            }
            // The first two records are acknowledged by the backend.
            try p.wal.release(upTo: 2)
            p.wal.close()
        }
        let p2 = try CollectorPipeline(configuration: c)
        #expect(try p2.replay(skipThrough: 0) == 3)
        let b = try #require(p2.seal(force: true))
        #expect(b.firstSeq == 3 && b.lastSeq == 5)
        #expect(b.accepted == 6)
        // Replayed ids are remembered: a client retry of an acknowledged request is a duplicate.
        #expect(p2.statistics.queueDepthRecords == 3)
    }

    @Test("a torn WAL tail is cut off on replay")
    func tornTail() async throws {
        let c = Self.config()
        let p = try CollectorPipeline(configuration: c)
        let t = SpanFactory.traceID()
        _ = try await Self.ingest(p, SpanFactory.request([SpanFactory.span(trace: t, id: 1)]))
        _ = try await Self.ingest(p, SpanFactory.request([SpanFactory.span(trace: t, id: 2)]))
        p.wal.close()
        let seg = try #require(try FileManager.default.contentsOfDirectory(atPath: c.queueDirectory).first { $0.hasPrefix("wal-") })
        let path = c.queueDirectory + "/" + seg
        let data = try #require(FileManager.default.contents(atPath: path))
        try data.prefix(data.count - 7).write(to: URL(fileURLWithPath: path))
        let p2 = try CollectorPipeline(configuration: c)
        #expect(try p2.replay(skipThrough: 0) == 1)
        let next = try await Self.ingest(p2, SpanFactory.request([SpanFactory.span(trace: t, id: 3)]))
        #expect(next.accepted == 1)
        #expect(p2.wal.lastSeq == 2)
    }

    @Test("configuration files: every key, and errors that name the key")
    func configuration() throws {
        var c = CollectorConfiguration.default
        try c.apply(yaml: """
            receiver: {host: 0.0.0.0, port: 5318, max_body_bytes: 1048576, default_project: p1}
            dedup: {window_seconds: 60, max_ids: 100000}
            sampling:
              ratio: 0.1
              keep_errors: true
              latency_threshold_ms: 2000
              cost_threshold_usd: null
              rules: ["user.id=vip-*", "evalforge.tags=debug"]
              decision_wait_ms: 3000
            queue: {directory: /tmp/q, max_bytes: 10485760, fsync: "interval:50"}
            forward: {backend_url: "http://backend:3000", api_key: k, max_batch_spans: 100, gzip_level: 6}
            shutdown_timeout_ms: 2000
            """)
        #expect(c.port == 5318 && c.host == "0.0.0.0" && c.defaultProject == "p1")
        #expect(c.sampling.ratio == 0.1 && c.sampling.costThresholdUSD == nil && c.sampling.rules.count == 2)
        #expect(c.sampling.rules[0].isPrefix && c.sampling.rules[0].value == "vip-")
        #expect(c.fsyncPolicy == .interval(.milliseconds(50)))
        #expect(c.backendURL == "http://backend:3000" && c.maxBatchSpans == 100)
        #expect(c.compression == .lz4 && c.zstdLevel == 1 && c.gzipLevel == 6)  // lz4 unless told

        func error(_ yaml: String) -> String {
            var c = CollectorConfiguration.default
            do { try c.apply(yaml: yaml); return "" } catch { return "\(error)" }
        }
        #expect(error("sampling: {ratio: 2}").contains("sampling.ratio"))
        #expect(error("sampling: {ratoi: 0.5}").contains("sampling.ratoi"))
        #expect(error("queue: {fsync: sometimes}").contains("queue.fsync"))
        #expect(error("receiver: {port: eighty}").contains("receiver.port"))
        #expect(error("forward: {backend_url: 'ftp://x'}").contains("forward.backend_url"))
        #expect(error(": : :").contains("YAML") || error(": : :").contains("mapping"))

        // forward.compression and the levels.
        for (text, expected) in [("zstd", ForwardCompression.zstd), ("lz4", .lz4), ("LZ4", .lz4), ("gzip", .gzip), ("none", .none), ("GZIP", .gzip)] {
            var c = CollectorConfiguration.default
            try c.apply(yaml: "forward: {compression: \(text), zstd_level: 3}")
            #expect(c.compression == expected && c.zstdLevel == 3)
        }
        #expect(error("forward: {compression: brotli}").contains("forward.compression 'brotli'"))
        #expect(error("forward: {compression: brotli}").contains("zstd, gzip or none"))
        #expect(error("forward: {compression: 1}").contains("forward.compression"))
        #expect(error("forward: {zstd_level: 0}").contains("forward.zstd_level"))
        #expect(error("forward: {zstd_level: 22}").contains("forward.zstd_level"))
        #expect(error("forward: {gzip_level: 10}").contains("forward.gzip_level"))
    }
}

@Suite("WAL segments and fsync policies")
struct WALSegmentTests {
    @Test("the checkpoint: the newer of two slots wins, a damaged slot falls back to the other, the one-slot file of older versions is read")
    func checkpointSlots() throws {
        let dir = NSTemporaryDirectory() + "evalforge-checkpoint-\(UInt64.random(in: 0..<UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let wal = try WriteAheadLog(directory: dir, policy: .never)
            for seq in [3, 7, 8, 15] as [UInt64] { try wal.release(upTo: seq) }
            try wal.release(upTo: 9)  // older than the checkpoint: ignored
            wal.close()
        }
        let path = dir + "/checkpoint"
        var bytes = try #require(FileManager.default.contents(atPath: path).map { [UInt8]($0) })
        #expect(bytes.count == 24)
        #expect(try WriteAheadLog(directory: dir, policy: .never).ackedSeq == 15)
        // A torn write of the newer slot (15): the other slot (8) is used.
        let newer = WriteAheadLog.u64(bytes, 0) == 15 ? 0 : 12
        #expect(WriteAheadLog.u64(bytes, 12 - newer) == 8)
        bytes[newer + 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(try WriteAheadLog(directory: dir, policy: .never).ackedSeq == 8)
        // A file from before the second slot: one 12-byte slot.
        try Data(bytes[(12 - newer)..<(24 - newer)]).write(to: URL(fileURLWithPath: path))
        let wal = try WriteAheadLog(directory: dir, policy: .never)
        #expect(wal.ackedSeq == 8)
        // Both slots damaged: nothing acknowledged (every record replays; the backend drops resent batch ids).
        try Data(repeating: 0x5A, count: 24).write(to: URL(fileURLWithPath: path))
        #expect(try WriteAheadLog(directory: dir, policy: .never).ackedSeq == 0)
        // The next release after a restart rewrites a whole two-slot file.
        try wal.release(upTo: 20)
        #expect(FileManager.default.contents(atPath: path)?.count == 24)
        #expect(try WriteAheadLog(directory: dir, policy: .never).ackedSeq == 20)
    }

    @Test("many segment rotations with fsync always: every record durable and replayed", arguments: ["always", "interval:10", "never"])
    func rotations(fsync: String) async throws {
        let c = CollectorPipelineTests.config {
            $0.fsync = fsync
            $0.queueSegmentBytes = 1 << 16
        }
        let p = try CollectorPipeline(configuration: c)
        for i in 0..<120 {
            var r = SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: UInt64(i + 1))])
            r.resourceSpans[0].scopeSpans[0].spans[0].attributes.append(SpanFactory.kv("pad", String(repeating: "z", count: 2_000)))
            let result = try await CollectorPipelineTests.ingest(p, r)
            #expect(result.accepted == 1)
        }
        await p.wal.syncInBackground()
        p.wal.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: c.queueDirectory).filter { $0.hasPrefix("wal-") }
        #expect(segments.count >= 3)
        let p2 = try CollectorPipeline(configuration: c)
        #expect(try p2.replay(skipThrough: 0) == 120)
    }
}
