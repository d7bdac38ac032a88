@testable import EvalForgeStore
import EvalForgeModel
import Foundation
import Logging
import Testing

/// The ClickHouse store against real servers: Debian's clickhouse-server 18.16 (legacy schema) and a
/// current engine (chdb 26.x behind tests/clickhouse/chdb_http.py, modern schema). scripts/test starts
/// both and sets the variables; a bare `swift test` without them skips these tests with that reason.
enum ClickHouseTestServers {
    static let legacyVariable = "EVALFORGE_TEST_CLICKHOUSE_LEGACY_URL"
    static let modernVariable = "EVALFORGE_TEST_CLICKHOUSE_URL"
    /// Path of tests/clickhouse/legacy-server.sh, for the fault test's private server.
    static let controlVariable = "EVALFORGE_TEST_CLICKHOUSE_CONTROL"

    static var legacyURL: String? { ProcessInfo.processInfo.environment[legacyVariable].flatMap { $0.isEmpty ? nil : $0 } }
    static var modernURL: String? { ProcessInfo.processInfo.environment[modernVariable].flatMap { $0.isEmpty ? nil : $0 } }
    static var control: String? { ProcessInfo.processInfo.environment[controlVariable].flatMap { $0.isEmpty ? nil : $0 } }

    enum Server: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case legacy, modern
        var url: String? { self == .legacy ? ClickHouseTestServers.legacyURL : ClickHouseTestServers.modernURL }
        var testDescription: String { self == .legacy ? "ClickHouse 18.16" : "chdb (current ClickHouse)" }
    }

    /// A store on a fresh database of `server`, migrated; the database is dropped by `drop`.
    static func makeStore(_ server: Server, batchRows: Int = 10_000, flushMs: Int = 1_000, maxAttempts: Int = 4) async throws -> ClickHouseStore {
        let url = try #require(server.url, "\(server == .legacy ? legacyVariable : modernVariable) is not set")
        let db = "evalforge_test_\(UInt32.random(in: 0...UInt32.max))"
        let config = ClickHouseConfiguration(url: url, database: db, batchRows: batchRows, flushIntervalMilliseconds: flushMs, maxAttempts: maxAttempts, retryBackoffMilliseconds: 50)
        let store = try await ClickHouseStore(configuration: config, logger: Logger(label: "test.clickhouse"))
        try await store.migrate()
        return store
    }

    static func drop(_ store: ClickHouseStore) async {
        try? await store.http.execute("DROP DATABASE IF EXISTS \(store.db)")
        await store.shutdown()
    }

    static func count(_ store: ClickHouseStore, _ sql: String) async throws -> UInt64 {
        var r = try await store.http.query(sql)
        return try r.uint64()
    }
}

@Suite("ClickHouse store")
struct ClickHouseStoreTests {
    typealias Servers = ClickHouseTestServers

    @Test("conformance on ClickHouse 18.16", .enabled(if: Servers.legacyURL != nil, "EVALFORGE_TEST_CLICKHOUSE_LEGACY_URL not set (scripts/test starts tests/clickhouse/legacy-server.sh and sets it)"))
    func conformanceLegacy() async throws {
        let store = try await Servers.makeStore(.legacy)
        #expect(store.description.hasPrefix("clickhouse 18.16"))
        #expect(store.description.hasSuffix("(legacy schema)"))
        #expect(!store.usesModernSchema)
        try await StoreConformance.runAll(store)
        // Sequential inserts and queries: the multi-row check alone must have kept the lists exact.
        #expect(store.traceListRestarts.withLock { $0 } == 0)
        await Servers.drop(store)
    }

    @Test("conformance on a current ClickHouse (chdb)", .enabled(if: Servers.modernURL != nil, "EVALFORGE_TEST_CLICKHOUSE_URL not set (scripts/test starts tests/clickhouse/chdb-server.sh and sets it)"))
    func conformanceModern() async throws {
        let store = try await Servers.makeStore(.modern)
        #expect(store.usesModernSchema)
        #expect(store.description.hasSuffix("(modern schema)"))
        try await StoreConformance.runAll(store)
        // Sequential inserts and queries: the multi-row check alone must have kept the lists exact.
        #expect(store.traceListRestarts.withLock { $0 } == 0)
        await Servers.drop(store)
    }

    static let hostile = [
        "x' OR '1'='1", "'; DROP TABLE spans; --", "back\\slash", "\\'", "tab\there", "new\nline", "cr\rlf", "nul\u{0}byte",
        "bell\u{07}", "del\u{7F}", "{p0:String}", "%_\\'", "unicode ✓ 日本 🚀", "'", "\\", "", "?", "$1", "`x`", "\"q\"", "a\u{1F}b",
    ]

    @Test("hostile strings come back unchanged as literals and parameters", arguments: ClickHouseTestServers.Server.allCases)
    func escaping(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        for s in Self.hostile {
            var r = try await store.http.query("SELECT \(ClickHouseSQL.quote(s))")
            #expect(try r.string() == s, "literal \(s.debugDescription)")
            if store.usesModernSchema {
                var v = SQLValues(useParameters: true)
                let placeholder = v.string(s)
                var p = try await store.http.query("SELECT \(placeholder)", parameters: v.parameters)
                #expect(try p.string() == s, "parameter \(s.debugDescription)")
            }
            var a = try await store.http.query("SELECT arrayJoin(\(SQLValues(useParameters: false).stringArray([s, "x"])))")
            #expect(try a.string() == s)
            let set = SQLValues(useParameters: false).inList("v", [s, "y"])
            var b = try await store.http.query("SELECT toUInt64(count()) FROM (SELECT arrayJoin(\(SQLValues(useParameters: false).stringArray([s, "x"]))) AS v) WHERE \(set)")
            #expect(try b.uint64() == (s == "x" ? 2 : 1), "IN list \(s.debugDescription)")
        }
        // Hostile values as filters and ids: stored and found as data, nothing else matches.
        let p = StoreFixtures.uniqueProject("hostile")
        var spans = StoreFixtures.spans(trace: 0, projectID: p)
        for (i, h) in Self.hostile.enumerated() where i < spans.count { spans[i].userID = h; spans[i].sessionID = h }
        spans[0].input = Self.hostile.joined(separator: "|")
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: Self.hostile[1], spans: spans, rollups: [])) == .stored)
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: Self.hostile[1], spans: spans, rollups: [])) == .duplicate)
        let got = try await store.trace(projectID: p, traceID: StoreFixtures.traceID(0))
        #expect(got.map(\.userID).sorted() == spans.map(\.userID).sorted())
        #expect(got.first { $0.spanID == spans[0].spanID }?.input == spans[0].input)
        let byUser = try await store.listSpans(SpanFilter(trace: TraceFilter(projectID: p, userID: Self.hostile[0])), limit: 100, cursor: nil)
        #expect(byUser.items.map(\.spanID) == [spans[0].spanID])
        let byText = try await store.listTraces(TraceFilter(projectID: p, text: "%_\\'"), sort: .startDesc, limit: 10, cursor: nil)
        #expect(byText.items.count == 1)
        #expect(try await store.listTraces(TraceFilter(projectID: p, text: "_%_"), sort: .startDesc, limit: 10, cursor: nil).items.isEmpty)
        // Costs no conversion can take (NaN, infinities, beyond Int64 picodollars) neither fail the
        // insert (the trace_summary view converts them) nor the list.
        var odd = StoreFixtures.spans(trace: 1, projectID: p)
        odd[1].costUSD = .nan
        odd[2].costUSD = .infinity
        odd[3].costUSD = 1e30
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "odd-costs", spans: odd, rollups: [])) == .stored)
        let listed = try await store.listTraces(TraceFilter(projectID: p), sort: .costDesc, limit: 10, cursor: nil)
        #expect(listed.items.map(\.traceID).sorted() == [StoreFixtures.traceID(0), StoreFixtures.traceID(1)])
        await Servers.drop(store)
    }

    /// ClickHouse's `sum` of Int64 wraps. A trace of 100 spans at the $100,000-per-span ingest bound
    /// is 1e19 picodollars, past Int64.max (9.22e18): the trace list showed a negative cost, and a
    /// user's total over two traces of 60 such spans too. The sums now saturate at 9.2e18 ($9.2M).
    @Test("cost sums saturate instead of wrapping negative", arguments: ClickHouseTestServers.Server.allCases)
    func costSumsSaturate(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        let p = "costly"
        func trace(_ i: Int, spans n: Int) -> [SpanRow] {
            (0..<n).map { j in
                SpanRow(projectID: p, traceID: StoreFixtures.traceID(i), spanID: StoreFixtures.spanID(i, j), parentSpanID: j == 0 ? "" : StoreFixtures.spanID(i, 0),
                        startUnixNanos: (StoreFixtures.baseUnix + Int64(i * 60 + j)) * 1_000_000_000, durationNanos: 1_000_000, service: "svc", name: "chat",
                        kind: .client, provider: "openai", model: "gpt-4o", costUSD: 100_000, userID: "whale", sessionID: "s\(i)")
            }
        }
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "one-trace", spans: trace(0, spans: 100), rollups: [])) == .stored)
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "two-a", spans: trace(1, spans: 60), rollups: [])) == .stored)
        #expect(try await store.insert(StoreBatch(projectID: p, batchID: "two-b", spans: trace(2, spans: 60), rollups: [])) == .stored)
        let listed = try await store.listTraces(TraceFilter(projectID: p), sort: .costDesc, limit: 10, cursor: nil).items
        #expect(listed.count == 3)
        let big = try #require(listed.first { $0.traceID == StoreFixtures.traceID(0) })
        #expect(big.costUSD >= 9_000_000 && big.costUSD <= 10_000_000, "saturated, not wrapped: \(big.costUSD)")
        #expect(listed.allSatisfy { $0.costUSD >= 5_999_999 }, "\(listed.map(\.costUSD))")
        let users = try await store.listUsers(SessionFilter(projectID: p), limit: 10, cursor: nil).items
        #expect(users.count == 1)
        #expect((users.first?.costUSD ?? -1) >= 9_000_000, "a user's total saturates: \(users.map(\.costUSD))")
        await Servers.drop(store)
    }

    @Test("migrations are recorded once and data survives reopening", arguments: ClickHouseTestServers.Server.allCases)
    func migrations(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        try await store.migrate()
        #expect(try await store.appliedMigrations() == [1, 2, 3, 4])
        _ = try await store.insert(StoreFixtures.batch(0..<3, projectID: "p", batchID: "b"))
        let again = try await ClickHouseStore(configuration: store.configuration, logger: Logger(label: "test"))
        try await again.migrate()
        #expect(try await again.appliedMigrations() == [1, 2, 3, 4])
        #expect(try await again.insert(StoreFixtures.batch(0..<3, projectID: "p", batchID: "b")) == .duplicate)
        #expect(try await again.trace(projectID: "p", traceID: StoreFixtures.traceID(2)).count == 4)
        let ddl = try await store.http.query("SELECT create_table_query FROM system.tables WHERE database = \(ClickHouseSQL.quote(store.db)) AND name = 'spans'")
        var r = ddl
        let create = try r.string()
        if store.usesModernSchema {
            for feature in ["DateTime64(9", "LowCardinality(String)", "ZSTD", "Delta", "TTL", "ngrambf_v1", "minmax", "Map(String, String)"] {
                #expect(create.contains(feature), "modern spans table lacks \(feature)")
            }
        } else {
            #expect(create.contains("start_nanos UInt32") && !create.contains("CODEC"))
        }
        await again.shutdown()
        await Servers.drop(store)
    }

    @Test("retention deletes only a project's old data", arguments: ClickHouseTestServers.Server.allCases)
    func retention(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        _ = try await store.insert(StoreFixtures.batch(0..<10, projectID: "p", batchID: "b"))
        _ = try await store.insert(StoreFixtures.batch(0..<10, projectID: "q", batchID: "b"))
        let cutoff = (StoreFixtures.baseUnix + 5 * 60) * 1_000_000_000
        let deleted = try await store.deleteExpired(projectID: "p", beforeUnixNanos: cutoff)
        #expect(deleted > 0)
        let left = try await StoreConformance.allPages(store, TraceFilter(projectID: "p"), sort: .startAsc, limit: 100)
        #expect(left.map(\.traceID) == (5..<10).map(StoreFixtures.traceID))
        #expect(try await StoreConformance.allPages(store, TraceFilter(projectID: "q"), sort: .startAsc, limit: 100).count == 10)
        let m = try await store.metrics(MetricsQuery(projectID: "p", fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 3600, intervalSeconds: 3600))
        #expect(m.reduce(0) { $0 + $1.value.requests } == 10)
        await Servers.drop(store)
    }

    @Test("retention of several projects: whole partitions dropped, shared ones deleted from, kept days unchanged", arguments: ClickHouseTestServers.Server.allCases)
    func retentionConformance(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        func partitions(_ table: String) async throws -> Set<String> {
            var r = try await store.http.query("SELECT DISTINCT partition FROM system.parts WHERE database = \(ClickHouseSQL.quote(store.db)) AND table = \(ClickHouseSQL.quote(table)) AND active")
            var out = Set<String>()
            while !r.isAtEnd { out.insert(try r.string()) }
            return out
        }
        // 2025-08 holds only p's rows (dropped whole), 2025-10 p's and q's (p's deleted), 2025-12 kept.
        try await RetentionConformance.run(store)
        // 2025-08 of spans, rollups, trace_index and trace_summary, and nothing else.
        #expect(store.retentionPartitionDrops.withLock { $0 } == 4)
        for table in ["spans", "rollups", "trace_index", "trace_summary"] {
            let left = try await partitions(table)
            #expect(!left.contains("202508"), "\(table): the partition of p alone was dropped: \(left)")
            #expect(left.contains("202510") && left.contains("202512"), "\(table): shared and recent partitions stay: \(left)")
        }
        #expect(try await Servers.count(store, "SELECT count() FROM \(store.db).spans FINAL WHERE project_id = 'q' AND toYYYYMM(start) = 202510") == 12)
        #expect(try await Servers.count(store, "SELECT count() FROM \(store.db).trace_index WHERE project_id = 'p' AND day < '2025-12-01'") == 0)
        #expect(try await Servers.count(store, "SELECT count() FROM \(store.db).rollups WHERE project_id = 'p' AND minute < toDateTime('2025-12-01 00:00:00')") == 0)
        await Servers.drop(store)
    }

    @Test("retention with a project kept forever drops no partition, and deletes only the expiring project's rows", arguments: ClickHouseTestServers.Server.allCases)
    func retentionWithoutDrops(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        let old = RetentionConformance.spans(0, project: "p", at: RetentionConformance.monthA)
        #expect(try await store.insert(RetentionConformance.batch(old, project: "p", id: "b")) == .stored)
        // Not every project expires data (everyProject: false): the month is deleted from, not dropped.
        #expect(try await store.deleteExpired(["p": RetentionConformance.cutoffNanos], everyProject: false) > 0)
        #expect(store.retentionPartitionDrops.withLock { $0 } == 0)
        #expect(try await store.countSpans(projectID: "p", fromUnixNanos: nil, toUnixNanos: nil) == 0)
        #expect(try await store.metrics(MetricsQuery(projectID: "p", fromUnix: RetentionConformance.monthA, toUnix: RetentionConformance.monthA + 86_400, intervalSeconds: 3600)).reduce(0) { $0 + $1.value.requests } == 0)
        await Servers.drop(store)
    }

    @Test("merged rollup hours follow new batches, duplicate copies and retention", arguments: ClickHouseTestServers.Server.allCases)
    func mergedHours(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server)
        let base = StoreFixtures.baseUnix
        // Two hours and a half: whole hours come from the merged-hour cache, the rest is read raw.
        let q = MetricsQuery(projectID: "p", fromUnix: base, toUnix: base + 9_000, intervalSeconds: 3600, groupBy: .model)
        func requests(_ q: MetricsQuery) async throws -> UInt64 { try await store.metrics(q).reduce(0) { $0 + $1.value.requests } }
        func llmCalls(_ b: StoreBatch) -> UInt64 { UInt64(b.spans.filter(\.isLLMCall).count) }
        let first = StoreFixtures.batch(0..<10, projectID: "p", batchID: "b1")
        _ = try await store.insert(first)
        let once = try await store.metrics(q)
        #expect(once.reduce(0) { $0 + $1.value.requests } == llmCalls(first))
        #expect(store.rollupHours.entry(project: "p", hour: base) != nil, "the hour was merged and kept")
        // Served from the cache: the same buckets.
        #expect(try await store.metrics(q) == once)
        // A new batch in the cached hour changes its row count: merged again.
        let second = StoreFixtures.batch(10..<20, projectID: "p", batchID: "b2")
        _ = try await store.insert(second)
        #expect(try await requests(q) == llmCalls(first) + llmCalls(second))
        // A range starting mid-hour: both partial hours are read raw (two queries).
        let edges = MetricsQuery(projectID: "p", fromUnix: base + 300, toUnix: base + 9_000, intervalSeconds: 3600)
        let late = (first.spans + second.spans).filter { $0.isLLMCall && $0.startUnixNanos >= (base + 300) * 1_000_000_000 }
        #expect(!late.isEmpty && late.count < (first.spans + second.spans).filter(\.isLLMCall).count)
        #expect(try await requests(edges) == UInt64(late.count))
        // Duplicate copies of a batch's rollups (a resend whose first attempt arrived) change the hour's
        // row count, so it is merged again with FINAL: still counted once.
        try await store.http.execute("INSERT INTO \(store.db).rollups SELECT * FROM \(store.db).rollups WHERE project_id = 'p' AND batch_id = 'b1'")
        #expect(try await requests(q) == llmCalls(first) + llmCalls(second))
        #expect(try await requests(q) == llmCalls(first) + llmCalls(second))
        // Filters and groupings of a cached hour are applied in the store.
        let gpt = MetricsQuery(projectID: "p", fromUnix: base, toUnix: base + 7_200, intervalSeconds: 7_200, groupBy: .provider, model: "gpt-4o")
        let all = (first.spans + second.spans).filter { $0.isLLMCall && $0.model == "gpt-4o" }
        #expect(try await requests(gpt) == UInt64(all.count))
        // Retention forgets the project's merged hours.
        _ = try await store.deleteExpired(projectID: "p", beforeUnixNanos: (base + 86_400) * 1_000_000_000)
        #expect(store.rollupHours.entry(project: "p", hour: base) == nil)
        #expect(try await requests(q) == 0)
        await Servers.drop(store)
    }

    @Test("concurrent inserts are grouped and each is stored once", arguments: ClickHouseTestServers.Server.allCases)
    func concurrentInserts(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await Servers.makeStore(server, batchRows: 200, flushMs: 50)
        try await withThrowingTaskGroup(of: InsertOutcome.self) { group in
            for i in 0..<16 {
                group.addTask { try await store.insert(StoreFixtures.batch(i * 5..<(i * 5 + 5), projectID: "p", batchID: "b\(i)")) }
                group.addTask { try await store.insert(StoreFixtures.batch(i * 5..<(i * 5 + 5), projectID: "p", batchID: "b\(i)")) }
            }
            for try await _ in group {}
        }
        #expect(try await Servers.count(store, "SELECT count() FROM \(store.db).spans FINAL WHERE project_id = 'p'") == 80 * 4)
        let m = try await store.metrics(MetricsQuery(projectID: "p", fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 86_400, intervalSeconds: 86_400))
        #expect(m.reduce(0) { $0 + $1.value.requests } == 160)
        // Fewer server inserts than insert calls that wrote: the writer grouped them.
        let flushes = await store.writer.flushes
        #expect(flushes < 32, "\(flushes) flushes for up to 32 writes")
        await Servers.drop(store)
    }
}
