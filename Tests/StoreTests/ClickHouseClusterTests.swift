@testable import EvalForgeStore
import EvalForgeModel
import Foundation
import Logging
import Testing

/// Cluster mode (`--clickhouse-cluster`) on a real ClickHouse 18.16 cluster: 2 shards × 2 replicas
/// through ZooKeeper, as `scripts/cluster storage-up` starts it. scripts/test sets
/// EVALFORGE_TEST_CLICKHOUSE_CLUSTER_URLS (the four nodes' HTTP URLs, comma-separated) when that
/// script works; without it these tests skip with that reason.
enum ClickHouseTestCluster {
    static let urlsVariable = "EVALFORGE_TEST_CLICKHOUSE_CLUSTER_URLS"
    static let nameVariable = "EVALFORGE_TEST_CLICKHOUSE_CLUSTER_NAME"

    static var urls: [String] {
        (ProcessInfo.processInfo.environment[urlsVariable] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
    static var name: String { ProcessInfo.processInfo.environment[nameVariable].flatMap { $0.isEmpty ? nil : $0 } ?? "evalforge" }
    static let skipReason: Comment = "EVALFORGE_TEST_CLICKHOUSE_CLUSTER_URLS not set (scripts/test sets it when scripts/cluster storage-up starts ZooKeeper and 2×2 ClickHouse 18.16; scripts/setup --cluster installs them)"

    static func configuration(_ url: String, database: String) -> ClickHouseConfiguration {
        // ON CLUSTER statements wait for every node (up to 18.16's distributed_ddl_task_timeout,
        // 180 s): a loaded two-core CI machine ran a DELETE mutation past the 30 s default three times.
        ClickHouseConfiguration(url: url, database: database, batchRows: 10_000, flushIntervalMilliseconds: 200, timeoutSeconds: 180, maxAttempts: 4, retryBackoffMilliseconds: 50, cluster: name,
                                mutationCluster: mutationCluster)
    }

    /// Replica 1 of each shard (scripts/cluster's `evalforge_mutations`): where deletes run ON CLUSTER.
    static var mutationCluster: String {
        ProcessInfo.processInfo.environment["EVALFORGE_TEST_CLICKHOUSE_MUTATION_CLUSTER"].flatMap { $0.isEmpty ? nil : $0 } ?? "evalforge_mutations"
    }

    /// Runs `body` with a store on every node and shuts them all down however it ends: a store
    /// released without `shutdown()` traps in AsyncHTTPClient's deinit check and takes the whole
    /// test process with it.
    static func withNodes<T>(database db: String, _ body: ([Node]) async throws -> T) async throws -> T {
        let nodes = try await nodes(database: db)
        do {
            let result = try await body(nodes)
            for n in nodes { await n.store.shutdown() }
            return result
        } catch {
            for n in nodes { await n.store.shutdown() }
            throw error
        }
    }

    static func freshDatabase() -> String { "evalforge_cluster_\(UInt32.random(in: 0...UInt32.max))" }

    /// One node's HTTP interface, for looking at its local tables.
    struct Node {
        var url: String
        var shard: String
        var replica: String
        var store: ClickHouseStore

        func uint64(_ sql: String) async throws -> UInt64 {
            var r = try await store.http.query(sql)
            return try r.uint64()
        }

        func strings(_ sql: String) async throws -> [String] {
            var r = try await store.http.query(sql)
            var out: [String] = []
            while !r.isAtEnd { out.append(try r.string()) }
            return out
        }
    }

    /// A store on every node of the cluster (database `db`, not migrated), with each node's shard
    /// and replica from its macros.
    static func nodes(database db: String) async throws -> [Node] {
        var out: [Node] = []
        for url in urls {
            let store = try await ClickHouseStore(configuration: configuration(url, database: db), logger: Logger(label: "test.cluster"))
            var r = try await store.http.query("SELECT macro, substitution FROM system.macros")
            var macros: [String: String] = [:]
            while !r.isAtEnd { macros[try r.string()] = try r.string() }
            out.append(Node(url: url, shard: macros["shard"] ?? "?", replica: macros["replica"] ?? "?", store: store))
        }
        return out
    }

    static func drop(_ store: ClickHouseStore) async {
        try? await store.http.execute("DROP DATABASE IF EXISTS \(store.db) ON CLUSTER \(name)")
        await store.shutdown()
    }
}

@Suite("ClickHouse cluster mode", .serialized)
struct ClickHouseClusterTests {
    typealias Cluster = ClickHouseTestCluster

    /// Traces whose spans arrive in several batches (the summary table then has several rows per
    /// trace), with costs exact in binary floating point so every store sums them alike.
    static func batches(projectID p: String) -> [StoreBatch] {
        func spans(_ i: Int) -> [SpanRow] {
            var rows = StoreFixtures.spans(trace: i, projectID: p)
            for j in rows.indices where rows[j].costUSD != nil { rows[j].costUSD = Double((i * 7 + j * 3) % 11 + 1) / 1024 }
            return rows
        }
        var out: [StoreBatch] = []
        for b in 0..<4 {
            // Batch b: traces 10b..<10b+10 whole, plus the second half of the previous batch's last traces.
            var rows = (b * 10..<b * 10 + 10).flatMap { i in spans(i).filter { i % 10 < 7 || $0.spanID.hasSuffix("0") || $0.spanID.hasSuffix("1") } }
            if b > 0 { rows += ((b - 1) * 10 + 7..<b * 10).flatMap { i in spans(i).filter { !($0.spanID.hasSuffix("0") || $0.spanID.hasSuffix("1")) } } }
            out.append(StoreBatch(projectID: p, batchID: "batch-\(b)", spans: rows, rollups: StoreFixtures.rollups(rows)))
        }
        // The last batch's split traces get their remaining spans in a fifth batch.
        let rest = (37..<40).flatMap { i in spans(i).filter { !($0.spanID.hasSuffix("0") || $0.spanID.hasSuffix("1")) } }
        out.append(StoreBatch(projectID: p, batchID: "batch-4", spans: rest, rollups: StoreFixtures.rollups(rest)))
        return out
    }

    static func allTraces(_ store: any SpanStore, _ filter: TraceFilter, sort: TraceSort) async throws -> [TraceSummary] {
        var out: [TraceSummary] = []
        var cursor: String?
        repeat {
            let page = try await store.listTraces(filter, sort: sort, limit: 7, cursor: cursor)
            out += page.items
            cursor = page.nextCursor
        } while cursor != nil && out.count < 1_000
        return out
    }

    /// Brings every replica of the database's replicated tables up to date (SYSTEM SYNC REPLICA).
    static func syncReplicas(_ nodes: [ClickHouseTestCluster.Node], database db: String) async throws {
        for n in nodes {
            for t in try await n.strings("SELECT name FROM system.tables WHERE database = \(ClickHouseSQL.quote(db)) AND engine LIKE 'Replicated%'") {
                try await n.store.http.execute("SYSTEM SYNC REPLICA \(db).\(t)")
            }
        }
    }

    @Test("tables are Replicated on every shard with Distributed tables over them; a trace lives on one shard; replicas agree; queries equal one server's", .enabled(if: !Cluster.urls.isEmpty, Cluster.skipReason))
    func layoutLocalityAndEquality() async throws {
        let db = Cluster.freshDatabase()
        let nodes = try await Cluster.nodes(database: db)
        #expect(nodes.count == 4 && Set(nodes.map(\.shard)).count == 2, "expected 2 shards × 2 replicas: \(nodes.map { "\($0.url) \($0.shard)/\($0.replica)" })")
        let store = try #require(nodes.first?.store)
        try await store.migrate()
        #expect(try await store.appliedMigrations() == [1, 2, 3, 4])

        // Every node has each table as <table>_local (Replicated) and <table> (Distributed).
        for n in nodes {
            var r = try await n.store.http.query("SELECT name, engine FROM system.tables WHERE database = \(ClickHouseSQL.quote(db))")
            var engines: [String: String] = [:]
            while !r.isAtEnd { engines[try r.string()] = try r.string() }
            for t in ["spans", "rollups", "scores", "batches", "trace_index", "trace_summary"] {
                #expect(engines[t] == "Distributed", "\(n.url): \(t) is \(engines[t] ?? "missing")")
                #expect(engines[t + "_local"]?.hasPrefix("Replicated") == true, "\(n.url): \(t)_local is \(engines[t + "_local"] ?? "missing")")
            }
            #expect(engines["schema_migrations"] == "ReplicatedReplacingMergeTree")
            #expect(engines["trace_summary_mv"] == "MaterializedView")
        }

        // The same data into the cluster and into one server (18.16 when set, else SQLite).
        let p = StoreFixtures.uniqueProject("cluster")
        let batches = Self.batches(projectID: p)
        for b in batches { #expect(try await store.insert(b) == .stored) }
        let reference: any SpanStore
        var referenceDrop: ClickHouseStore?
        if ClickHouseTestServers.legacyURL != nil {
            let single = try await ClickHouseTestServers.makeStore(.legacy)
            referenceDrop = single
            reference = single
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-cluster-ref-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let sqlite = try SQLiteStore(path: dir.appendingPathComponent("spans.sqlite").path, logger: Logger(label: "test.ref"))
            try await sqlite.migrate()
            reference = sqlite
        }
        for b in batches { _ = try await reference.insert(b) }

        // Locality: each trace's spans, index rows and summary rows are on one shard only.
        try await Self.syncReplicas(nodes, database: db)
        let all = batches.flatMap(\.spans)
        var shardOf: [String: String] = [:]
        for n in nodes {
            let q = ClickHouseSQL.quote(p)
            for line in try await n.strings("SELECT concat(trace_id, '/', toString(count())) FROM \(db).spans_local FINAL WHERE project_id = \(q) GROUP BY trace_id") {
                let parts = line.split(separator: "/")
                let trace = String(parts[0])
                #expect(Int(parts[1]) == all.filter { $0.traceID == trace }.count, "\(n.url) holds only some spans of \(trace)")
                if let s = shardOf[trace] { #expect(s == n.shard, "trace \(trace) on shards \(s) and \(n.shard)") }
                shardOf[trace] = n.shard
            }
            for (table, column) in [("trace_index", "trace_id"), ("trace_summary", "trace_id")] {
                for trace in try await n.strings("SELECT DISTINCT \(column) FROM \(db).\(table)_local WHERE project_id = \(q)") {
                    #expect(shardOf[trace] == nil || shardOf[trace] == n.shard, "\(table) row of \(trace) on shard \(n.shard), its spans on \(shardOf[trace] ?? "?")")
                }
            }
        }
        #expect(Set(shardOf.keys) == Set(all.map(\.traceID)))
        #expect(Set(shardOf.values).count == 2, "40 traces all on one shard: the sharding key does not spread them")

        // Replicas of a shard hold the same rows.
        for shard in Set(nodes.map(\.shard)) {
            let replicas = nodes.filter { $0.shard == shard }
            for t in ["spans", "rollups", "trace_index", "trace_summary", "batches"] {
                var counts: [UInt64] = []
                for n in replicas { counts.append(try await n.uint64("SELECT count() FROM \(db).\(t)_local")) }
                #expect(Set(counts).count == 1, "shard \(shard) replicas disagree on \(t)_local: \(counts)")
            }
        }

        // Trace list (every sort, paged), trace detail and metrics equal the single server's.
        for sort in [TraceSort.startDesc, .startAsc, .costDesc, .durationDesc] {
            let got = try await Self.allTraces(store, TraceFilter(projectID: p), sort: sort)
            let want = try await Self.allTraces(reference, TraceFilter(projectID: p), sort: sort)
            #expect(got.count == 40)
            #expect(got == want, "trace list \(sort) differs from one server's")
        }
        let filtered = TraceFilter(projectID: p, model: "gpt-4o", status: .error)
        #expect(try await Self.allTraces(store, filtered, sort: .startDesc) == (try await Self.allTraces(reference, filtered, sort: .startDesc)))
        for i in [0, 9, 17, 27, 38] {
            let id = StoreFixtures.traceID(i)
            #expect(try await store.trace(projectID: p, traceID: id) == (try await reference.trace(projectID: p, traceID: id)), "trace \(i) detail differs")
        }
        for groupBy in [MetricsDimension.none, .model, .user] {
            let q = MetricsQuery(projectID: p, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 7_200, intervalSeconds: 600, groupBy: groupBy)
            let got = try await store.metrics(q).sorted { ($0.bucketUnix, $0.group) < ($1.bucketUnix, $1.group) }
            let want = try await reference.metrics(q).sorted { ($0.bucketUnix, $0.group) < ($1.bucketUnix, $1.group) }
            #expect(got.map(\.value.requests) == want.map(\.value.requests) && got.map(\.group) == want.map(\.group), "metrics by \(groupBy) differ")
            #expect(got.reduce(0) { $0 + $1.value.inputTokens } == want.reduce(0) { $0 + $1.value.inputTokens })
            #expect(abs(got.reduce(0) { $0 + $1.value.costUSD } - want.reduce(0) { $0 + $1.value.costUSD }) < 1e-9)
        }
        #expect(try await store.countSpans(projectID: p, fromUnixNanos: nil, toUnixNanos: nil) == all.count)

        if let referenceDrop { await ClickHouseTestServers.drop(referenceDrop) }
        for n in nodes.dropFirst() { await n.store.shutdown() }
        await Cluster.drop(store)
    }

    @Test("the store conformance suite passes in cluster mode", .enabled(if: !Cluster.urls.isEmpty, Cluster.skipReason))
    func conformance() async throws {
        let db = Cluster.freshDatabase()
        let store = try await ClickHouseStore(configuration: Cluster.configuration(try #require(Cluster.urls.first), database: db), logger: Logger(label: "test.cluster"))
        try await store.migrate()
        try await StoreConformance.runAll(store)
        await Cluster.drop(store)
    }

    @Test("a batch re-sent after a timeout is stored once: the ledger answers duplicate, and a re-sent insert body is dropped by replicated deduplication", .enabled(if: !Cluster.urls.isEmpty, Cluster.skipReason))
    func resentBatch() async throws {
        let db = Cluster.freshDatabase()
        let nodes = try await Cluster.nodes(database: db)
        let store = try #require(nodes.first?.store)
        try await store.migrate()
        let p = StoreFixtures.uniqueProject("resend")
        let batch = StoreFixtures.batch(0..<12, projectID: p, batchID: "once")
        #expect(try await store.insert(batch) == .stored)
        #expect(try await store.insert(batch) == .duplicate)

        // A timeout after the server stored the rows: the writer's insert body reaches the shards
        // again (same rows, same blocks), before any ledger check could see the batch.
        let other = StoreFixtures.batch(20..<32, projectID: p, batchID: "retried")
        let entry = store.encode(other)
        try await store.writer.write(entry)
        try await store.writer.write(entry)
        try await Self.syncReplicas(nodes, database: db)
        let q = ClickHouseSQL.quote(p)
        for shard in Set(nodes.map(\.shard)) {
            for n in nodes where n.shard == shard {
                // Raw rows, without FINAL: replicated deduplication, not a merge, kept one copy.
                let raw = try await n.uint64("SELECT count() FROM \(db).spans_local WHERE project_id = \(q)")
                let distinct = try await n.uint64("SELECT uniqExact(trace_id, span_id) FROM \(db).spans_local WHERE project_id = \(q)")
                #expect(raw == distinct, "\(n.url): \(raw) span rows for \(distinct) spans")
                let summaries = try await n.uint64("SELECT count() FROM \(db).trace_summary_local WHERE project_id = \(q)")
                let traces = try await n.uint64("SELECT uniqExact(trace_id) FROM \(db).trace_summary_local WHERE project_id = \(q)")
                #expect(summaries == traces, "\(n.url): \(summaries) summary rows for \(traces) traces")
            }
        }
        #expect(try await store.countSpans(projectID: p, fromUnixNanos: nil, toUnixNanos: nil) == batch.spans.count + other.spans.count)
        var spanRows: UInt64 = 0
        for shard in Set(nodes.map(\.shard)) {
            if let n = nodes.first(where: { $0.shard == shard }) { spanRows += try await n.uint64("SELECT count() FROM \(db).spans_local WHERE project_id = \(q)") }
        }
        #expect(spanRows == UInt64(batch.spans.count + other.spans.count))
        var ledgerRows: UInt64 = 0
        for shard in Set(nodes.map(\.shard)) {
            if let n = nodes.first(where: { $0.shard == shard }) { ledgerRows += try await n.uint64("SELECT count() FROM \(db).batches_local WHERE project_id = \(q)") }
        }
        #expect(ledgerRows == 2, "one ledger row per batch")
        #expect(try await store.insert(other) == .duplicate)
        let m = try await store.metrics(MetricsQuery(projectID: p, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 7_200, intervalSeconds: 7_200))
        #expect(m.reduce(0) { $0 + $1.value.requests } == UInt64((batch.spans + other.spans).filter(\.isLLMCall).count))
        for n in nodes.dropFirst() { await n.store.shutdown() }
        await Cluster.drop(store)
    }

    @Test("two backends migrating a fresh database at once both succeed, and every node ends with the whole schema", .enabled(if: !Cluster.urls.isEmpty, Cluster.skipReason))
    func concurrentMigrations() async throws {
        let db = Cluster.freshDatabase()
        let urls = Cluster.urls
        let a = try await ClickHouseStore(configuration: Cluster.configuration(urls[0], database: db), logger: Logger(label: "test.cluster.a"))
        let b = try await ClickHouseStore(configuration: Cluster.configuration(urls[urls.count - 1], database: db), logger: Logger(label: "test.cluster.b"))
        async let first: Void = a.migrate()
        async let second: Void = b.migrate()
        try await first
        try await second
        let appliedA = try await a.appliedMigrations(), appliedB = try await b.appliedMigrations()
        #expect(appliedA == [1, 2, 3, 4] && appliedB == [1, 2, 3, 4], "applied: \(appliedA) and \(appliedB)")
        let nodes = try await Cluster.nodes(database: db)
        for n in nodes {
            let tables = Set(try await n.strings("SELECT name FROM system.tables WHERE database = \(ClickHouseSQL.quote(db))"))
            #expect(tables.count == 14, "\(n.url): \(tables.sorted())")
            await n.store.shutdown()
        }
        // Both work: a batch through one is a duplicate through the other.
        let p = StoreFixtures.uniqueProject("twice")
        #expect(try await a.insert(StoreFixtures.batch(0..<3, projectID: p, batchID: "x")) == .stored)
        #expect(try await b.insert(StoreFixtures.batch(0..<3, projectID: p, batchID: "x")) == .duplicate)
        #expect(try await b.trace(projectID: p, traceID: StoreFixtures.traceID(1)).count == 4)
        await b.shutdown()
        await Cluster.drop(a)
    }

    @Test("retention and project deletion mutate every shard's local tables and wait for every replica", .enabled(if: !Cluster.urls.isEmpty, Cluster.skipReason))
    func retentionAndDeletion() async throws {
        let db = Cluster.freshDatabase()
        try await Cluster.withNodes(database: db) { nodes in
            let store = try #require(nodes.first?.store)
            try await store.migrate()
            // Rows deleted, no partition dropped (cluster mode deletes rows only); the rest as on one server.
            try await RetentionConformance.run(store)
            #expect(store.retentionPartitionDrops.withLock { $0 } == 0)
            let p = StoreFixtures.uniqueProject("gone")
            _ = try await store.insert(StoreFixtures.batch(0..<8, projectID: p, batchID: "d"))
            try await store.deleteProject(projectID: p)
            // deleteProject returned: every replica of every shard has finished (not only the one read).
            let q = ClickHouseSQL.quote(p)
            for n in nodes {
                for t in ["spans", "rollups", "trace_index", "trace_summary", "batches"] {
                    #expect(try await n.uint64("SELECT count() FROM \(db).\(t)_local WHERE project_id = \(q)") == 0, "\(n.url): \(t)_local keeps rows of the deleted project")
                }
            }
            #expect(try await store.listTraces(TraceFilter(projectID: p), sort: .startDesc, limit: 10, cursor: nil).items.isEmpty)
            await Cluster.drop(store)
        }
    }

    @Test("a cluster the servers do not define is refused with its name", .enabled(if: !Cluster.urls.isEmpty, Cluster.skipReason))
    func unknownCluster() async throws {
        var c = Cluster.configuration(try #require(Cluster.urls.first), database: Cluster.freshDatabase())
        c.cluster = "no_such_cluster"
        await #expect(throws: StoreError.self) { _ = try await ClickHouseStore(configuration: c, logger: Logger(label: "test")) }
        c.cluster = "bad name; DROP"
        await #expect(throws: StoreError.self) { _ = try await ClickHouseStore(configuration: c, logger: Logger(label: "test")) }
    }

    @Test("a mutation cluster must name one replica of every shard: the full cluster, a missing one and a bad name are refused",
          .enabled(if: !Cluster.urls.isEmpty, Cluster.skipReason))
    func mutationClusterShape() async throws {
        var c = Cluster.configuration(try #require(Cluster.urls.first), database: Cluster.freshDatabase())
        for (name, says) in [(Cluster.name, "exactly one replica of each"), ("no_such_cluster", "is not defined"), ("bad name; DROP", "letters, digits and underscores")] {
            c.mutationCluster = name
            let error = await #expect(throws: StoreError.self) { _ = try await ClickHouseStore(configuration: c, logger: Logger(label: "test")) }
            #expect(String(describing: try #require(error)).contains(says), "\(name): \(String(describing: error))")
        }
        c.cluster = nil
        c.mutationCluster = Cluster.mutationCluster
        await #expect(throws: StoreError.self) { _ = try await ClickHouseStore(configuration: c, logger: Logger(label: "test")) }
    }
}
