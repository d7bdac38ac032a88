import EvalForgeModel
import Foundation
import Synchronization

/// The traces of a project that have more than one `trace_summary` row (spans of the trace in several
/// inserts, a resent batch, a split insert) or a row with more span rows than distinct span ids: their
/// summary rows are not the trace, so the trace list aggregates them from spans. Kept per project with
/// the table's active parts and the project's summary rows per day. A request first lists the parts
/// (parts never change: the same parts hold the same rows); when they differ it counts the rows per
/// day and re-checks only the days whose count changed. Exact because summary rows are only added
/// between deletes: a new row raises its day's count, and a trace that gains a row has that row in a
/// changed day, where the check finds it. `deleteExpired` forgets the project; a day whose count went
/// down (TTL, another backend's delete) makes the whole project be checked again, and another
/// backend's delete also reaches here through `forgetCachedAggregates` (docs/scaling.md).
final class MultiRowTraceCache: Sendable {
    /// One multi-row trace, merged over its summary rows: the idempotent values are exact (start,
    /// end, error flag, sets), the cost is an upper bound (positive costs of every row, copies
    /// included); counts and totals come from spans.
    struct Trace: Sendable {
        var id: String
        /// First and last day (day numbers of the spans' `toDate(start)`) of the trace's summary rows.
        var firstDay: Int
        var lastDay: Int
        var start: Int64
        var end: Int64
        var costUpper: Int64
        var error: Bool
        var models: [String], services: [String], providers: [String], tags: [String], users: [String], sessions: [String]
    }

    struct Entry: Sendable {
        /// The table's active parts when `dayRows` was read: parts never change, so the same parts
        /// mean the same rows.
        var parts: [String]
        var dayRows: [UInt32: UInt64]
        /// By `t_hash`: the traces with that hash (one, unless two ids collide).
        var traces: [UInt64: [Trace]]
    }

    /// Most multi-row traces remembered per project; a project with more is checked in full each time.
    let capacity: Int
    private let state = Mutex<[String: Entry]>([:])

    init(capacity: Int = 200_000) {
        self.capacity = capacity
    }

    func entry(project: String) -> Entry? { state.withLock { $0[project] } }

    func store(project: String, _ e: Entry) {
        state.withLock { s in
            if e.traces.count > capacity { s[project] = nil } else { s[project] = e }
        }
    }

    func forget(project: String) {
        _ = state.withLock { $0.removeValue(forKey: project) }
    }

    func forgetAll() {
        state.withLock { $0.removeAll() }
    }
}

extension ClickHouseStore {
    /// Forgets the merged metric hours and the multi-row trace sets of every project: telemetry was
    /// deleted, possibly by another backend (`CacheGeneration.telemetryDeletes`). The next query
    /// merges and checks again (what a restarted backend does).
    public func forgetCachedAggregates() {
        rollupHours.forgetAll()
        multiRows.forgetAll()
    }
}

extension ClickHouseStore {
    /// Multi-row traces handled next to the summary rows per request; with more, the trace list falls
    /// back to aggregating the project's spans.
    static let multiRowLimit = 2_000

    /// `t_hash IN (…)` (or `NOT IN`) of trace hashes: integers the server computed, written as literals.
    static func hashCondition(_ hashes: some Collection<UInt64>, negated: Bool = false) -> String {
        "t_hash \(negated ? "NOT IN" : "IN") (" + hashes.sorted().map { String($0) }.joined(separator: ",") + ")"
    }

    /// The project's multi-row traces by `t_hash` (see `MultiRowTraceCache`).
    func multiRowTraces(projectID: String) async throws -> [UInt64: [MultiRowTraceCache.Trace]] {
        var parts: [String] = []
        let old = multiRows.entry(project: projectID)
        if flavor.cluster == nil {
            var pv = values()
            var pr = try await http.query("SELECT name FROM system.parts WHERE database = \(pv.string(db)) AND table = 'trace_summary' AND active ORDER BY name", parameters: pv.parameters)
            while !pr.isAtEnd { parts.append(try pr.string()) }
            if let old, old.parts == parts { return old.traces }
        }
        // Cluster mode: the parts are on the shards (part names repeat across shards, replicas may
        // differ), so there is no parts shortcut; the per-day counts below decide every time.
        var v = values()
        let p = v.string(projectID)
        var r = try await http.query("SELECT toUInt32(t_day), toUInt64(count()) FROM \(db).trace_summary WHERE project_id = \(p) GROUP BY t_day", parameters: v.parameters)
        var counts: [UInt32: UInt64] = [:]
        while !r.isAtEnd {
            let day = try r.integer(UInt32.self)
            counts[day] = try r.uint64()
        }
        var traces: [UInt64: [MultiRowTraceCache.Trace]] = [:]
        var changed: [UInt32]?  // nil: every day
        if let old, old.dayRows.allSatisfy({ day, n in (counts[day] ?? 0) >= n }) {
            let days = counts.filter { old.dayRows[$0.key] != $0.value }.map(\.key)
            if days.isEmpty {
                multiRows.store(project: projectID, .init(parts: parts, dayRows: counts, traces: old.traces))
                return old.traces
            }
            changed = days
            traces = old.traces
        }
        var w = values()
        let q = w.string(projectID)
        var cond = "project_id = \(q)"
        if let changed {
            cond += " AND t_hash IN (SELECT t_hash FROM \(db).trace_summary WHERE project_id = \(q) AND \(dayCondition(changed.map { Int($0) }, column: "t_day")))"
        }
        let sql = """
            SELECT t_hash, trace_id, toUInt32(min(t_day)), toUInt32(max(t_last_day)), min(t_start), max(t_end), \(ClickHouseFlavor.saturatingSum("t_cost_upper")), toUInt8(max(t_errors) > 0),
                groupUniqArrayArray(t_models), groupUniqArrayArray(t_services), groupUniqArrayArray(t_providers), groupUniqArrayArray(t_tags),
                groupUniqArrayArray(t_users), groupUniqArrayArray(t_sessions)
            FROM \(db).trace_summary
            WHERE project_id = \(q) AND t_hash IN (
                SELECT t_hash FROM \(db).trace_summary WHERE \(cond)
                GROUP BY t_hash HAVING count() > 1 OR max(t_spans != t_distinct) > 0)
            GROUP BY t_hash, trace_id
            """
        var m = try await http.query(sql, parameters: w.parameters)
        var found: [UInt64: [MultiRowTraceCache.Trace]] = [:]
        while !m.isAtEnd {
            let hash = try m.uint64()
            let t = MultiRowTraceCache.Trace(
                id: try m.string(), firstDay: Int(try m.integer(UInt32.self)), lastDay: Int(try m.integer(UInt32.self)), start: try m.int64(), end: try m.int64(),
                costUpper: try m.int64(), error: try m.integer(UInt8.self) != 0, models: try m.strings(), services: try m.strings(), providers: try m.strings(),
                tags: try m.strings(), users: try m.strings(), sessions: try m.strings())
            found[hash, default: []].append(t)
        }
        for (hash, list) in found { traces[hash] = list }
        multiRows.store(project: projectID, .init(parts: parts, dayRows: counts, traces: traces))
        return traces
    }

    /// One page of traces (limit + 1 rows at most, each with its sort key) from `trace_summary` rows,
    /// leaving out the traces in `excluding` (multi-row hashes) and rows with duplicate span rows:
    /// what remains is one row per trace holding the trace's exact values, so every filter is a
    /// row-level condition and the sort needs no aggregation.
    func summaryTraceList(_ f: TraceFilter, key: TraceListKey, after: (key: Int64, id: String)?, limit: Int, excluding: some Collection<UInt64>) async throws -> [(TraceSummary, Int64)] {
        var v = values()
        var cond = ["project_id = \(v.string(f.projectID))", "t_spans = t_distinct"]
        if !excluding.isEmpty { cond.append(Self.hashCondition(excluding, negated: true)) }
        if let x = f.service { cond.append("has(t_services, \(v.string(x)))") }
        if let x = f.provider { cond.append("has(t_providers, \(v.string(x)))") }
        if let x = f.model { cond.append("has(t_models, \(v.string(x)))") }
        if let x = f.tag { cond.append("has(t_tags, \(v.string(x)))") }
        if let x = f.from { cond.append("t_start >= \(x)") }
        if let x = f.to { cond.append("t_start < \(x)") }
        switch f.status {
        case .error?: cond.append("t_errors > 0")
        case .ok?, .unset?: cond.append("t_errors = 0")
        case nil: break
        }
        if let x = f.userID { cond.append("t_user = \(v.string(x))") }
        if let x = f.sessionID { cond.append("t_session = \(v.string(x))") }
        if let x = f.minCostUSD { cond.append("t_cost >= \(try Self.minCostPicos(x))") }
        if let x = f.minDurationNanos { cond.append("t_end - t_start >= \(x)") }
        if let c = try scoreCondition(f, &v) { cond.append(c) }
        if let c = textTraceCondition(f, &v) { cond.append(c) }
        let column = switch key.column {
        case "t_duration": "(t_end - t_start)"
        default: key.column
        }
        let dir = key.descending ? "DESC" : "ASC"
        let op = key.descending ? "<" : ">"
        // 1. The first `limit` rows after the cursor's key, as (key, hash): the filter, key and hash
        //    columns only; no trace ids are read or sorted for the whole project.
        var bounded = cond
        if let after { bounded.append("\(column) \(op) \(after.key)") }
        var r = try await http.query("""
            SELECT toInt64(\(column)) AS k, t_hash FROM \(db).trace_summary
            WHERE \(bounded.joined(separator: " AND "))
            ORDER BY k \(dir) LIMIT \(limit)
            """, parameters: v.parameters)
        var hashes = Set<UInt64>()
        var last: Int64?
        var count = 0
        while !r.isAtEnd {
            last = try r.int64()
            hashes.insert(try r.uint64())
            count += 1
        }
        // 2. The page: those rows, the rows tied with the last key (the order among them is by id)
        //    and the cursor key's ties; all columns are read only for the granules holding them
        //    (granules of 256 rows in day order: for a newest-first list, the last days' granules).
        var wanted: [String] = []
        if !hashes.isEmpty { wanted.append(Self.hashCondition(hashes)) }
        if count == limit, let last { wanted.append("\(column) = \(last)") }
        if let after { wanted.append("\(column) = \(after.key)") }
        guard !wanted.isEmpty else { return [] }
        var prewhere = "(" + wanted.joined(separator: " OR ") + ")"
        if key.column == "t_start", count == limit, let last {
            // Every row wanted starts at or after (before, ascending) the last key: the table key
            // narrows to those days (a day of margin for the server's time zone).
            let day = "toDate(toDateTime(\(last / 1_000_000_000)))"
            prewhere += key.descending ? " AND t_day >= \(day) - 1" : " AND t_day <= \(day) + 1"
        }
        var exact = cond
        if let after {
            exact.append("(\(column) \(op) \(after.key) OR (\(column) = \(after.key) AND trace_id \(op) \(v.string(after.id))))")
        }
        let sql = """
            SELECT trace_id, toString(t_name), toString(t_service), t_start, t_end - t_start, toUInt64(t_spans), toUInt64(t_llm), toUInt64(t_errors),
                t_in, t_out, t_cost, toUInt64(t_cost_unknown), toString(t_user), toString(t_session),
                arrayMap(x -> toString(x), t_tags), arrayMap(x -> toString(x), t_models), toInt64(\(column)) AS k
            FROM \(db).trace_summary
            PREWHERE \(prewhere)
            WHERE \(exact.joined(separator: " AND "))
            ORDER BY k \(dir), trace_id \(dir)
            LIMIT \(limit)
            """
        var full = try await http.query(sql, parameters: v.parameters)
        return try Self.traceRows(&full)
    }

    /// Whether a multi-row trace can be on the page: the filters it can fail from its merged summary
    /// rows (score and text filters are left to the query), the cursor on exact keys, and the page's
    /// boundary key `bound` (the single-row page's last key when that page is full).
    static func mayList(_ t: MultiRowTraceCache.Trace, _ f: TraceFilter, key: TraceListKey, after: (key: Int64, id: String)?, bound: Int64?) throws -> Bool {
        if let x = f.service, !t.services.contains(x) { return false }
        if let x = f.provider, !t.providers.contains(x) { return false }
        if let x = f.model, !t.models.contains(x) { return false }
        if let x = f.tag, !t.tags.contains(x) { return false }
        if let x = f.from, t.start < x { return false }
        if let x = f.to, t.start >= x { return false }
        switch f.status {
        case .error?: if !t.error { return false }
        case .ok?, .unset?: if t.error { return false }
        case nil: break
        }
        if let x = f.userID, !t.users.contains(x) { return false }
        if let x = f.sessionID, !t.sessions.contains(x) { return false }
        if let x = f.minCostUSD, t.costUpper < (try minCostPicos(x)) { return false }
        if let x = f.minDurationNanos, t.end - t.start < x { return false }
        let k: Int64 = switch key.column {
        case "t_start": t.start
        case "t_duration": t.end - t.start
        default: t.costUpper  // an upper bound: no cursor test, and the bound only from above
        }
        if key.column == "t_cost" {
            if let bound, k < bound { return false }
            return true
        }
        if let after, !key.precedes((after.key, after.id), (k, t.id)) { return false }
        if let bound, key.precedes((bound, ""), (k, t.id)) && k != bound { return false }
        return true
    }
}
