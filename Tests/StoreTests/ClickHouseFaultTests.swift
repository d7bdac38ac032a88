@testable import EvalForgeStore
import EvalForgeModel
import Foundation
import TestProcesses
import Logging
import Testing

/// The real 18.16 server killed (SIGKILL) while batches are being inserted, then started again: inserts fail
/// with `unavailable` (never acknowledged) while it is down, and after it returns every batch, resent
/// the way the collector resends, is stored exactly once (span rows and rollup totals).
@Suite("ClickHouse faults")
struct ClickHouseFaultTests {
    static let port = 18143

    static func control(_ action: String) throws {
        guard let script = ClickHouseTestServers.control else { return }
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script, action, "fault", String(port)]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw StoreError.unavailable("legacy-server.sh \(action) failed with status \(p.terminationStatus)") }
    }

    @Test("server stopped and started during inserts: unavailable, then exactly once",
          .enabled(if: ClickHouseTestServers.control != nil, "EVALFORGE_TEST_CLICKHOUSE_CONTROL not set (scripts/test sets it to tests/clickhouse/legacy-server.sh)"))
    func stopAndStart() async throws {
        try Self.control("clean")
        try Self.control("start")
        defer { try? Self.control("clean") }
        let config = ClickHouseConfiguration(url: "http://127.0.0.1:\(Self.port)", database: "evalforge_fault", batchRows: 2_000, flushIntervalMilliseconds: 20,
                                             connectTimeoutMilliseconds: 300, maxAttempts: 2, retryBackoffMilliseconds: 50)
        let store = try await ClickHouseStore(configuration: config, logger: Logger(label: "test.fault"))
        try await store.migrate()
        let batches = (0..<40).map { i in StoreFixtures.batch(i * 5..<(i * 5 + 5), projectID: "p", batchID: "batch-\(i)") }

        // Phase 1: insert while the server is stopped part-way through.
        actor Outcomes {
            var acked = Set<Int>()
            var unavailable = 0
            var other: [String] = []
            func ack(_ i: Int) { acked.insert(i) }
            var failures: Int { unavailable + other.count }
            func fail(_ e: any Error) {
                if let s = e as? StoreError, s.isTransient { unavailable += 1 } else { other.append("\(e)") }
            }
        }
        let outcomes = Outcomes()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for (i, b) in batches.enumerated() {
                    do { _ = try await store.insert(b); await outcomes.ack(i) } catch { await outcomes.fail(error) }
                    // Like the collector: after a few refusals stop sending and wait for the server.
                    if await outcomes.failures >= 3 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(400))
                try Self.control("kill")   // SIGKILL: a crash, mid-insert
            }
            try await group.waitForAll()
        }
        let ackedWhileFaulty = await outcomes.acked
        let unavailable = await outcomes.unavailable
        let other = await outcomes.other
        #expect(unavailable > 0, "some inserts must fail while the server is down")
        #expect(other.isEmpty, "only unavailable errors expected: \(other)")
        #expect(ackedWhileFaulty.count < batches.count)
        // While down: a new insert is refused as unavailable, quickly.
        let started = ContinuousClock.now
        await #expect(throws: StoreError.self) { _ = try await store.insert(batches[0]) }
        #expect(ContinuousClock.now - started < .seconds(10))

        // Phase 2: the server returns; the collector resends everything it holds (acked ones too, as
        // a crash-before-ack would): nothing is doubled.
        try Self.control("start")
        for (i, b) in batches.enumerated() {
            var attempt = 0
            while true {
                do {
                    let outcome = try await store.insert(b)
                    if ackedWhileFaulty.contains(i) { #expect(outcome == .duplicate, "acked batch \(i) stored twice") }
                    break
                } catch let e as StoreError where e.isTransient && attempt < 50 {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        let spans = batches.flatMap(\.spans)
        let rows = try await ClickHouseTestServers.count(store, "SELECT count() FROM evalforge_fault.spans FINAL WHERE project_id = 'p'")
        #expect(rows == UInt64(spans.count))
        let m = try await store.metrics(MetricsQuery(projectID: "p", fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 86_400, intervalSeconds: 86_400))
        #expect(m.reduce(0) { $0 + $1.value.requests } == UInt64(spans.filter(\.isLLMCall).count))
        #expect(m.reduce(0) { $0 + $1.value.inputTokens } == UInt64(spans.reduce(0) { $0 + $1.inputTokens }))
        let traces = try await StoreConformance.allPages(store, TraceFilter(projectID: "p"), sort: .startAsc, limit: 1000)
        #expect(traces.count == 200)
        #expect(traces.allSatisfy { $0.spanCount == 4 })
        await store.shutdown()
    }
}
