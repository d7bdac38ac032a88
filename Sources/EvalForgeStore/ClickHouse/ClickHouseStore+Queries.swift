import EvalForgeModel
import Foundation

extension ClickHouseStore {
    static func checkLimit(_ limit: Int) throws {
        guard (1...10_000).contains(limit) else { throw StoreError.invalidArgument("limit must be between 1 and 10000, got \(limit)") }
    }

    /// Cost in picodollars: integer sums are exact and independent of summation order, so sorting
    /// and keyset cursors on cost are stable.
    static let picos = 1_000_000_000_000.0

    /// `trace_id IN (traces with a score named f.scoreName within [minScore, maxScore])`, or nil.
    func scoreCondition(_ f: TraceFilter, _ v: inout SQLValues) throws -> String? {
        guard let name = f.scoreName else { return nil }
        var c = "trace_id IN (SELECT trace_id FROM \(db).scores FINAL WHERE project_id = \(v.string(f.projectID)) AND name = \(v.string(name))"
        if let lo = f.minScore { c += " AND value >= \(try ClickHouseSQL.double(lo, "minScore"))" }
        if let hi = f.maxScore { c += " AND value <= \(try ClickHouseSQL.double(hi, "maxScore"))" }
        return c + ")"
    }

    /// A span's input or output contains `f.text` (case-insensitive), or nil without text.
    func textCondition(_ f: TraceFilter, _ v: inout SQLValues) -> String? {
        guard let text = f.text, !text.isEmpty else { return nil }
        let pattern = v.string("%" + ClickHouseSQL.likeEscape(text.lowercased()) + "%")
        return "(lowerUTF8(input) LIKE \(pattern) OR lowerUTF8(output) LIKE \(pattern))"
    }

    /// `trace_id IN (traces with a span containing f.text)`, or nil without text. Every span of a
    /// trace that starts at or after `f.from` does too, so the search skips the days before it.
    func textTraceCondition(_ f: TraceFilter, _ v: inout SQLValues) -> String? {
        guard let c = textCondition(f, &v) else { return nil }
        let since = f.from.map { " AND start >= toDateTime(\(max(0, $0 / 1_000_000_000)))" } ?? ""
        return "trace_id IN (SELECT trace_id FROM \(db).spans WHERE project_id = \(v.string(f.projectID))\(since) AND \(c))"
    }

    static func minCostPicos(_ x: Double) throws -> Int64 {
        guard x.isFinite else { throw StoreError.invalidArgument("minCostUSD must be a finite number") }
        return Int64((x * Self.picos).rounded(.up).clamped(-9e18, 9e18))
    }

    /// One row per trace (spans deduplicated), with the trace-level columns `t_*` and `f_*` helpers
    /// for the filters: of the whole project (spans FINAL), or of just the traces `only` (the spans of
    /// their days, PREWHERE on the key, one row per span key as in `trace(projectID:traceID:)`).
    func traceAggregates(projectID: String, filter f: TraceFilter?, only: [MultiRowTraceCache.Trace]? = nil, _ v: inout SQLValues) throws -> String {
        let s = flavor.startNanos
        var extra: [String] = []
        var helpers: [String] = []
        let p = v.string(projectID)
        if let f {
            if let x = f.service { helpers.append("countIf(service = \(v.string(x))) > 0 AS f_service") }
            if let x = f.provider { helpers.append("countIf(provider = \(v.string(x))) > 0 AS f_provider") }
            if let x = f.model { helpers.append("countIf(model = \(v.string(x))) > 0 AS f_model") }
            if let x = f.tag { helpers.append("countIf(has(tags, \(v.string(x)))) > 0 AS f_tag") }
            if let c = try scoreCondition(f, &v) { extra.append(c) }
            if let c = textTraceCondition(f, &v) { extra.append(c) }
        }
        let source: String
        if let only {
            var days = Set<Int>()
            for t in only { for d in t.firstDay...max(t.firstDay, t.lastDay) { days.insert(d) } }
            let columns = "trace_id, span_id, parent_span_id, start, \(flavor.modern ? "" : "start_nanos, ")duration_ns, service, name, status, provider, model, input_tokens, output_tokens, cost_usd, user_id, session_id, tags"
            source = """
                (SELECT \(columns) FROM \(db).spans
                PREWHERE project_id = \(p) AND \(dayCondition(Array(days))) AND \(v.inList("trace_id", only.map(\.id)))\(extra.isEmpty ? "" : "\nWHERE " + extra.joined(separator: " AND "))
                LIMIT 1 BY toDate(start), trace_id, span_id)
                """
        } else {
            source = "\(db).spans FINAL WHERE project_id = \(p)\(extra.map { " AND " + $0 }.joined())"
        }
        let root = "parent_span_id = ''"
        return """
            SELECT trace_id AS t_id,
                countIf(\(root)) > 0 AS t_has_root,
                if(t_has_root, argMinIf(name, \(s), \(root)), argMin(name, \(s))) AS t_name,
                if(t_has_root, argMinIf(service, \(s), \(root)), argMin(service, \(s))) AS t_service,
                min(\(s)) AS t_start, max(\(s) + duration_ns) AS t_end, t_end - t_start AS t_duration,
                count() AS t_spans, countIf(model != '' OR provider != '') AS t_llm, countIf(status = 2) AS t_errors,
                sum(input_tokens) AS t_in, sum(output_tokens) AS t_out,
                \(ClickHouseFlavor.saturatingSum(ClickHouseFlavor.costPicos)) AS t_cost,
                countIf((model != '' OR provider != '') AND isNull(cost_usd)) AS t_cost_unknown,
                if(anyIf(user_id, \(root) AND user_id != '') != '', anyIf(user_id, \(root) AND user_id != ''), anyIf(user_id, user_id != '')) AS t_user,
                if(anyIf(session_id, \(root) AND session_id != '') != '', anyIf(session_id, \(root) AND session_id != ''), anyIf(session_id, session_id != '')) AS t_session,
                arraySort(groupUniqArrayArray(tags)) AS t_tags,
                arraySort(groupUniqArrayIf(model, model != '')) AS t_models\(helpers.map { ",\n    " + $0 }.joined())
            FROM \(source)
            GROUP BY trace_id
            """
    }

    /// The sort of a trace list: its integer key column and direction (the trace id breaks ties).
    struct TraceListKey {
        var column: String
        var descending: Bool

        init(_ sort: TraceSort) {
            (column, descending) = switch sort {
            case .startDesc: ("t_start", true)
            case .startAsc: ("t_start", false)
            case .costDesc: ("t_cost", true)
            case .durationDesc: ("t_duration", true)
            }
        }

        /// True when (key a, id a) comes before (key b, id b); ids compare bytewise, as on the server.
        func precedes(_ a: (Int64, String), _ b: (Int64, String)) -> Bool {
            if a.0 != b.0 { return descending ? a.0 > b.0 : a.0 < b.0 }
            return descending ? b.1.utf8.lexicographicallyPrecedes(a.1.utf8) : a.1.utf8.lexicographicallyPrecedes(b.1.utf8)
        }
    }

    /// The trace list: single-row traces straight from `trace_summary` (row-level conditions, no
    /// aggregation), the few traces with several summary rows aggregated from their spans, merged by
    /// the sort key. Same traces, order, totals and cursors as aggregating all spans
    /// (`aggregatedTraceList`), which is the fallback for projects with many multi-row traces.
    public func listTraces(_ filter: TraceFilter, sort: TraceSort, limit: Int, cursor: String?) async throws -> Page<TraceSummary> {
        try Self.checkLimit(limit)
        let fingerprint = Cursor.fingerprint(["traces", sort.rawValue, Cursor.fingerprint(filter)])
        let key = TraceListKey(sort)
        var after: (key: Int64, id: String)?
        if let cursor {
            let c = try Cursor.decode(cursor, query: fingerprint, count: 2)
            guard let k = Int64(c.after[0]) else { throw StoreError.invalidCursor("invalid cursor: not a cursor returned by this API") }
            after = (k, c.after[1])
        }
        if let x = filter.minCostUSD { _ = try Self.minCostPicos(x) }
        var rows: [(TraceSummary, Int64)]
        let multi = try await multiRowTraces(projectID: filter.projectID)
        if multi.count > Self.multiRowLimit {
            rows = try await aggregatedTraceList(filter, key: key, after: after, limit: limit + 1, only: nil)
        } else {
            let one = try await summaryTraceList(filter, key: key, after: after, limit: limit + 1, excluding: multi.keys)
            if Set(one.map(\.0.traceID)).count != one.count {
                // A trace gained a summary row since the check: start over from the spans.
                multiRows.forget(project: filter.projectID)
                traceListRestarts.withLock { $0 += 1 }
                rows = try await aggregatedTraceList(filter, key: key, after: after, limit: limit + 1, only: nil)
            } else {
                // Multi-row traces that can be on the page (by their merged summary rows, against
                // the single-row page's last key), aggregated from their spans.
                let bound = one.count == limit + 1 ? one.last?.1 : nil
                let candidates = try multi.values.joined().filter { try Self.mayList($0, filter, key: key, after: after, bound: bound) }
                let several = candidates.isEmpty ? [] : try await aggregatedTraceList(filter, key: key, after: after, limit: limit + 1, only: candidates)
                rows = one + several
                rows.sort { key.precedes(($0.1, $0.0.traceID), ($1.1, $1.0.traceID)) }
            }
        }
        var items = rows.map(\.0)
        var next: String?
        if items.count > limit {
            items.removeLast(items.count - limit)
            next = Cursor(query: fingerprint, after: [String(rows[limit - 1].1), items[limit - 1].traceID]).encoded()
        }
        return Page(items: items, nextCursor: next)
    }

    /// Up to `limit` traces with their sort keys, aggregated from spans: the whole project, or the
    /// traces `only`.
    func aggregatedTraceList(_ filter: TraceFilter, key: TraceListKey, after: (key: Int64, id: String)?, limit: Int, only: [MultiRowTraceCache.Trace]?) async throws -> [(TraceSummary, Int64)] {
        var v = values()
        let inner = try traceAggregates(projectID: filter.projectID, filter: filter, only: only, &v)
        var cond: [String] = []
        if filter.service != nil { cond.append("f_service") }
        if filter.provider != nil { cond.append("f_provider") }
        if filter.model != nil { cond.append("f_model") }
        if filter.tag != nil { cond.append("f_tag") }
        if let x = filter.from { cond.append("t_start >= \(x)") }
        if let x = filter.to { cond.append("t_start < \(x)") }
        switch filter.status {
        case .error?: cond.append("t_errors > 0")
        case .ok?, .unset?: cond.append("t_errors = 0")
        case nil: break
        }
        if let x = filter.userID { cond.append("t_user = \(v.string(x))") }
        if let x = filter.sessionID { cond.append("t_session = \(v.string(x))") }
        if let x = filter.minCostUSD { cond.append("t_cost >= \(try Self.minCostPicos(x))") }
        if let x = filter.minDurationNanos { cond.append("t_duration >= \(x)") }
        let column = key.column
        if let after {
            let op = key.descending ? "<" : ">"
            cond.append("(\(column) \(op) \(after.key) OR (\(column) = \(after.key) AND t_id \(op) \(v.string(after.id))))")
        }
        let dir = key.descending ? "DESC" : "ASC"
        let sql = """
            SELECT t_id, toString(t_name), toString(t_service), toInt64(t_start), toInt64(t_duration), toUInt64(t_spans), toUInt64(t_llm), toUInt64(t_errors),
                toInt64(t_in), toInt64(t_out), toInt64(t_cost), toUInt64(t_cost_unknown), toString(t_user), toString(t_session),
                arrayMap(x -> toString(x), t_tags), arrayMap(x -> toString(x), t_models), toInt64(\(column))
            FROM (\(inner))
            \(cond.isEmpty ? "" : "WHERE " + cond.joined(separator: " AND "))
            ORDER BY \(column) \(dir), t_id \(dir)
            LIMIT \(limit)
            """
        var r = try await http.query(sql, parameters: v.parameters)
        return try Self.traceRows(&r)
    }

    /// Rows of (id, name, service, start, duration, spans, llm calls, errors, tokens in/out, cost in
    /// picodollars, cost-unknown spans, user, session, tags, models, sort key).
    static func traceRows(_ r: inout RowBinaryReader) throws -> [(TraceSummary, Int64)] {
        var out: [(TraceSummary, Int64)] = []
        while !r.isAtEnd {
            let t = TraceSummary(
                traceID: try r.string(), name: try r.string(), service: try r.string(), startUnixNanos: try r.int64(), durationNanos: try r.int64(),
                spanCount: Int(clamping: try r.uint64()), llmCalls: Int(clamping: try r.uint64()), errorCount: Int(clamping: try r.uint64()),
                inputTokens: try r.int64(), outputTokens: try r.int64(), costUSD: Double(try r.int64()) / Self.picos,
                costUnknownSpans: Int(clamping: try r.uint64()), userID: try r.string(), sessionID: try r.string(), tags: try r.strings(), models: try r.strings())
            out.append((t, try r.int64()))
        }
        return out
    }

    func spans(where cond: String, orderLimit: String, _ v: SQLValues) async throws -> [SpanRow] {
        var r = try await http.query("SELECT \(flavor.spanSelectColumns) FROM \(db).spans FINAL WHERE \(cond) \(orderLimit)", parameters: v.parameters)
        var out: [SpanRow] = []
        while !r.isAtEnd { out.append(try ClickHouseRowCoding.span(&r)) }
        return out
    }

    /// Spans matching `cond` ordered by (start, span id), at most `limit`, without reading the whole
    /// project: the spans table is sorted by day, so the keys are read day window by day window
    /// (1, 2, 4, … days from the first matching day, with FINAL and only the key columns), then the
    /// full rows of just those keys (one window of days, PREWHERE on the start range, one row per
    /// span key).
    func spansInStartOrder(projectID: String, where cond: String, limit: Int, _ v: SQLValues) async throws -> [SpanRow] {
        var r = try await http.query("SELECT count(), toUInt32(toDate(min(start))), toUInt32(toDate(max(start))) FROM \(db).spans WHERE \(cond)", parameters: v.parameters)
        guard try r.uint64() > 0 else { return [] }
        var day = Int(try r.integer(UInt32.self))
        let firstDay = day
        let lastDay = Int(try r.integer(UInt32.self))
        var keys: [(trace: String, span: String, start: Int64)] = []
        var width = 1
        while keys.count < limit && day <= lastDay {
            let window = "toDate(start) >= toDate('\(Self.isoDay(day))') AND toDate(start) < toDate('\(Self.isoDay(day + width))')"
            var k = try await http.query("SELECT trace_id, span_id, \(flavor.startNanos) AS start_ns FROM \(db).spans FINAL WHERE \(cond) AND \(window) ORDER BY start_ns, span_id LIMIT \(limit - keys.count)", parameters: v.parameters)
            while !k.isAtEnd { keys.append((try k.string(), try k.string(), try k.int64())) }
            day += width
            width = min(width * 2, 64)
        }
        guard let first = keys.first, let last = keys.last else { return [] }
        var w = values()
        let p = w.string(projectID)
        let lo = first.start / 1_000_000_000, hi = last.start / 1_000_000_000
        let sql = """
            SELECT \(flavor.spanSelectColumns) FROM \(db).spans
            PREWHERE project_id = \(p) AND toDate(start) >= toDate('\(Self.isoDay(firstDay))') AND toDate(start) < toDate('\(Self.isoDay(day))')
                AND start >= toDateTime(\(lo)) AND start < toDateTime(\(hi + 1)) AND \(w.inList("span_id", keys.map(\.span)))
            LIMIT 1 BY toDate(start), trace_id, span_id
            """
        var rows = try await http.query(sql, parameters: w.parameters)
        var byKey: [String: SpanRow] = [:]
        while !rows.isAtEnd {
            let row = try ClickHouseRowCoding.span(&rows)
            byKey[row.traceID + "/" + row.spanID] = row
        }
        return keys.compactMap { byKey[$0.trace + "/" + $0.span] }
    }

    public func countSpans(projectID: String, fromUnixNanos: Int64?, toUnixNanos: Int64?) async throws -> Int {
        var v = values()
        var cond = ["project_id = \(v.string(projectID))"]
        if let x = fromUnixNanos { cond.append("\(flavor.startNanos) >= \(x)") }
        if let x = toUnixNanos { cond.append("\(flavor.startNanos) < \(x)") }
        var r = try await http.query("SELECT count() FROM \(db).spans FINAL WHERE \(cond.joined(separator: " AND "))", parameters: v.parameters)
        return Int(clamping: try r.uint64())
    }

    /// The days (UTC day numbers) `trace_index` has for a trace; empty when it has none (spans
    /// written before the index existed and not backfilled, or no such trace).
    func traceDays(projectID: String, traceID: String) async throws -> [Int] {
        var v = values()
        var r = try await http.query("SELECT DISTINCT toUInt32(day) FROM \(db).trace_index WHERE project_id = \(v.string(projectID)) AND trace_id = \(v.string(traceID))", parameters: v.parameters)
        var out: [Int] = []
        while !r.isAtEnd { out.append(Int(try r.integer(UInt32.self))) }
        return out
    }

    /// A condition on `toDate(start)` (the spans table's second key column, so the primary key
    /// narrows to the days' granules): `days` are day numbers in `dayZone`, as trace_index has them.
    func dayCondition(_ days: [Int], column: String = "toDate(start)") -> String {
        "\(column) IN (" + Set(days).sorted().map { "toDate('\(Self.isoDay($0))')" }.joined(separator: ", ") + ")"
    }

    /// "YYYY-MM-DD" of a Unix day number (UTC).
    static func isoDay(_ day: Int) -> String {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone.gmt
        let d = c.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(day) * 86400))
        return String(format: "%04d-%02d-%02d", d.year ?? 1970, d.month ?? 1, d.day ?? 1)
    }

    public func trace(projectID: String, traceID: String) async throws -> [SpanRow] {
        var v = values()
        let p = v.string(projectID), t = v.string(traceID)
        let cond = "project_id = \(p) AND trace_id = \(t)"
        // One round trip: the trace's days from trace_index as a set the key analysis uses. FINAL on
        // 18.16 reads every granule of the days (~50k rows for one day of a busy project); PREWHERE on
        // the key reads the trace's granules only, and LIMIT 1 BY the table's key (day, span; the
        // trace is fixed) drops the copies FINAL would have collapsed.
        let sql = """
            SELECT \(flavor.spanSelectColumns) FROM \(db).spans
            PREWHERE \(cond) AND toDate(start) IN (SELECT day FROM \(db).trace_index WHERE \(cond))
            ORDER BY start_ns, span_id LIMIT 1 BY toDate(start), span_id
            """
        var r = try await http.query(sql, parameters: v.parameters)
        var out: [SpanRow] = []
        while !r.isAtEnd { out.append(try ClickHouseRowCoding.span(&r)) }
        guard out.isEmpty else { return out }
        // No such trace, or spans written before trace_index existed and not backfilled.
        guard try await traceDays(projectID: projectID, traceID: traceID).isEmpty else { return [] }
        var w = values()
        return try await spans(where: "project_id = \(w.string(projectID)) AND trace_id = \(w.string(traceID))", orderLimit: "ORDER BY start_ns, span_id", w)
    }

    public func listSpans(_ filter: SpanFilter, limit: Int, cursor: String?) async throws -> Page<SpanRow> {
        try Self.checkLimit(limit)
        let fingerprint = Cursor.fingerprint(["spans", Cursor.fingerprint(filter)])
        let f = filter.trace
        var v = values()
        var cond = ["project_id = \(v.string(f.projectID))"]
        let s = flavor.startNanos
        if let x = f.from { cond.append("\(s) >= \(x)") }
        if let x = f.to { cond.append("\(s) < \(x)") }
        if let x = f.service { cond.append("service = \(v.string(x))") }
        if let x = f.provider { cond.append("provider = \(v.string(x))") }
        if let x = f.model { cond.append("model = \(v.string(x))") }
        switch f.status {
        case .error?: cond.append("status = 2")
        case .ok?, .unset?: cond.append("status != 2")
        case nil: break
        }
        if let x = f.userID { cond.append("user_id = \(v.string(x))") }
        if let x = f.sessionID { cond.append("session_id = \(v.string(x))") }
        if let x = f.tag { cond.append("has(tags, \(v.string(x)))") }
        if let x = f.minCostUSD { cond.append("cost_usd >= \(try ClickHouseSQL.double(x, "minCostUSD"))") }
        if let x = f.minDurationNanos { cond.append("duration_ns >= \(x)") }
        if let c = try scoreCondition(f, &v) { cond.append(c) }
        if let c = textCondition(f, &v) { cond.append(c) }
        if filter.llmCallsOnly { cond.append("(model != '' OR provider != '')") }
        if !filter.traceIDs.isEmpty { cond.append(v.inList("trace_id", filter.traceIDs)) }
        if let cursor {
            let c = try Cursor.decode(cursor, query: fingerprint, count: 2)
            guard let start = Int64(c.after[0]) else { throw StoreError.invalidCursor("invalid cursor: not a cursor returned by this API") }
            cond.append("(\(s) > \(start) OR (\(s) = \(start) AND span_id > \(v.string(c.after[1]))))")
        }
        // The day-by-day walk serves 18.16 (no skipping indexes); current servers read in one query
        // (on them the walk lost rows: to be investigated before enabling it there).
        var items = flavor.modern
            ? try await spans(where: cond.joined(separator: " AND "), orderLimit: "ORDER BY start_ns, span_id LIMIT \(limit + 1)", v)
            : try await spansInStartOrder(projectID: f.projectID, where: cond.joined(separator: " AND "), limit: limit + 1, v)
        var next: String?
        if items.count > limit {
            items.removeLast(items.count - limit)
            if let last = items.last { next = Cursor(query: fingerprint, after: [String(last.startUnixNanos), last.spanID]).encoded() }
        }
        return Page(items: items, nextCursor: next)
    }

    /// Sessions or users: per-trace rows grouped by `column` (`t_session` or `t_user`), most recent first.
    private func groupedActivity(_ filter: SessionFilter, column: String, limit: Int, cursor: String?) async throws -> (rows: [ActivityRow], next: String?) {
        try Self.checkLimit(limit)
        let fingerprint = Cursor.fingerprint([column, Cursor.fingerprint(filter)])
        var v = values()
        var cond = ["\(column) != ''"]
        if let x = filter.userID { cond.append("t_user = \(v.string(x))") }
        // Per-trace rows: single-row traces from trace_summary, multi-row ones aggregated from spans
        // (or every trace from spans when a project has many multi-row traces).
        let multi = try await multiRowTraces(projectID: filter.projectID)
        let inner: String
        func columns(_ id: String) -> String {
            "toString(\(id)) AS u_id, toInt64(t_start) AS u_start, toInt64(t_end) AS u_end, toUInt64(t_llm) AS u_llm, toUInt64(t_errors) AS u_errors, "
                + "toInt64(t_in) AS u_in, toInt64(t_out) AS u_out, toInt64(t_cost) AS u_cost, toString(t_user) AS u_user, toString(t_session) AS u_session"
        }
        if multi.count > Self.multiRowLimit {
            inner = try traceAggregates(projectID: filter.projectID, filter: nil, &v)
        } else {
            var summary = ["project_id = \(v.string(filter.projectID))", "t_spans = t_distinct"] + cond
            if !multi.isEmpty { summary.append(Self.hashCondition(multi.keys, negated: true)) }
            var parts = ["SELECT \(columns("trace_id")) FROM \(db).trace_summary WHERE \(summary.joined(separator: " AND "))"]
            if !multi.isEmpty {
                parts.append("SELECT \(columns("t_id")) FROM (\(try traceAggregates(projectID: filter.projectID, filter: nil, only: Array(multi.values.joined()), &v)))")
            }
            inner = "SELECT u_id AS t_id, u_start AS t_start, u_end AS t_end, u_llm AS t_llm, u_errors AS t_errors, u_in AS t_in, u_out AS t_out, u_cost AS t_cost, "
                + "u_user AS t_user, u_session AS t_session FROM (" + parts.joined(separator: "\nUNION ALL\n") + ")"
        }
        var having: [String] = []
        if let x = filter.from { having.append("g_last >= \(x)") }
        if let x = filter.to { having.append("g_last < \(x)") }
        if let cursor {
            let c = try Cursor.decode(cursor, query: fingerprint, count: 2)
            guard let last = Int64(c.after[0]) else { throw StoreError.invalidCursor("invalid cursor: not a cursor returned by this API") }
            having.append("(g_last < \(last) OR (g_last = \(last) AND g_key < \(v.string(c.after[1]))))")
        }
        let sql = """
            SELECT toString(\(column)) AS g_key, toString(max(t_user)), toInt64(min(t_start)), toInt64(max(t_end)) AS g_last, toUInt64(count()),
                toUInt64(uniqExactIf(t_session, t_session != '')), toUInt64(sum(t_llm)), toUInt64(sum(t_errors)), toInt64(sum(t_in)), toInt64(sum(t_out)), \(ClickHouseFlavor.saturatingSum("t_cost"))
            FROM (\(inner))
            WHERE \(cond.joined(separator: " AND "))
            GROUP BY g_key
            \(having.isEmpty ? "" : "HAVING " + having.joined(separator: " AND "))
            ORDER BY g_last DESC, g_key DESC
            LIMIT \(limit + 1)
            """
        var r = try await http.query(sql, parameters: v.parameters)
        var rows: [ActivityRow] = []
        while !r.isAtEnd {
            rows.append(ActivityRow(key: try r.string(), user: try r.string(), first: try r.int64(), last: try r.int64(), traces: Int(clamping: try r.uint64()),
                                    sessions: Int(clamping: try r.uint64()), llmCalls: Int(clamping: try r.uint64()), errors: Int(clamping: try r.uint64()),
                                    inputTokens: try r.int64(), outputTokens: try r.int64(), cost: Double(try r.int64()) / Self.picos))
        }
        var next: String?
        if rows.count > limit {
            rows.removeLast(rows.count - limit)
            next = Cursor(query: fingerprint, after: [String(rows[limit - 1].last), rows[limit - 1].key]).encoded()
        }
        return (rows, next)
    }

    struct ActivityRow {
        var key: String, user: String, first: Int64, last: Int64, traces: Int, sessions: Int, llmCalls: Int, errors: Int
        var inputTokens: Int64, outputTokens: Int64, cost: Double
    }

    public func listSessions(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<SessionSummary> {
        let (rows, next) = try await groupedActivity(filter, column: "t_session", limit: limit, cursor: cursor)
        return Page(items: rows.map {
            SessionSummary(sessionID: $0.key, userID: $0.user, firstUnixNanos: $0.first, lastUnixNanos: $0.last, traceCount: $0.traces, llmCalls: $0.llmCalls,
                           errorCount: $0.errors, inputTokens: $0.inputTokens, outputTokens: $0.outputTokens, costUSD: $0.cost)
        }, nextCursor: next)
    }

    public func listUsers(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<UserSummary> {
        let (rows, next) = try await groupedActivity(filter, column: "t_user", limit: limit, cursor: cursor)
        return Page(items: rows.map {
            UserSummary(userID: $0.key, firstUnixNanos: $0.first, lastUnixNanos: $0.last, traceCount: $0.traces, sessionCount: $0.sessions, llmCalls: $0.llmCalls,
                        errorCount: $0.errors, inputTokens: $0.inputTokens, outputTokens: $0.outputTokens, costUSD: $0.cost)
        }, nextCursor: next)
    }

    public func sessionSpans(projectID: String, sessionID: String, limit: Int) async throws -> [SpanRow] {
        try Self.checkLimit(limit)
        var v = values()
        let p = v.string(projectID)
        let cond = "project_id = \(p) AND trace_id IN (SELECT trace_id FROM \(db).spans WHERE project_id = \(p) AND session_id = \(v.string(sessionID)))"
        return try await spans(where: cond, orderLimit: "ORDER BY start_ns, span_id LIMIT \(limit)", v)
    }

    private func scores(where cond: String, _ v: SQLValues) async throws -> [ScoreRow] {
        var r = try await http.query("SELECT \(ClickHouseRowCoding.scoreSelectColumns) FROM \(db).scores FINAL WHERE \(cond) ORDER BY created_ns, id", parameters: v.parameters)
        var out: [ScoreRow] = []
        while !r.isAtEnd { out.append(try ClickHouseRowCoding.score(&r)) }
        return out
    }

    public func scores(projectID: String, traceIDs: [String]) async throws -> [ScoreRow] {
        guard !traceIDs.isEmpty else { return [] }
        var v = values()
        let cond = "project_id = \(v.string(projectID)) AND \(v.inList("trace_id", Array(traceIDs.prefix(10_000))))"
        return try await scores(where: cond, v)
    }

    public func scores(projectID: String, runID: String) async throws -> [ScoreRow] {
        var v = values()
        let cond = "project_id = \(v.string(projectID)) AND run_id = \(v.string(runID))"
        return try await scores(where: cond, v)
    }

    public func scores(projectID: String, sessionID: String) async throws -> [ScoreRow] {
        var v = values()
        let cond = "project_id = \(v.string(projectID)) AND session_id = \(v.string(sessionID))"
        return try await scores(where: cond, v)
    }
}

extension Double {
    fileprivate func clamped(_ lo: Double, _ hi: Double) -> Double { Swift.min(Swift.max(self, lo), hi) }
}
