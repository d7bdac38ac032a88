import AsyncHTTPClient
import EvalForgeModel
import Foundation
import Logging
import NIOCore
import Synchronization

/// Telemetry in ClickHouse over its HTTP interface; works with Debian's 18.16 (legacy schema) and
/// with current servers, 23.8 and later (modern schema: DateTime64, LowCardinality, codecs, TTL,
/// skipping indexes, query parameters). See docs/storage.md.
///
/// Exactly once: `spans` is a ReplacingMergeTree keyed by (project, day, trace, span) and `rollups`
/// one keyed by (project, minute, service, provider, model, error, batch id), so a resent batch
/// collapses; every query reads with FINAL, so results are exact before merges too. The `batches`
/// ledger answers `.duplicate` for a batch already stored.
public final class ClickHouseStore: SpanStore {
    public let configuration: ClickHouseConfiguration
    let flavor: ClickHouseFlavor
    let http: ClickHouseHTTP
    let client: HTTPClient
    let writer: ClickHouseWriter
    let logger: Logger
    let db: String
    /// The time zone of `toDate(start)` on the spans table (trace_index days are in it).
    let dayZone: TimeZone
    private let scoreVersion = Mutex<UInt64>(0)
    /// Rollups merged per hour for the metrics queries (ClickHouseStore+Metrics.swift).
    let rollupHours = RollupHourCache()
    /// Traces with several `trace_summary` rows, per project (ClickHouseStore+TraceSummary.swift).
    let multiRows = MultiRowTraceCache()
    /// Traces seen without a `trace_summary` row, waiting out the settle delay (ClickHouseStore+SummaryRepair.swift).
    let summaryRepair = SummaryRepairState()
    /// Trace lists that found a trace twice among the single-row traces (it gained a summary row
    /// during the request, or the multi-row check missed it) and were answered from spans instead.
    let traceListRestarts = Mutex<Int>(0)
    /// Partitions retention dropped whole (`dropExpiredPartitions`), since the store was opened.
    let retentionPartitionDrops = Mutex<Int>(0)

    public var description: String { "clickhouse \(flavor.version) (\(flavor.name))" }

    /// The server's version string, e.g. "18.16.1" or "26.9.2.1".
    public var serverVersion: String { flavor.version }
    /// True when the server gets the modern schema (23.8 and later).
    public var usesModernSchema: Bool { flavor.modern }

    /// Connects and reads the server version; throws `StoreError.unavailable` when the server does
    /// not answer.
    public init(configuration: ClickHouseConfiguration, logger: Logger) async throws {
        guard !configuration.database.isEmpty, configuration.database.utf8.allSatisfy({ $0 == 95 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }) else {
            throw StoreError.invalidArgument("ClickHouse database name '\(configuration.database)' must be letters, digits and underscores")
        }
        if let c = configuration.cluster, !ClickHouseConfiguration.validClusterName(c) {
            throw StoreError.invalidArgument("ClickHouse cluster name '\(c)' must be 1 to 64 letters, digits and underscores")
        }
        if let m = configuration.mutationCluster {
            guard configuration.cluster != nil else { throw StoreError.invalidArgument("a ClickHouse mutation cluster ('\(m)') needs cluster mode (a cluster name)") }
            guard ClickHouseConfiguration.validClusterName(m) else { throw StoreError.invalidArgument("ClickHouse mutation cluster name '\(m)' must be 1 to 64 letters, digits and underscores") }
        }
        self.configuration = configuration
        self.logger = logger
        db = configuration.database
        let timeout = HTTPClient.Configuration.Timeout(connect: .milliseconds(Int64(max(50, configuration.connectTimeoutMilliseconds))), read: .seconds(Int64(max(1, configuration.timeoutSeconds))))
        var clientConfiguration = HTTPClient.Configuration(timeout: timeout)
        clientConfiguration.decompression = .disabled
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        self.client = client
        do {
            http = try ClickHouseHTTP(configuration: configuration, client: client, logger: logger)
            var r = try await http.query("SELECT version(), timezone()")
            flavor = ClickHouseFlavor(version: try r.string(), cluster: configuration.cluster)
            let zone = try r.string()
            if let c = configuration.cluster {
                var v = SQLValues(useParameters: flavor.modern)
                var n = try await http.query("SELECT count() FROM system.clusters WHERE cluster = \(v.string(c))", parameters: v.parameters)
                guard try n.uint64() > 0 else {
                    throw StoreError.invalidArgument("ClickHouse cluster '\(c)' is not defined on \(configuration.url) (remote_servers in the server's config; SELECT cluster FROM system.clusters lists them)")
                }
                if let m = configuration.mutationCluster {
                    try await Self.checkMutationCluster(m, of: c, http: http, values: SQLValues(useParameters: flavor.modern), url: configuration.url)
                } else if !flavor.modern {
                    logger.warning("deletes (retention, project deletion) run ON CLUSTER on every replica: 18.16's DDL worker can die when two replicas of a shard race for one; name a cluster with one replica per shard in --clickhouse-mutation-cluster (docs/storage.md, Cluster)", metadata: ["clickhouse.cluster": "\(c)"])
                }
            }
            // toDate(start), the spans table's day: UTC for DateTime64(9, 'UTC'), the server's time
            // zone for the legacy DateTime column.
            dayZone = flavor.modern ? TimeZone.gmt : (TimeZone(identifier: zone) ?? TimeZone.gmt)
        } catch {
            try? await client.shutdown()
            throw error
        }
        writer = ClickHouseWriter(
            http: http,
            tables: .init(spans: "\(db).spans", spanColumns: flavor.spanInsertColumns, rollups: "\(db).rollups", rollupColumns: flavor.rollupInsertColumns,
                         traceIndex: "\(db).trace_index", traceIndexColumns: flavor.traceIndexInsertColumns, batches: "\(db).batches"),
            configuration: configuration, logger: logger)
        logger.info("clickhouse connected", metadata: ["clickhouse.version": "\(flavor.version)", "clickhouse.schema": "\(flavor.name)"])
    }

    /// The mutation cluster must name exactly one replica of each shard of `cluster` (the same shard
    /// numbers): two replicas of a shard would race as on the main cluster, a missing shard would
    /// keep its rows.
    static func checkMutationCluster(_ m: String, of cluster: String, http: ClickHouseHTTP, values: SQLValues, url: String) async throws {
        func shards(_ name: String) async throws -> [UInt32: UInt64] {
            var v = values
            var r = try await http.query("SELECT toUInt32(shard_num), count() FROM system.clusters WHERE cluster = \(v.string(name)) GROUP BY shard_num", parameters: v.parameters)
            var out: [UInt32: UInt64] = [:]
            while !r.isAtEnd { out[try r.integer(UInt32.self)] = try r.uint64() }
            return out
        }
        let main = try await shards(cluster), mutations = try await shards(m)
        guard !mutations.isEmpty else {
            throw StoreError.invalidArgument("ClickHouse mutation cluster '\(m)' is not defined on \(url) (remote_servers; it names one replica of each shard of '\(cluster)')")
        }
        guard Set(mutations.keys) == Set(main.keys), mutations.values.allSatisfy({ $0 == 1 }) else {
            let shape = mutations.keys.sorted().map { "shard \($0): \(mutations[$0] ?? 0) replica(s)" }.joined(separator: ", ")
            throw StoreError.invalidArgument("ClickHouse mutation cluster '\(m)' must name exactly one replica of each of the \(main.count) shard(s) of '\(cluster)'; it has \(shape)")
        }
    }

    public func shutdown() async {
        await writer.drain()
        try? await client.shutdown()
    }

    func values() -> SQLValues { SQLValues(useParameters: flavor.modern) }

    /// What the modern schema's per-row `retention_days` column (and its `TTL … WHERE
    /// retention_days > 0`) gets: 0, so the TTL never fires. A project's retention can change after
    /// its rows are written (a longer one must keep rows a stamped TTL would already drop), so the
    /// backend's retention job enforces it with `deleteExpired` on every server version.
    static let rowRetentionDays: UInt16 = 0

    // MARK: Schema

    public func migrate() async throws {
        do {
            if let c = flavor.cluster {
                // ON CLUSTER: every node runs the DDL (ZooKeeper's queue, one statement after the
                // other); IF NOT EXISTS makes a second backend's copies no-ops. The ledger is one
                // replicated table across all nodes (a single ZooKeeper path, a replica per node), so
                // any node reads every version applied through any other.
                try await http.execute("CREATE DATABASE IF NOT EXISTS \(db) ON CLUSTER \(c)")
                try await http.execute("CREATE TABLE IF NOT EXISTS \(db).schema_migrations ON CLUSTER \(c) (version UInt32, name String, applied DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/\(db)/schema_migrations', '{shard}-{replica}') ORDER BY version")
            } else {
                try await http.execute("CREATE DATABASE IF NOT EXISTS \(db)")
                try await http.execute("CREATE TABLE IF NOT EXISTS \(db).schema_migrations (version UInt32, name String, applied DateTime) ENGINE = ReplacingMergeTree() ORDER BY version")
            }
            var r = try await http.query("SELECT DISTINCT toUInt32(version) FROM \(db).schema_migrations")
            var applied = Set<Int>()
            while !r.isAtEnd { applied.insert(Int(try r.integer(UInt32.self))) }
            for m in flavor.migrations(database: db) where !applied.contains(m.version) {
                for statement in m.statements { try await http.execute(statement) }
                var v = values()
                // Cluster mode: two backends recording a version in the same second send equal
                // blocks, and replicated deduplication would drop this node's copy until the other's
                // arrives; a copy of its own keeps the version visible here at once.
                try await http.execute("INSERT INTO \(db).schema_migrations (version, name, applied) SELECT \(m.version), \(v.string(m.name)), now()", parameters: v.parameters,
                                       settings: flavor.cluster == nil ? [] : [("insert_deduplicate", "0")])
                logger.info("clickhouse migration applied", metadata: ["clickhouse.migration": "\(m.version)", "clickhouse.schema": "\(flavor.name)"])
            }
        } catch let e as StoreError where !e.isTransient {
            throw StoreError.schema("ClickHouse schema migration failed on \(flavor.version): \(e.message)")
        }
    }

    /// Versions recorded in `schema_migrations`.
    public func appliedMigrations() async throws -> [Int] {
        var r = try await http.query("SELECT toUInt32(version) FROM \(db).schema_migrations FINAL ORDER BY version")
        var out: [Int] = []
        while !r.isAtEnd { out.append(Int(try r.integer(UInt32.self))) }
        return out
    }

    // MARK: Insert

    public func insert(_ batch: StoreBatch) async throws -> InsertOutcome {
        var v = values()
        let sql = "SELECT count() FROM \(db).batches WHERE project_id = \(v.string(batch.projectID)) AND batch_id = \(v.string(batch.batchID))"
        var r = try await http.query(sql, parameters: v.parameters)
        if try r.uint64() > 0 { return .duplicate }
        try await writer.write(encode(batch))
        return .stored
    }

    /// RowBinary rows of a batch (spans, rollups merged per key, the ledger row).
    func encode(_ batch: StoreBatch) -> ClickHouseWriter.Entry {
        let retention = Self.rowRetentionDays
        let modern = flavor.modern
        var capacity = 0
        for i in batch.spans.indices {
            capacity += ClickHouseRowCoding.encodedSizeEstimate(batch.spans[i])
        }
        var spans = RowBinaryWriter(capacity: capacity)
        // trace_index: the distinct (trace, day) pairs of the batch; the zone's offset is looked up
        // once per quarter hour of span start times (zone offsets change on quarter hours).
        var days = Set<TraceDay>()
        var months = Set<Int32>()
        var lastUTCDay = Int64.min
        var zoneQuarter = Int64.min
        var zoneOffset: Int64 = 0
        batch.spans.withUnsafeBufferPointer { rows in  // rows borrowed in place, not copied
            for i in rows.indices {
                ClickHouseRowCoding.write(rows[i], projectID: batch.projectID, retention: retention, modern: modern, to: &spans)
                let seconds = max(0, rows[i].startUnixNanos) / 1_000_000_000
                if seconds / 86_400 != lastUTCDay {
                    lastUTCDay = seconds / 86_400
                    months.insert(IngestBounds.monthIndex(unixSeconds: seconds))
                }
                if seconds / 900 != zoneQuarter {
                    zoneQuarter = seconds / 900
                    zoneOffset = Int64(dayZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(zoneQuarter * 900))))
                }
                let local = seconds + zoneOffset
                days.insert(TraceDay(traceID: rows[i].traceID, day: UInt16(clamping: max(0, local) / 86_400)))
            }
        }
        var merged: [RollupKey: RollupValue] = [:]
        for var r in batch.rollups {
            r.key.project = batch.projectID
            merged[r.key, default: RollupValue()].merge(r.value)
        }
        var rollups = RowBinaryWriter(capacity: merged.count * 256)
        for (k, value) in merged {
            ClickHouseRowCoding.write(k, value, batchID: batch.batchID, retention: retention, modern: modern, to: &rollups)
        }
        var index = RowBinaryWriter(capacity: days.count * (48 + batch.projectID.utf8.count))
        for k in merged.keys { months.insert(IngestBounds.monthIndex(unixSeconds: k.minuteUnix)) }
        for d in Set(days.map(\.day)) { months.insert(IngestBounds.monthIndex(unixSeconds: Int64(d) * 86_400)) }
        for d in days.sorted(by: { ($0.traceID, $0.day) < ($1.traceID, $1.day) }) {
            index.string(batch.projectID)
            index.string(d.traceID)
            index.uint16(d.day)
            if modern { index.uint16(retention) }
        }
        var ledger = RowBinaryWriter(capacity: 64 + batch.batchID.utf8.count + batch.projectID.utf8.count)
        ledger.string(batch.projectID)
        ledger.string(batch.batchID)
        ledger.uint32(UInt32(clamping: Int64(Date().timeIntervalSince1970)))
        ledger.uint32(UInt32(clamping: batch.spans.count))
        return .init(spans: spans.bytes, spanRows: batch.spans.count, rollups: rollups.bytes, rollupRows: merged.count,
                     traceIndex: index.bytes, traceIndexRows: days.count, ledger: ledger.bytes, months: months)
    }

    /// The spans table's insert columns and `spans` as RowBinary in that order: what the writer sends,
    /// for tools that feed the same rows to another client (`scripts/bench writer` gives them to
    /// clickhouse-client).
    public func rowBinary(_ spans: [SpanRow], projectID: String) -> (columns: String, bytes: [UInt8]) {
        var w = RowBinaryWriter(capacity: spans.reduce(0) { $0 + ClickHouseRowCoding.encodedSizeEstimate($1) })
        let retention = Self.rowRetentionDays
        for i in spans.indices { ClickHouseRowCoding.write(spans[i], projectID: projectID, retention: retention, modern: flavor.modern, to: &w) }
        return (flavor.spanInsertColumns, w.bytes)
    }

    public func insertScores(_ scores: [ScoreRow]) async throws {
        guard !scores.isEmpty else { return }
        var w = RowBinaryWriter(capacity: scores.count * 256)
        for s in scores {
            let version = scoreVersion.withLock { last -> UInt64 in
                let now = UInt64(max(0, Date().timeIntervalSince1970 * 1e9))
                last = max(last + 1, now)
                return last
            }
            ClickHouseRowCoding.write(s, version: version, retention: Self.rowRetentionDays, modern: flavor.modern, to: &w)
        }
        try await http.insert(table: "\(db).scores", columns: flavor.scoreInsertColumns, rows: w.buffer)
    }

    // MARK: Retention

    /// A table retention deletes from: `expired(project, cutoff)` is the SQL condition of a
    /// project's rows older than the cutoff; `partition` the table's partition expression (nil when
    /// it has none).
    struct RetentionTarget {
        var table: String
        var partition: String?
        var expired: (_ project: String, _ cutoffNanos: Int64) -> String
    }

    /// The tables retention deletes from and how, for this server's schema. Project ids are escaped
    /// literals (lists of OR'ed conditions stay in the body).
    var retentionTargets: [RetentionTarget] {
        let utc = flavor.modern ? ", 'UTC'" : ""
        func seconds(_ c: Int64) -> Int64 { max(0, c / 1_000_000_000) }
        return [
            .init(table: "spans", partition: "toYYYYMM(start)") { p, c in "(project_id = \(ClickHouseSQL.quote(p)) AND \(self.flavor.startNanos) < \(c))" },
            .init(table: "rollups", partition: "toYYYYMM(minute)") { p, c in "(project_id = \(ClickHouseSQL.quote(p)) AND minute < toDateTime(\(seconds(c))))" },
            // A (trace, day) row goes when the whole day is before the cutoff (days are in the spans
            // table's time zone: UTC on modern servers, the server's on 18.16).
            .init(table: "trace_index", partition: "toYYYYMM(day)") { p, c in "(project_id = \(ClickHouseSQL.quote(p)) AND day < toDate(toDateTime(\(seconds(c))\(utc))))" },
            .init(table: "trace_summary", partition: "toYYYYMM(t_day)") { p, c in "(project_id = \(ClickHouseSQL.quote(p)) AND t_start < \(c))" },
            .init(table: "scores", partition: nil) { p, c in "(project_id = \(ClickHouseSQL.quote(p)) AND created_ns < \(c))" },
            .init(table: "batches", partition: nil) { p, c in "(project_id = \(ClickHouseSQL.quote(p)) AND stored < toDateTime(\(seconds(c))))" },
        ]
    }

    /// Projects per OR'ed delete statement (keeps statements short with thousands of projects).
    static let retentionProjectsPerStatement = 200

    /// Retention in three steps (docs/storage.md#retention):
    /// 1. with `everyProject`, a monthly partition that ends (a day of time-zone slack included)
    ///    before the earliest cutoff and in which every row belongs to a project of `cutoffs` and is
    ///    older than its cutoff is dropped whole (`ALTER TABLE … DROP PARTITION`: no rewrite); a row
    ///    any project could still write into such a month would be expired for it anyway;
    /// 2. the remaining expired rows go with one delete per table covering every project (a part is
    ///    rewritten once per run, not once per project), and only when a count finds some: on
    ///    18.16 an `ALTER TABLE … DELETE` mutation, on current servers a lightweight
    ///    `DELETE FROM` (marks rows deleted; merges drop them later);
    /// 3. traces with spans on both sides of their cutoff get a summary row of their remaining spans.
    /// Partitions are shared by projects, so step 1 only applies once every project has let the
    /// month go; projects not in `cutoffs` (keep forever) are never touched.
    public func deleteExpired(_ cutoffs: [String: Int64], everyProject: Bool) async throws -> Int {
        let cutoffs = cutoffs.filter { $0.value > 0 }
        guard !cutoffs.isEmpty else { return 0 }
        // Merged hours and multi-row sets of these projects are forgotten before and after.
        for p in cutoffs.keys {
            rollupHours.forget(project: p)
            multiRows.forget(project: p)
        }
        defer {
            for p in cutoffs.keys {
                rollupHours.forget(project: p)
                multiRows.forget(project: p)
            }
        }
        var straddling: [String: [String]] = [:]
        for (p, c) in cutoffs {
            var v = values()
            var r = try await http.query("SELECT DISTINCT trace_id FROM \(db).trace_summary WHERE project_id = \(v.string(p)) AND t_start < \(c) AND t_last >= \(c)", parameters: v.parameters)
            while !r.isAtEnd { straddling[p, default: []].append(try r.string()) }
        }
        var deleted = 0
        let projects = cutoffs.keys.sorted()
        let earliest = (cutoffs.values.min() ?? 0) / 1_000_000_000
        for t in retentionTargets {
            // Cluster mode deletes rows only: partitions are per shard and replica, and a drop there
            // would need each node's parts checked (see docs/storage.md, "Cluster").
            if everyProject, flavor.cluster == nil, let partition = t.partition {
                deleted = deleted.addingSaturated(try await dropExpiredPartitions(t, partition: partition, cutoffs: cutoffs, endingBefore: earliest))
            }
            for chunk in stride(from: 0, to: projects.count, by: Self.retentionProjectsPerStatement) {
                let cond = projects[chunk..<min(projects.count, chunk + Self.retentionProjectsPerStatement)]
                    .map { t.expired($0, cutoffs[$0] ?? 0) }.joined(separator: " OR ")
                var r = try await http.query("SELECT count() FROM \(db).\(t.table) WHERE \(cond)")
                let n = Int(clamping: try r.uint64())
                guard n > 0 else { continue }
                deleted = deleted.addingSaturated(n)
                if flavor.modern {
                    try await http.execute("DELETE FROM \(mutable(t.table)) WHERE \(cond)")
                } else {
                    try await http.execute("ALTER TABLE \(mutable(t.table)) DELETE WHERE \(cond)")
                }
            }
        }
        // Mutations run in the background; wait so the caller sees the rows gone.
        try await waitForMutations("expired rows of \(projects.count) project(s)")
        for (p, ids) in straddling {
            let ids = Array(Set(ids)).sorted()
            for chunk in stride(from: 0, to: ids.count, by: 1_000) {
                var w = values()
                let cond = "project_id = \(w.string(p)) AND \(w.inList("trace_id", Array(ids[chunk..<min(ids.count, chunk + 1_000)])))"
                try await http.execute("INSERT INTO \(db).trace_summary (\(ClickHouseFlavor.traceSummaryColumns(modern: flavor.modern))) \(flavor.traceSummarySelect(from: "\(db).spans", where: cond))", parameters: w.parameters)
            }
        }
        return deleted
    }

    /// Drops the monthly partitions of `t` that end (plus a day, for the server's time zone) by
    /// `endingBefore` (Unix seconds) and whose every row is expired: each row belongs to a project
    /// of `cutoffs` and is older than its cutoff (checked by counting the partition's rows that are
    /// not, right before the drop). Returns the rows dropped.
    func dropExpiredPartitions(_ t: RetentionTarget, partition: String, cutoffs: [String: Int64], endingBefore: Int64) async throws -> Int {
        var months: [Int] = []
        do {
            var v = values()
            var r = try await http.query("SELECT DISTINCT partition FROM system.parts WHERE database = \(v.string(db)) AND table = \(v.string(t.table)) AND active", parameters: v.parameters)
            // Partition values come from the server: only plain YYYYMM numbers are used in SQL.
            while !r.isAtEnd {
                guard let m = Int(try r.string()), (1970...9998).contains(m / 100), (1...12).contains(m % 100) else { continue }
                if Self.monthEnd(m) + 86_400 <= endingBefore { months.append(m) }
            }
        }
        var dropped = 0
        for m in months.sorted() {
            var present: [String] = []
            var r = try await http.query("SELECT DISTINCT project_id FROM \(db).\(t.table) WHERE \(partition) = \(m)")
            while !r.isAtEnd { present.append(try r.string()) }
            // A project without retention (or unknown here) keeps its rows: the month stays.
            guard !present.isEmpty, present.allSatisfy({ cutoffs[$0] != nil }) else { continue }
            let expired = present.map { t.expired($0, cutoffs[$0] ?? 0) }.joined(separator: " OR ")
            var c = try await http.query("SELECT count(), countIf(NOT (\(expired))) FROM \(db).\(t.table) WHERE \(partition) = \(m)")
            let rows = try c.uint64(), kept = try c.uint64()
            guard kept == 0 else { continue }
            try await http.execute("ALTER TABLE \(db).\(t.table) DROP PARTITION \(m)")
            dropped = dropped.addingSaturated(Int(clamping: rows))
            retentionPartitionDrops.withLock { $0 = $0.addingSaturated(1) }
            logger.info("retention dropped a partition", metadata: ["clickhouse.table": "\(t.table)", "clickhouse.partition": "\(m)", "rows": "\(rows)"])
        }
        return dropped
    }

    /// The first second (Unix, UTC) after month `yyyymm` (year 1970…9998, month 1…12).
    static func monthEnd(_ yyyymm: Int) -> Int64 {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = .gmt
        let year = yyyymm / 100, month = yyyymm % 100
        let next = DateComponents(year: month == 12 ? year + 1 : year, month: month == 12 ? 1 : month + 1, day: 1)
        return CheckedNumbers.clampedInt64(utc.date(from: next)?.timeIntervalSince1970 ?? 0)
    }

    /// What a delete mutates for `table`: the table, or in cluster mode every shard's local table
    /// (`ON CLUSTER` the mutation cluster; Distributed tables take no mutations, and a replicated
    /// mutation reaches every replica of its shard).
    func mutable(_ table: String) -> String {
        mutationCluster.map { "\(db).\(table)_local ON CLUSTER \($0)" } ?? "\(db).\(table)"
    }

    /// Where deletes run `ON CLUSTER`: the mutation cluster (one replica per shard) when configured,
    /// else the cluster; nil on one server.
    var mutationCluster: String? {
        flavor.cluster.map { configuration.mutationCluster ?? $0 }
    }

    /// Where mutations are listed: this server's `system.mutations`, or in cluster mode every node's
    /// (`remote()` over the cluster's addresses from `system.clusters`, which the server checked).
    func mutationsSource() async throws -> String {
        guard let c = flavor.cluster else { return "system.mutations" }
        var v = values()
        var r = try await http.query("SELECT host_address, toUInt32(port) FROM system.clusters WHERE cluster = \(v.string(c))", parameters: v.parameters)
        var nodes: [String] = []
        while !r.isAtEnd {
            let host = try r.string(), port = try r.integer(UInt32.self)
            // Addresses come from the server; only plain IPv4/IPv6 text and names reach the SQL.
            guard !host.isEmpty, host.utf8.count <= 255, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".:-_".contains($0)) }) else { continue }
            nodes.append(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        }
        guard !nodes.isEmpty else { return "system.mutations" }
        return "remote('\(nodes.joined(separator: ","))', system, mutations)"
    }

    /// Waits until the database has no unfinished mutation (at most 120 s), so the caller sees the
    /// rows gone; `what` names them in the error.
    func waitForMutations(_ what: String) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        let source = try await mutationsSource()
        while ContinuousClock.now < deadline {
            var v = values()
            var r = try await http.query("SELECT count() FROM \(source) WHERE database = \(v.string(db)) AND is_done = 0", parameters: v.parameters)
            if try r.uint64() == 0 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw StoreError.unavailable("ClickHouse is still deleting the \(what) after 120 s; they disappear when its mutations finish")
    }
}

extension ClickHouseStore {
    /// Deletes the project's rows from every MergeTree table of the database with a `project_id`
    /// column (`ALTER TABLE … DELETE`, on 18.16 and current servers alike) and waits for the
    /// mutations, so the caller sees the rows gone.
    public func deleteProject(projectID: String) async throws {
        rollupHours.forget(project: projectID)
        defer { rollupHours.forget(project: projectID) }
        multiRows.forget(project: projectID)
        defer { multiRows.forget(project: projectID) }
        var tables: [String] = []
        do {
            var v = values()
            let d = v.string(db)
            var r = try await http.query("SELECT name FROM system.tables WHERE database = \(d) AND engine LIKE '%MergeTree' AND name IN (SELECT table FROM system.columns WHERE database = \(d) AND name = 'project_id') ORDER BY name", parameters: v.parameters)
            while !r.isAtEnd { tables.append(try r.string()) }
        }
        for t in tables where t.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
            var v = values()
            // Cluster mode lists the shards' local tables (the Distributed ones are not MergeTree).
            let table = mutationCluster.map { "\(db).\(t) ON CLUSTER \($0)" } ?? "\(db).\(t)"
            try await http.execute("ALTER TABLE \(table) DELETE WHERE project_id = \(v.string(projectID))", parameters: v.parameters)
        }
        try await waitForMutations("rows of project \(projectID)")
    }
}

struct TraceDay: Hashable {
    var traceID: String
    var day: UInt16
}

/// RowBinary encoding and decoding of the store's rows (column order as in `ClickHouseFlavor`).
enum ClickHouseRowCoding {
    /// Bytes `write(_:projectID:…)` takes for `s`, give or take the project id and a few varints.
    @inline(__always) static func encodedSizeEstimate(_ s: SpanRow) -> Int {
        256 + s.name.utf8.count + s.statusMessage.utf8.count + s.input.utf8.count + s.output.utf8.count + s.attributesJSON.utf8.count + s.eventsJSON.utf8.count
    }

    static func write(_ s: SpanRow, projectID: String, retention: UInt16, modern: Bool, to w: inout RowBinaryWriter) {
        w.string(projectID)
        w.string(s.traceID)
        w.string(s.spanID)
        w.string(s.parentSpanID)
        let start = max(0, s.startUnixNanos)
        if modern {
            w.int64(start)
        } else {
            w.uint32(UInt32(clamping: start / 1_000_000_000))
            w.uint32(UInt32(start % 1_000_000_000))
        }
        w.int64(s.durationNanos)
        w.string(s.service)
        w.string(s.name)
        w.int8(s.kind.rawValue)
        w.int8(s.status.rawValue)
        w.string(s.statusMessage)
        w.string(s.operation)
        w.string(s.provider)
        w.string(s.model)
        w.int64(s.inputTokens)
        w.int64(s.outputTokens)
        w.int64(s.cacheReadTokens)
        w.int64(s.cacheCreationTokens)
        w.int64(s.reasoningTokens)
        w.nullableFloat64(s.costUSD)
        w.nullableInt64(s.ttftNanos)
        w.string(s.userID)
        w.string(s.sessionID)
        w.strings(s.tags)
        w.string(s.attributesJSON)
        w.string(s.input)
        w.string(s.output)
        w.string(s.eventsJSON)
        if modern { w.uint16(retention) }
    }

    static func span(_ r: inout RowBinaryReader) throws -> SpanRow {
        SpanRow(
            projectID: try r.string(), traceID: try r.string(), spanID: try r.string(), parentSpanID: try r.string(),
            startUnixNanos: try r.int64(), durationNanos: try r.int64(), service: try r.string(), name: try r.string(),
            kind: SpanKind(rawValue: try r.int8()) ?? .unspecified, status: SpanStatus(rawValue: try r.int8()) ?? .unset,
            statusMessage: try r.string(), operation: try r.string(), provider: try r.string(), model: try r.string(),
            inputTokens: try r.int64(), outputTokens: try r.int64(), cacheReadTokens: try r.int64(), cacheCreationTokens: try r.int64(),
            reasoningTokens: try r.int64(), costUSD: try r.nullableFloat64(), ttftNanos: try r.nullableInt64(),
            userID: try r.string(), sessionID: try r.string(), tags: try r.strings(), attributesJSON: try r.string(),
            input: try r.string(), output: try r.string(), eventsJSON: try r.string())
    }

    static func write(_ k: RollupKey, _ v: RollupValue, batchID: String, retention: UInt16, modern: Bool, to w: inout RowBinaryWriter) {
        w.string(k.project)
        w.uint32(UInt32(clamping: k.minuteUnix))
        w.string(k.service)
        w.string(k.provider)
        w.string(k.model)
        w.uint8(k.isError ? 1 : 0)
        w.string(batchID)
        for n in [v.requests, v.errors, v.inputTokens, v.outputTokens, v.cacheReadTokens, v.cacheCreationTokens, v.reasoningTokens] { w.uint64(n) }
        w.float64(v.costUSD)
        w.uint64(v.costUnknownRequests)
        write(v.latencyMs, to: &w)
        write(v.ttftMs, to: &w)
        if modern { w.uint16(retention) }
    }

    /// A sketch as count, sum, min, max, zero count and its non-empty buckets as parallel arrays
    /// (so the server merges sketches with sumMap).
    static func write(_ s: DDSketch, to w: inout RowBinaryWriter) {
        w.uint64(s.count)
        w.float64(s.sum)
        w.float64(s.count > 0 ? s.min : 0)
        w.float64(s.count > 0 ? s.max : 0)
        w.uint64(s.zeroCount)
        let nonEmpty = s.counts.indices.filter { s.counts[$0] > 0 }
        w.varint(nonEmpty.count)
        for i in nonEmpty { w.int32(s.offset &+ Int32(i)) }
        w.varint(nonEmpty.count)
        for i in nonEmpty { w.uint64(s.counts[i]) }
    }

    /// Reads what `sketchAggregates` selects: count, sum, min, max, zero count, keys, counts.
    static func sketch(_ r: inout RowBinaryReader) throws -> DDSketch {
        let count = try r.uint64()
        let sum = try r.float64()
        let min = try r.float64()
        let max = try r.float64()
        let zero = try r.uint64()
        let keys = try r.array { try $0.integer(Int32.self) }
        let counts = try r.array { try $0.uint64() }
        guard count > 0 else { return DDSketch() }
        // Keys come sorted from sumMap; checked anyway (a row is outside data), in Int arithmetic.
        guard keys.count == counts.count, let lo = keys.first, let hi = keys.last, hi >= lo, Int(hi) - Int(lo) < DDSketch.maxBuckets else {
            throw StoreError.rejected("ClickHouse returned a malformed latency sketch")
        }
        var dense = [UInt64](repeating: 0, count: Int(hi) - Int(lo) + 1)
        for (k, c) in zip(keys, counts) {
            let i = Int(k) - Int(lo)
            guard dense.indices.contains(i) else { throw StoreError.rejected("ClickHouse returned a malformed latency sketch") }
            dense[i] = dense[i].addingSaturated(c)
        }
        return DDSketch(alpha: DDSketch().alpha, count: count, sum: sum, min: min, max: max, zeroCount: zero, offset: lo, counts: dense) ?? DDSketch()
    }

    static func sketchAggregates(_ p: String) -> String {
        "sum(\(p)_count), sum(\(p)_sum), if(sum(\(p)_count) > 0, minIf(\(p)_min, \(p)_count > 0), 0), if(sum(\(p)_count) > 0, maxIf(\(p)_max, \(p)_count > 0), 0), sum(\(p)_zero), "
            + "arrayMap(x -> toInt32(x), tupleElement(sumMap(\(p)_keys, \(p)_counts), 1)), arrayMap(x -> toUInt64(x), tupleElement(sumMap(\(p)_keys, \(p)_counts), 2))"
    }

    static func write(_ s: ScoreRow, version: UInt64, retention: UInt16, modern: Bool, to w: inout RowBinaryWriter) {
        w.string(s.projectID)
        w.string(s.id)
        w.string(s.traceID)
        w.string(s.spanID)
        w.string(s.sessionID)
        w.string(s.name)
        w.nullableFloat64(s.value)
        w.string(s.label)
        w.string(s.dataType.rawValue)
        w.string(s.source.rawValue)
        w.string(s.comment)
        w.string(s.evaluator)
        w.string(s.runID)
        w.int64(s.createdUnixNanos)
        w.uint64(version)
        if modern { w.uint16(retention) }
    }

    static let scoreSelectColumns = "id, project_id, trace_id, span_id, session_id, name, value, label, data_type, source, comment, evaluator, run_id, created_ns"

    static func score(_ r: inout RowBinaryReader) throws -> ScoreRow {
        ScoreRow(id: try r.string(), projectID: try r.string(), traceID: try r.string(), spanID: try r.string(), sessionID: try r.string(),
                 name: try r.string(), value: try r.nullableFloat64(), label: try r.string(),
                 dataType: ScoreDataType(rawValue: try r.string()) ?? .numeric, source: ScoreSource(rawValue: try r.string()) ?? .api,
                 comment: try r.string(), evaluator: try r.string(), runID: try r.string(), createdUnixNanos: try r.int64())
    }
}
