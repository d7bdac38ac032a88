import Backend
import Collector
import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
@testable import EvalForgeStore
import Foundation
import TestProcesses
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing

/// Issue 4 end to end: a collector forwarding over loopback HTTP to a backend whose store is a real
/// ClickHouse 18.16, and that server taken down part-way through the stream (killed, or stopped
/// with SIGTERM). While it is down the backend answers 503 (with Retry-After) and acknowledges
/// nothing, so batches wait in the collector's queue while the collector keeps accepting spans;
/// when the server is started again every span arrives exactly once and the rollups are exact.
///
/// The server is a private instance (tests/clickhouse/legacy-server.sh, name `backend-outage`, HTTP
/// port 18153) so stopping it disturbs no other test; it is removed at the end, on failure too.
@Suite("Backend during a ClickHouse outage")
struct ClickHouseOutageTests {
    static let controlVariable = "EVALFORGE_TEST_CLICKHOUSE_CONTROL"
    static var controlScript: String? { ProcessInfo.processInfo.environment[controlVariable].flatMap { $0.isEmpty ? nil : $0 } }
    static let serverName = "backend-outage"
    static let port = 18153
    static let spansPerRequest = 10

    /// Runs `legacy-server.sh action backend-outage 18153`.
    static func control(_ action: String) throws {
        let script = try #require(controlScript)
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script, action, serverName, String(port)]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw StoreError.unavailable("legacy-server.sh \(action) failed with status \(p.terminationStatus)") }
    }

    /// Request `n`: one trace of `spansPerRequest` LLM spans with ids unique across requests; every
    /// 4th span an error.
    static func request(_ n: Int) throws -> ByteBuffer {
        let trace = OTLPFixtures.traceID()
        let spans = (0..<spansPerRequest).map { j in
            OTLPFixtures.legacySpan(trace: trace, id: UInt64(spanNumber(n, j)), model: j % 2 == 0 ? "gpt-4o-mini" : "claude-sonnet-4-5", input: 1000 + j, error: isError(n, j))
        }
        return ByteBuffer(bytes: try OTLPFixtures.request(spans).serializedBytes() as [UInt8])
    }

    static func spanNumber(_ request: Int, _ j: Int) -> Int { request * 100 + j + 1 }
    static func isError(_ request: Int, _ j: Int) -> Bool { spanNumber(request, j) % 4 == 0 }

    static let otlp: HTTPFields = [.contentType: "application/x-protobuf"]

    /// How the server goes down.
    enum Outage: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// SIGKILL: gone at once, inserts cut mid-way (acknowledgements can be lost).
        case kill
        /// SIGTERM, waiting for the exit. Under a steady stream 18.16 keeps serving its open
        /// keep-alive connections until the script's 30 s grace runs out and it sends SIGKILL.
        case stop

        var testDescription: String { self == .kill ? "killed (SIGKILL)" : "stopped (SIGTERM)" }
    }

    @Test("ClickHouse down mid-stream: backend answers 503, collector queues, everything arrives exactly once after the restart",
          .enabled(if: controlScript != nil, "\(controlVariable) not set (scripts/test sets it to tests/clickhouse/legacy-server.sh)"),
          .timeLimit(.minutes(3)), .serialized, arguments: Outage.allCases)
    func outageDuringForwarding(_ outage: Outage) async throws {
        try Self.control("clean")
        try Self.control("start")
        defer { try? Self.control("clean") }

        var config = TestBackend.configuration()
        config.clickHouse = ClickHouseConfiguration(url: "http://127.0.0.1:\(Self.port)", database: "evalforge_outage", batchRows: 1, flushIntervalMilliseconds: 10,
                                                    timeoutSeconds: 5, connectTimeoutMilliseconds: 300, maxAttempts: 2, retryBackoffMilliseconds: 50)
        let (backend, services) = try await BackendApp.build(configuration: config, logger: TestBackend.logger, closesStoreAtShutdown: false)
        TestStore.clickHouseLegacy.expectIsStore(services.store)
        let queue = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-outage-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: queue) }

        let requestsSent = try await backend.test(.live) { backendClient -> Int in
            let backendPort = try #require(backendClient.port)
            var c = CollectorConfiguration.default
            c.port = 0
            c.queueDirectory = queue
            c.backendURL = "http://127.0.0.1:\(backendPort)"
            c.apiKey = TestBackend.apiKey
            c.authMode = .open  // the SDK sends no key (loopback)
            c.collectorID = "outage-test"
            c.flushInterval = .milliseconds(100)
            c.maxBatchSpans = 40
            c.initialBackoff = .milliseconds(50)
            c.maxBackoff = .milliseconds(500)
            c.forwardTimeout = .seconds(10)
            c.shutdownTimeout = .seconds(1)
            c.sampling.rootGrace = .milliseconds(20)
            let (collector, pipeline) = try CollectorApp.build(configuration: c)
            return try await collector.test(.live) { collectorClient -> Int in
                var sent = 0
                func send(_ count: Int, pause: Duration = .milliseconds(30)) async throws {
                    for _ in 0..<count {
                        let r = try await collectorClient.execute(uri: "/v1/traces", method: .post, headers: Self.otlp, body: try Self.request(sent))
                        #expect(r.status == .ok, "the collector must accept (and queue) request \(sent) whatever the backend's state")
                        sent += 1
                        try await Task.sleep(for: pause)
                    }
                }

                // Flowing: the first batches are stored and acknowledged.
                try await send(10)
                let flowing = ContinuousClock.now + .seconds(20)
                while pipeline.statistics.batchesForwarded == 0, ContinuousClock.now < flowing { try await Task.sleep(for: .milliseconds(50)) }
                #expect(pipeline.statistics.batchesForwarded > 0, "nothing was forwarded while ClickHouse was up")

                // Take the server down while spans keep coming.
                let down = Flag()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        defer { down.set() }
                        try await Task.sleep(for: .milliseconds(500))
                        try Self.control(outage.rawValue)
                    }
                    while !down.isSet { try await send(1, pause: .milliseconds(200)) }
                    try await group.waitForAll()
                }

                // Down: the backend answers 503 with Retry-After, and acknowledges nothing.
                try await send(5)
                var probe = Evalforge_V1_ForwardBatch()
                probe.batchID = "outage-probe"
                probe.collectorID = "probe"
                probe.resourceSpans = OTLPFixtures.request([OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 99_999)]).resourceSpans
                let probeBody = ByteBuffer(bytes: try Gzip.compress(probe.serializedBytes()))
                var probeHeaders = IngestTests.auth
                probeHeaders[.contentEncoding] = "gzip"
                let refused = try await backendClient.execute(uri: "/v1/batches", method: .post, headers: probeHeaders, body: probeBody)
                #expect(refused.status == .serviceUnavailable, "backend answered \(refused.status) while ClickHouse was down: \(String(buffer: refused.body))")
                #expect(refused.headers[.retryAfter] != nil)
                let down1 = pipeline.statistics
                #expect(down1.queueDepthRecords > 0)
                #expect(down1.forwardFailures > 0, "the collector never saw a refusal")
                try await send(10, pause: .milliseconds(100))
                let down2 = pipeline.statistics
                #expect(down2.queueDepthRecords == down1.queueDepthRecords + 10, "queue depth must grow by every request while nothing is acknowledged")
                #expect(down2.batchesForwarded == down1.batchesForwarded, "a batch was acknowledged while ClickHouse was down")
                #expect(down2.spansReceived == sent * Self.spansPerRequest)

                // Back up: the queue drains and the probe batch, resent, is taken.
                try Self.control("start")
                let drained = ContinuousClock.now + .seconds(60)
                while pipeline.statistics.queueDepthRecords > 0, ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(100)) }
                let after = pipeline.statistics
                #expect(after.queueDepthRecords == 0, "the collector's queue did not drain after ClickHouse returned: \(after)")
                #expect(after.batchesForwarded > down2.batchesForwarded)
                #expect(after.spansForwarded == sent * Self.spansPerRequest)
                #expect(!FileManager.default.fileExists(atPath: queue + "/outbox/rejected"), "the backend rejected batches for good during the outage")
                let resent = try await backendClient.execute(uri: "/v1/batches", method: .post, headers: probeHeaders, body: probeBody)
                #expect(resent.status == .ok)
                return sent
            }
        }

        // Exactly once: every span sent is listed once, and the rollups count each once.
        var ids: [String] = []
        var cursor: String?
        repeat {
            let page = try await services.store.listSpans(SpanFilter(trace: TraceFilter(projectID: "default")), limit: 1000, cursor: cursor)
            ids += page.items.map { $0.traceID + "/" + $0.spanID }
            cursor = page.nextCursor
        } while cursor != nil
        let sentSpans = requestsSent * Self.spansPerRequest + 1  // and the probe's span
        #expect(ids.count == sentSpans, "\(ids.count) spans stored, \(sentSpans) sent")
        #expect(Set(ids).count == ids.count, "a span is listed twice")
        #expect(try await services.store.countSpans(projectID: "default", fromUnixNanos: nil, toUnixNanos: nil) == sentSpans)
        let m = try await services.store.metrics(MetricsQuery(projectID: "default", fromUnix: 1_767_225_600 - 60, toUnix: 1_767_225_600 + 3600, intervalSeconds: 3600))
        let llmSpans = requestsSent * Self.spansPerRequest  // the probe carried no rollups
        let spans = (0..<requestsSent).flatMap { r in (0..<Self.spansPerRequest).map { (request: r, j: $0) } }
        let errorSpans = spans.filter { Self.isError($0.request, $0.j) }.count
        let inputTokens = spans.reduce(0) { $0 + 1000 + $1.j }
        #expect(m.reduce(0) { $0 + $1.value.requests } == UInt64(llmSpans))
        #expect(m.reduce(0) { $0 + $1.value.errors } == UInt64(errorSpans))
        #expect(m.reduce(0) { $0 + $1.value.inputTokens } == UInt64(inputTokens))
        #expect(m.reduce(0) { $0 + $1.value.outputTokens } == UInt64(llmSpans * 200))
        // The private server and its data go with `clean`.
        await services.store.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDirectory)
    }
}

/// A flag one task sets and another polls.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
