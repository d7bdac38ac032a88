/// The server's version and which schema it gets.
///
/// - legacy (before 23.8, e.g. Debian's 18.16): `DateTime` seconds plus a separate nanoseconds
///   column, plain `String`s, the server's default LZ4 compression, no TTL (retention by
///   `ALTER TABLE … DELETE` mutations in `deleteExpired`), no query parameters (escaped literals).
/// - modern (23.8 and later): `DateTime64(9)`, `LowCardinality`, `Map`, ZSTD / Delta / T64 codecs,
///   data-skipping indexes, query parameters, retention by lightweight `DELETE FROM` (the per-row
///   `retention_days` TTL columns stay, written 0: see `ClickHouseStore.rowRetentionDays`).
/// Both drop whole monthly partitions once every project in them is past its retention.
///
/// In cluster mode (`cluster` set, `--clickhouse-cluster`) every table is a Replicated engine on
/// each shard named `<table>_local`, with a Distributed table under today's name over it, so every
/// query reads and writes the same names as on one server (docs/storage.md, "Cluster").
struct ClickHouseFlavor: Sendable, Equatable {
    let version: String
    let modern: Bool
    /// The cluster (from the servers' `remote_servers`) the tables span; nil on one server.
    let cluster: String?

    init(version: String, cluster: String? = nil) {
        self.version = version
        self.cluster = cluster
        let parts = version.split(separator: ".").map { Int($0) ?? 0 }
        let major = parts.first ?? 0
        let minor = parts.count > 1 ? parts[1] : 0
        modern = (major, minor) >= (23, 8)
    }

    var name: String { modern ? "modern schema" : "legacy schema" }

    /// The span start as Int64 Unix nanoseconds.
    var startNanos: String {
        modern ? "toUnixTimestamp64Nano(start)" : "(toInt64(toUInt32(start)) * 1000000000 + toInt64(start_nanos))"
    }

    var spanInsertColumns: String {
        "project_id, trace_id, span_id, parent_span_id, " + (modern ? "start" : "start, start_nanos")
            + ", duration_ns, service, name, kind, status, status_message, operation, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd, ttft_ns, user_id, session_id, tags, attributes, input, output, events"
            + (modern ? ", retention_days" : "")
    }

    /// What `ClickHouseRowCoding.span` reads.
    var spanSelectColumns: String {
        "project_id, trace_id, span_id, parent_span_id, \(startNanos) AS start_ns, duration_ns, service, name, kind, status, status_message, operation, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd, ttft_ns, user_id, session_id, tags, attributes, input, output, events"
    }

    static let sketchColumns = ["latency", "ttft"].map { p in
        "\(p)_count, \(p)_sum, \(p)_min, \(p)_max, \(p)_zero, \(p)_keys, \(p)_counts"
    }.joined(separator: ", ")

    var rollupInsertColumns: String {
        "project_id, minute, service, provider, model, is_error, batch_id, requests, errors, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd, cost_unknown_requests, "
            + Self.sketchColumns + (modern ? ", retention_days" : "")
    }

    var scoreInsertColumns: String {
        "project_id, id, trace_id, span_id, session_id, name, value, label, data_type, source, comment, evaluator, run_id, created_ns, version" + (modern ? ", retention_days" : "")
    }

    static let batchInsertColumns = "project_id, batch_id, stored, spans"

    static func traceIndexColumns(modern: Bool) -> String { "project_id, trace_id, day" + (modern ? ", retention_days" : "") }
    var traceIndexInsertColumns: String { Self.traceIndexColumns(modern: modern) }

    /// A span's cost in picodollars as the trace list sums it: NaN and infinities count as 0 and the
    /// value is clamped to ±9e18, so no span can make an insert (through the materialized view) or a
    /// query fail on the conversion.
    static let costPicos = "toInt64(round(greatest(least(if(isFinite(ifNull(cost_usd, 0)), ifNull(cost_usd, 0), 0) * 1000000000000.0, 9e18), -9e18)))"

    /// `sum(expr)` of Int64 picodollars that saturates at ±9.2e18 instead of wrapping (ClickHouse's
    /// `sum` of Int64 wraps: 93 spans at the $100,000 ingest bound already pass Int64.max, 9.22e18).
    /// Exact whenever the true sum is within ±9.2e18 (two's-complement partial sums that wrap come
    /// back); beyond, the Float64 sum (its error is far below the 0.2 % margin to Int64.max) picks the bound.
    static func saturatingSum(_ expr: String) -> String {
        "multiIf(sum(toFloat64(\(expr))) >= 9.2e18, toInt64(9200000000000000000), sum(toFloat64(\(expr))) <= -9.2e18, toInt64(-9200000000000000000), sum(\(expr)))"
    }

    static func traceSummaryColumns(modern: Bool) -> String {
        "project_id, t_day, t_hash, trace_id, t_last_day, t_start, t_end, t_last, t_spans, t_distinct, t_llm, t_errors, t_in, t_out, t_cost, t_cost_upper, t_cost_unknown, "
            + "t_name, t_service, t_user, t_session, t_models, t_services, t_providers, t_tags, t_users, t_sessions" + (modern ? ", t_retention" : "")
    }

    /// The `trace_summary` row of each trace among the spans of `from` (the inserted block in the
    /// materialized view; the whole table or some traces in a backfill). Only `t_*` aliases, so no
    /// alias shadows a spans column. The sets are `arrayDistinct(groupArray…)` (a trace's few spans per
    /// insert: 30 % cheaper than `groupUniqArray` on 18.16). Cost is in picodollars (as the trace list sums it); `t_cost_upper`
    /// sums only positive costs, an upper bound of the trace's cost whatever copies a merge keeps.
    func traceSummarySelect(from: String, where cond: String? = nil) -> String {
        let s = startNanos
        let root = "parent_span_id = ''"
        return """
            SELECT project_id, toDate(min(start)) AS t_day, cityHash64(trace_id) AS t_hash, trace_id, toDate(max(start)) AS t_last_day,
                min(\(s)) AS t_start, max(\(s) + duration_ns) AS t_end, max(\(s)) AS t_last,
                toUInt32(count()) AS t_spans, toUInt32(uniqExact(cityHash64(span_id))) AS t_distinct,
                toUInt32(countIf(model != '' OR provider != '')) AS t_llm, toUInt32(countIf(status = 2)) AS t_errors,
                sum(input_tokens) AS t_in, sum(output_tokens) AS t_out,
                \(Self.saturatingSum(Self.costPicos)) AS t_cost,
                \(Self.saturatingSum("greatest(\(Self.costPicos), toInt64(0))")) AS t_cost_upper,
                toUInt32(countIf((model != '' OR provider != '') AND isNull(cost_usd))) AS t_cost_unknown,
                if(countIf(\(root)) > 0, argMinIf(name, \(s), \(root)), argMin(name, \(s))) AS t_name,
                if(countIf(\(root)) > 0, argMinIf(service, \(s), \(root)), argMin(service, \(s))) AS t_service,
                if(anyIf(user_id, \(root) AND user_id != '') != '', anyIf(user_id, \(root) AND user_id != ''), anyIf(user_id, user_id != '')) AS t_user,
                if(anyIf(session_id, \(root) AND session_id != '') != '', anyIf(session_id, \(root) AND session_id != ''), anyIf(session_id, session_id != '')) AS t_session,
                arraySort(arrayDistinct(groupArrayIf(model, model != ''))) AS t_models, arraySort(arrayDistinct(groupArrayIf(service, service != ''))) AS t_services,
                arraySort(arrayDistinct(groupArrayIf(provider, provider != ''))) AS t_providers, arraySort(arrayDistinct(groupArrayArray(tags))) AS t_tags,
                arraySort(arrayDistinct(groupArrayIf(user_id, user_id != ''))) AS t_users, arraySort(arrayDistinct(groupArrayIf(session_id, session_id != ''))) AS t_sessions\(modern ? ",\n    max(retention_days) AS t_retention" : "")
            FROM \(from)\(cond.map { " WHERE " + $0 } ?? "")
            GROUP BY project_id, trace_id
            """
    }

    /// Versioned migrations; each statement is idempotent (IF NOT EXISTS) so a half-applied
    /// migration can run again.
    func migrations(database db: String) -> [(version: Int, name: String, statements: [String])] {
        let plain = db.replacingOccurrences(of: "`", with: "").replacingOccurrences(of: "'", with: "")
        let q = "`" + plain + "`"
        let m = modern
        // One server: `db.name` with the plain engine. Cluster: `db.name_local ON CLUSTER c` with the
        // Replicated engine (its ZooKeeper path per shard, the replica from the server's macros), then
        // a Distributed table `db.name` over it, sharded by `key`.
        let onCluster = cluster.map { " ON CLUSTER \($0)" } ?? ""
        func local(_ name: String) -> String { "\(q).\(name)\(cluster == nil ? "" : "_local")" }
        func target(_ name: String) -> String { local(name) + onCluster }
        func engine(_ name: String, _ kind: String, _ args: String = "") -> String {
            guard cluster != nil else { return "\(kind)(\(args))" }
            return "Replicated\(kind)('/clickhouse/tables/{shard}/\(plain)/\(name)', '{replica}'\(args.isEmpty ? "" : ", " + args))"
        }
        func distributed(_ name: String, by key: String) -> [String] {
            guard let c = cluster else { return [] }
            return ["CREATE TABLE IF NOT EXISTS \(q).\(name)\(onCluster) AS \(local(name)) ENGINE = Distributed(\(c), '\(plain)', '\(name)_local', \(key))"]
        }
        /// Backfills only on one server: a cluster database starts with the whole schema (cluster mode
        /// is newer than every migration that backfills), so there is nothing to fill.
        func unlessCluster(_ statement: String) -> [String] { cluster == nil ? [statement] : [] }
        let byTrace = "cityHash64(trace_id)"
        func lc(_ t: String = "String") -> String { m ? "LowCardinality(\(t))" : t }
        func codec(_ c: String) -> String { m ? " CODEC(\(c))" : "" }
        let text = codec("ZSTD(3)")
        let ids = codec("ZSTD(1)")
        let ints = codec("T64, ZSTD(1)")
        let retention = m ? ",\n    retention_days UInt16" : ""
        let sketch = ["latency", "ttft"].map { p in
            "\(p)_count UInt64, \(p)_sum Float64, \(p)_min Float64, \(p)_max Float64, \(p)_zero UInt64, \(p)_keys Array(Int32), \(p)_counts Array(UInt64)"
        }.joined(separator: ",\n    ")

        let spans = """
            CREATE TABLE IF NOT EXISTS \(target("spans")) (
                project_id \(lc()),
                trace_id String\(ids),
                span_id String\(ids),
                parent_span_id String\(ids),
                \(m ? "start DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1))" : "start DateTime,\n    start_nanos UInt32"),
                duration_ns Int64\(ints),
                service \(lc()),
                name \(lc()),
                kind Int8,
                status Int8,
                status_message String\(ids),
                operation \(lc()),
                provider \(lc()),
                model \(lc()),
                input_tokens Int64\(ints),
                output_tokens Int64\(ints),
                cache_read_tokens Int64\(ints),
                cache_creation_tokens Int64\(ints),
                reasoning_tokens Int64\(ints),
                cost_usd Nullable(Float64)\(ids),
                ttft_ns Nullable(Int64)\(ids),
                user_id String\(ids),
                session_id String\(ids),
                tags Array(\(lc())),
                attributes String\(text),
                input String\(text),
                output String\(text),
                events String\(text)\(retention)\(m ? """
            ,
                attributes_map Map(String, String) MATERIALIZED CAST(JSONExtractKeysAndValuesRaw(attributes), 'Map(String, String)'),
                INDEX idx_trace trace_id TYPE bloom_filter(0.01) GRANULARITY 4,
                INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
                INDEX idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 4,
                INDEX idx_cost cost_usd TYPE minmax GRANULARITY 4,
                INDEX idx_duration duration_ns TYPE minmax GRANULARITY 4,
                INDEX idx_input lowerUTF8(input) TYPE ngrambf_v1(3, 65536, 2, 0) GRANULARITY 4,
                INDEX idx_output lowerUTF8(output) TYPE ngrambf_v1(3, 65536, 2, 0) GRANULARITY 4
            """ : "")
            ) ENGINE = \(engine("spans", "ReplacingMergeTree"))
            PARTITION BY toYYYYMM(start)
            ORDER BY (project_id, toDate(start), trace_id, span_id)\(m ? "\nTTL toDateTime(start) + toIntervalDay(retention_days) WHERE retention_days > 0" : "")
            """
        let rollups = """
            CREATE TABLE IF NOT EXISTS \(target("rollups")) (
                project_id \(lc()),
                minute DateTime\(m ? " CODEC(Delta, ZSTD(1))" : ""),
                service \(lc()),
                provider \(lc()),
                model \(lc()),
                is_error UInt8,
                batch_id String\(ids),
                requests UInt64,
                errors UInt64,
                input_tokens UInt64,
                output_tokens UInt64,
                cache_read_tokens UInt64,
                cache_creation_tokens UInt64,
                reasoning_tokens UInt64,
                cost_usd Float64,
                cost_unknown_requests UInt64,
                \(sketch)\(retention)
            ) ENGINE = \(engine("rollups", "ReplacingMergeTree"))
            PARTITION BY toYYYYMM(minute)
            ORDER BY (project_id, minute, service, provider, model, is_error, batch_id)\(m ? "\nTTL minute + toIntervalDay(retention_days) WHERE retention_days > 0" : "")
            """
        let scores = """
            CREATE TABLE IF NOT EXISTS \(target("scores")) (
                project_id \(lc()),
                id String,
                trace_id String\(ids),
                span_id String\(ids),
                session_id String\(ids),
                name \(lc()),
                value Nullable(Float64),
                label \(lc()),
                data_type \(lc()),
                source \(lc()),
                comment String\(text),
                evaluator \(lc()),
                run_id String\(ids),
                created_ns Int64,
                version UInt64\(retention)
            ) ENGINE = \(engine("scores", "ReplacingMergeTree", "version"))
            ORDER BY (project_id, id)\(m ? "\nTTL toDateTime(intDiv(created_ns, 1000000000)) + toIntervalDay(retention_days) WHERE retention_days > 0" : "")
            """
        let batches = """
            CREATE TABLE IF NOT EXISTS \(target("batches")) (
                project_id String,
                batch_id String,
                stored DateTime,
                spans UInt32
            ) ENGINE = \(engine("batches", "ReplacingMergeTree"))
            ORDER BY (project_id, batch_id)\(m ? "\nTTL stored + INTERVAL 400 DAY" : "")
            """
        // Where each trace's spans are: one row per (trace, day) written with every flush, so a trace
        // by id reads its days from here and the spans table's primary key narrows to them.
        let traceIndex = """
            CREATE TABLE IF NOT EXISTS \(target("trace_index")) (
                project_id \(lc()),
                trace_id String\(ids),
                day Date\(retention)
            ) ENGINE = \(engine("trace_index", "ReplacingMergeTree"))
            PARTITION BY toYYYYMM(day)
            ORDER BY (project_id, trace_id, day)\(m ? "\nTTL day + toIntervalDay(retention_days + 1) WHERE retention_days > 0" : "")
            """
        let backfill = """
            INSERT INTO \(q).trace_index (\(Self.traceIndexColumns(modern: m)))
            SELECT project_id, trace_id, toDate(start) AS day\(m ? ", max(retention_days)" : "")
            FROM \(q).spans
            GROUP BY project_id, trace_id, day
            """
        // One row per (trace, insert into spans), written by a materialized view: what the trace
        // list reads instead of aggregating spans (ClickHouseStore+TraceSummary.swift). Keyed by day
        // with small granules, so a page's rows (recent ones, for the usual newest-first list) are
        // read from few granules. Plain MergeTree:
        // a resent or split batch adds another row, which the readers detect (more than one row for a
        // trace, or more span rows than distinct span ids) and then aggregate that trace from spans.
        let traceSummary = """
            CREATE TABLE IF NOT EXISTS \(target("trace_summary")) (
                project_id \(lc()),
                t_day Date,
                t_hash UInt64,
                trace_id String\(ids),
                t_last_day Date,
                t_start Int64,
                t_end Int64,
                t_last Int64,
                t_spans UInt32,
                t_distinct UInt32,
                t_llm UInt32,
                t_errors UInt32,
                t_in Int64,
                t_out Int64,
                t_cost Int64,
                t_cost_upper Int64,
                t_cost_unknown UInt32,
                t_name String\(ids),
                t_service String\(ids),
                t_user String\(ids),
                t_session String\(ids),
                t_models Array(String),
                t_services Array(String),
                t_providers Array(String),
                t_tags Array(String),
                t_users Array(String),
                t_sessions Array(String)\(m ? ",\n    t_retention UInt16" : "")
            ) ENGINE = \(engine("trace_summary", "MergeTree"))
            PARTITION BY toYYYYMM(t_day)
            ORDER BY (project_id, t_day, t_hash)\(m ? "\nTTL toDateTime(intDiv(t_start, 1000000000)) + toIntervalDay(t_retention) WHERE t_retention > 0" : "")
            SETTINGS index_granularity = 256
            """
        // In cluster mode the view is on each shard's local tables: the spans a shard receives feed its
        // own summary rows (the same trace, so the same shard).
        let summaryView = "CREATE MATERIALIZED VIEW IF NOT EXISTS \(q).trace_summary_mv\(onCluster) TO \(local("trace_summary")) AS \(traceSummarySelect(from: local("spans")))"
        let summaryBackfill = "INSERT INTO \(q).trace_summary (\(Self.traceSummaryColumns(modern: m))) \(traceSummarySelect(from: "\(q).spans"))"
        // Sharding keys: by trace for everything a trace query or a per-trace aggregate reads
        // (spans, its index, its summary rows, its scores), so a trace lives on one shard and
        // per-shard FINAL, argMin and `IN` subqueries on local tables are exact; by batch for the
        // rollups and the ledger, so a resent batch's rows meet their first copies on one shard.
        return [
            (1, "spans, rollups, scores and the batch ledger",
             [spans] + distributed("spans", by: byTrace) + [rollups] + distributed("rollups", by: "cityHash64(batch_id)")
                + [scores] + distributed("scores", by: byTrace) + [batches] + distributed("batches", by: "cityHash64(batch_id)")),
            (2, "trace_index: the days of each trace, backfilled from spans", [traceIndex] + distributed("trace_index", by: byTrace) + unlessCluster(backfill)),
            // The view first, then the backfill: spans inserted in between get two rows (harmless).
            (3, "trace_summary: per-trace rows fed by a materialized view on spans, backfilled",
             [traceSummary] + distributed("trace_summary", by: byTrace) + [summaryView] + unlessCluster(summaryBackfill)),
            // The view again, its cost sums saturating instead of wrapping (rows summarized before stay).
            // A cluster got this view from migration 3; dropping it there would lose the summary rows of
            // inserts made meanwhile by another backend.
            (4, "trace_summary_mv: cost sums saturate", cluster == nil ? ["DROP TABLE IF EXISTS \(q).trace_summary_mv", summaryView] : []),
        ]
    }
}
