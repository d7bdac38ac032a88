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

/// kill -9 of the real `evalforge backend` while a collector forwards to it: batches in flight are
/// cut (stored but not acknowledged, or not stored at all); the collector keeps them in its WAL and
/// resends them to the restarted backend, which answers the stored ones as duplicates. At the end
/// every span the collector acknowledged is stored exactly once. (CollectorTests/CrashRecoveryTests
/// kills the collector; EvaluationTests/CrashLoopTests kills the backend during an experiment run.)
@Suite("kill -9 of the backend during ingest", .serialized)
struct BackendCrashTests {

    static func startBackend(port: Int, dir: String, clickHouse: ClickHouseConfiguration?) throws -> ChildProcess {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        var arguments = ["backend", "--operator-port", "0", "--port", "\(port)", "--data-dir", dir, "--api-key", TestBackend.apiKey, "--log-level", "error"]
        var environment = ProcessInfo.processInfo.environment
        environment["EVALFORGE_CLICKHOUSE_URL"] = nil
        if let ch = clickHouse {
            arguments += ["--clickhouse-url", ch.url, "--clickhouse-database", ch.database]
            environment["EVALFORGE_CLICKHOUSE_BATCH_ROWS"] = "1"
            environment["EVALFORGE_CLICKHOUSE_FLUSH_MS"] = "10"
        }
        p.arguments = arguments
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }


    @Test("kill -9 of the backend while batches flow: everything acknowledged is stored exactly once",
          .timeLimit(.minutes(5)), arguments: TestStore.available)
    func killDashNineDuringIngest(_ store: TestStore) async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-backend-kill-\(UUID().uuidString)").path
        let queue = dir + "-queue"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: queue)
        }
        let clickHouse = store.clickHouseConfiguration(prefix: "evalforge_kill_")
        let backendPort = TestProcesses.freeLoopbackPort()
        let backend = RunningBackend(try Self.startBackend(port: backendPort, dir: dir, clickHouse: clickHouse))
        defer { backend.kill(SIGKILL) }
        try #require(await TestProcesses.waitHealthy(backendPort), "the backend did not start")

        var c = CollectorConfiguration.default
        c.port = 0
        c.queueDirectory = queue
        c.backendURL = "http://127.0.0.1:\(backendPort)"
        c.apiKey = TestBackend.apiKey
        c.authMode = .open  // the SDK sends no key (loopback)
        c.collectorID = "backend-kill-test"
        c.flushInterval = .milliseconds(20)
        c.maxBatchSpans = 40
        c.initialBackoff = .milliseconds(50)
        c.maxBackoff = .milliseconds(300)
        c.forwardTimeout = .seconds(10)
        c.shutdownTimeout = .seconds(1)
        c.sampling.rootGrace = .milliseconds(20)
        let (collector, pipeline) = try CollectorApp.build(configuration: c)
        let acked = AckedSpans()
        try await collector.test(.live) { client in
            let collectorPort = try #require(client.port)
            let stop = Flag()
            // One sender: a request of 10 spans (one trace) at a time, each recorded once the
            // collector acknowledged it.
            let load = Task {
                var n = 0
                while !stop.isSet {
                    let trace = OTLPFixtures.traceID()
                    let spans = (0..<10).map { j in OTLPFixtures.legacySpan(trace: trace, id: UInt64(n * 100 + j + 1), model: "gpt-4o-mini", input: 100 + j) }
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(collectorPort)/v1/traces")
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/x-protobuf")
                    request.body = .bytes(ByteBuffer(bytes: try OTLPFixtures.request(spans).serializedBytes() as [UInt8]))
                    let r = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                    _ = try await r.body.collect(upTo: 1 << 20)
                    if r.status == .ok {
                        acked.ids.withLock { a in for s in spans { a.insert(Hex.encode(bytes: s.traceID) + "/" + Hex.encode(bytes: s.spanID)) } }
                    }
                    n += 1
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            // Kill once batches are flowing, while they keep flowing.
            let flowing = ContinuousClock.now + .seconds(60)
            while pipeline.statistics.batchesForwarded < 5, ContinuousClock.now < flowing { try await Task.sleep(for: .milliseconds(20)) }
            #expect(pipeline.statistics.batchesForwarded >= 5, "nothing was forwarded before the kill")
            backend.kill(SIGKILL)
            let forwardedAtKill = pipeline.statistics.batchesForwarded
            try await Task.sleep(for: .milliseconds(500))
            backend.replace(try Self.startBackend(port: backendPort, dir: dir, clickHouse: clickHouse))
            try #require(await TestProcesses.waitHealthy(backendPort), "the backend did not restart")
            // More batches after the restart, then the queue drains.
            let resumed = ContinuousClock.now + .seconds(60)
            while pipeline.statistics.batchesForwarded < forwardedAtKill + 5, ContinuousClock.now < resumed { try await Task.sleep(for: .milliseconds(20)) }
            // Enough load to mean something however slow the machine is: at least 200 spans acknowledged.
            while acked.ids.withLock({ $0.count }) < 200, ContinuousClock.now < resumed + .seconds(60) { try await Task.sleep(for: .milliseconds(20)) }
            stop.set()
            try await load.value
            let drained = ContinuousClock.now + .seconds(60)
            while pipeline.statistics.queueDepthRecords > 0 || pipeline.statistics.pendingTraces > 0, ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(50)) }
            let s = pipeline.statistics
            #expect(s.queueDepthRecords == 0 && s.deadLetters == 0, "\(s)")
        }
        // A graceful stop closes the store first (the ClickHouse client was once dropped unclosed,
        // which traps in AsyncHTTPClient's deinit) and exits 0.
        let stopped = backend.kill(SIGTERM)
        #expect(stopped.reason == .exit && stopped.status == 0, "SIGTERM ended the backend with \(stopped.reason == .exit ? "exit status" : "signal") \(stopped.status)")

        // Count the stored spans by id, straight from the store.
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
        let all = acked.ids.withLock { $0 }
        let stored = Set(ids)
        #expect(all.count >= 200, "too little load to mean anything: \(all.count) spans acknowledged")
        #expect(all.isSubset(of: stored), "\(all.subtracting(stored).count) acknowledged spans missing")
        #expect(ids.count == stored.count, "\(ids.count - stored.count) spans stored twice")
        #expect(try await spanStore.countSpans(projectID: "default", fromUnixNanos: nil, toUnixNanos: nil) == stored.count)
        if let ch = spanStore as? ClickHouseStore { try? await ch.http.execute("DROP DATABASE IF EXISTS \(ch.db)") }
        await spanStore.shutdown()
    }
}

/// The span ids the collector acknowledged ("trace/span", lowercase hex).
final class AckedSpans: Sendable {
    let ids = Mutex<Set<String>>([])
}

/// The backend process of a test, replaced after a kill (shared with the collector's test closure).
final class RunningBackend: @unchecked Sendable {
    private let lock = NSLock()
    private var process: ChildProcess

    init(_ process: ChildProcess) { self.process = process }

    func replace(_ p: ChildProcess) { lock.withLock { process = p } }

    /// Sends `signal` when still running and waits for the exit; returns how the process ended.
    @discardableResult
    func kill(_ signal: Int32) -> (reason: ChildProcess.TerminationReason, status: Int32) {
        let p = lock.withLock { process }
        if p.isRunning { Foundation.kill(p.processIdentifier, signal) }
        p.waitUntilExit()
        return (p.terminationReason, p.terminationStatus)
    }
}
