@testable import EvalForgeStore
import EvalForgeModel
import Foundation
import Testing

/// `repairTraceSummaries`: traces whose `trace_summary` rows were lost (in production: a cluster
/// replica killed between the spans block and the view's block, the retry deduplicated) get their
/// row back from their spans once the settle delay has passed, and the trace list shows them again.
@Suite("ClickHouse trace_summary repair")
struct ClickHouseSummaryRepairTests {
    typealias Servers = ClickHouseTestServers

    @Test("traces without a summary row are restored in the list after the settle delay, once", arguments: ClickHouseTestServers.Server.allCases)
    func repairRestoresMissingSummaries(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        let p = "repair"
        // Three recent traces (the repair looks at the last 2 days): trace 1 in two batches (two
        // summary rows), trace 2 with a span 26 hours earlier (yesterday and today); trace 3 from
        // months ago, outside the window.
        let now = Int64(Date().timeIntervalSince1970)
        func recent(_ i: Int) -> [SpanRow] {
            StoreFixtures.spans(trace: i, projectID: p).map { s in
                var s = s
                s.startUnixNanos += (now - 600 - StoreFixtures.baseUnix) * 1_000_000_000
                return s
            }
        }
        var t2 = recent(2)
        t2[3].startUnixNanos -= 26 * 3600 * 1_000_000_000
        let t1 = recent(1)
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "a", spans: recent(0) + Array(t1[0..<2]) + t2, rollups: [])) == .stored)
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "b", spans: Array(t1[2...]), rollups: [])) == .stored)
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "old", spans: StoreFixtures.spans(trace: 3, projectID: p), rollups: [])) == .stored)
        func list() async throws -> [TraceSummary] {
            try await store.listTraces(TraceFilter(projectID: p), sort: .startDesc, limit: 50, cursor: nil).items.sorted { $0.traceID < $1.traceID }
        }
        let before = try await list()
        #expect(before.map(\.traceID) == (0...3).map(StoreFixtures.traceID))
        // Nothing missing: a pass finds nothing.
        #expect(try await store.repairTraceSummaries(settle: .zero) == TraceSummaryRepairReport())

        // The lost view blocks: every summary row gone, spans and trace_index kept.
        try await store.http.execute("TRUNCATE TABLE \(store.db).trace_summary")
        #expect(try await list().isEmpty)
        let t0 = ContinuousClock.now
        // First seen missing: left to settle (an insert may still be in flight).
        #expect(try await store.repairTraceSummaries(settle: .seconds(60), now: t0) == TraceSummaryRepairReport(missing: 3, settling: 3))
        #expect(try await store.repairTraceSummaries(settle: .seconds(60), now: t0 + .seconds(30)) == TraceSummaryRepairReport(missing: 3, settling: 3))
        #expect(try await list().isEmpty)
        // Missing for the settle delay: repaired from spans, each trace's row exact (one row per trace).
        #expect(try await store.repairTraceSummaries(settle: .seconds(60), now: t0 + .seconds(61)) == TraceSummaryRepairReport(missing: 3, repaired: 3))
        let after = try await list()
        #expect(after == before.filter { $0.traceID != StoreFixtures.traceID(3) })
        #expect(try await Servers.count(store, "SELECT count() FROM \(store.db).trace_summary") == 3)
        // A second pass adds nothing.
        #expect(try await store.repairTraceSummaries(settle: .zero) == TraceSummaryRepairReport())
        #expect(try await Servers.count(store, "SELECT count() FROM \(store.db).trace_summary") == 3)
        // A trace that lost its row and came back before the delay is forgotten, not repaired.
        try await store.http.execute("TRUNCATE TABLE \(store.db).trace_summary")
        #expect(try await store.repairTraceSummaries(settle: .seconds(60), now: t0 + .seconds(100)) == TraceSummaryRepairReport(missing: 3, settling: 3))
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "c", spans: recent(0) + t1 + t2, rollups: [])) == .stored)
        #expect(try await store.repairTraceSummaries(settle: .seconds(60), now: t0 + .seconds(200)) == TraceSummaryRepairReport())
        #expect(try await list() == after)
        await Servers.drop(store)
    }
}
