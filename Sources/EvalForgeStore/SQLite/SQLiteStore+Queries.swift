import EvalForgeModel
import Foundation

extension SQLiteStore {
    static func checkLimit(_ limit: Int) throws {
        guard (1...10_000).contains(limit) else { throw StoreError.invalidArgument("limit must be between 1 and 10000, got \(limit)") }
    }

    /// SQL condition and binds for the trace-level filter over the `traces` table aliased `t`.
    static func traceConditions(_ f: TraceFilter) -> (String, [SQLiteValue]) {
        var sql = ["t.project_id = ?"]
        var binds: [SQLiteValue] = [.text(f.projectID)]
        if let from = f.from { sql.append("t.start_ns >= ?"); binds.append(.integer(from)) }
        if let to = f.to { sql.append("t.start_ns < ?"); binds.append(.integer(to)) }
        if let v = f.service { sql.append("EXISTS (SELECT 1 FROM json_each(t.services) WHERE value = ?)"); binds.append(.text(v)) }
        if let v = f.provider { sql.append("EXISTS (SELECT 1 FROM json_each(t.providers) WHERE value = ?)"); binds.append(.text(v)) }
        if let v = f.model { sql.append("EXISTS (SELECT 1 FROM json_each(t.models) WHERE value = ?)"); binds.append(.text(v)) }
        if let v = f.tag { sql.append("EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?)"); binds.append(.text(v)) }
        switch f.status {
        case .error?: sql.append("t.error_count > 0")
        case .ok?, .unset?: sql.append("t.error_count = 0")
        case nil: break
        }
        if let v = f.userID { sql.append("t.user_id = ?"); binds.append(.text(v)) }
        if let v = f.sessionID { sql.append("t.session_id = ?"); binds.append(.text(v)) }
        if let v = f.minCostUSD { sql.append("t.cost_usd >= ?"); binds.append(.real(v)) }
        if let v = f.minDurationNanos { sql.append("t.duration_ns >= ?"); binds.append(.integer(v)) }
        if let name = f.scoreName {
            var c = "EXISTS (SELECT 1 FROM scores sc WHERE sc.project_id = t.project_id AND sc.trace_id = t.trace_id AND sc.name = ?"
            binds.append(.text(name))
            if let lo = f.minScore { c += " AND sc.value >= ?"; binds.append(.real(lo)) }
            if let hi = f.maxScore { c += " AND sc.value <= ?"; binds.append(.real(hi)) }
            sql.append(c + ")")
        }
        if let text = f.text, !text.isEmpty {
            let pattern = "%" + likeEscape(text) + "%"
            sql.append("EXISTS (SELECT 1 FROM spans s WHERE s.project_id = t.project_id AND s.trace_id = t.trace_id AND (s.input LIKE ? ESCAPE '\\' OR s.output LIKE ? ESCAPE '\\'))")
            binds += [.text(pattern), .text(pattern)]
        }
        return (sql.joined(separator: " AND "), binds)
    }

    static func likeEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }

    public func listTraces(_ filter: TraceFilter, sort: TraceSort, limit: Int, cursor: String?) async throws -> Page<TraceSummary> {
        try Self.checkLimit(limit)
        let fingerprint = Cursor.fingerprint(["traces", sort.rawValue, Cursor.fingerprint(filter)])
        var (cond, binds) = Self.traceConditions(filter)
        let (column, descending): (String, Bool) = switch sort {
        case .startDesc: ("t.start_ns", true)
        case .startAsc: ("t.start_ns", false)
        case .costDesc: ("t.cost_usd", true)
        case .durationDesc: ("t.duration_ns", true)
        }
        if let cursor {
            let c = try Cursor.decode(cursor, query: fingerprint, count: 2)
            let op = descending ? "<" : ">"
            let key: SQLiteValue = sort == .costDesc ? .real(Double(c.after[0]) ?? 0) : .integer(Int64(c.after[0]) ?? 0)
            cond += " AND (\(column) \(op) ? OR (\(column) = ? AND t.trace_id \(op) ?))"
            binds += [key, key, .text(c.after[1])]
        }
        let dir = descending ? "DESC" : "ASC"
        let sql = "SELECT t.* FROM traces t WHERE \(cond) ORDER BY \(column) \(dir), t.trace_id \(dir) LIMIT \(limit + 1)"
        let rows = try await db.read { [binds] c in try c.query(sql, binds) }
        var items = rows.prefix(limit).map { TraceAggregate(row: $0).summary }
        items = Array(items)
        var next: String?
        if rows.count > limit, let last = items.last {
            let key: String = switch sort {
            case .startDesc, .startAsc: String(last.startUnixNanos)
            case .costDesc: String(last.costUSD)
            case .durationDesc: String(last.durationNanos)
            }
            next = Cursor(query: fingerprint, after: [key, last.traceID]).encoded()
        }
        return Page(items: items, nextCursor: next)
    }

    public func trace(projectID: String, traceID: String) async throws -> [SpanRow] {
        try await db.read { c in
            try c.query("SELECT * FROM spans WHERE project_id = ? AND trace_id = ? ORDER BY start_ns, span_id", [.text(projectID), .text(traceID)]).map(SQLiteRowCoding.span)
        }
    }

    public func listSpans(_ filter: SpanFilter, limit: Int, cursor: String?) async throws -> Page<SpanRow> {
        try Self.checkLimit(limit)
        let fingerprint = Cursor.fingerprint(["spans", Cursor.fingerprint(filter)])
        let f = filter.trace
        var sql = ["s.project_id = ?"]
        var binds: [SQLiteValue] = [.text(f.projectID)]
        if let v = f.from { sql.append("s.start_ns >= ?"); binds.append(.integer(v)) }
        if let v = f.to { sql.append("s.start_ns < ?"); binds.append(.integer(v)) }
        if let v = f.service { sql.append("s.service = ?"); binds.append(.text(v)) }
        if let v = f.provider { sql.append("s.provider = ?"); binds.append(.text(v)) }
        if let v = f.model { sql.append("s.model = ?"); binds.append(.text(v)) }
        switch f.status {
        case .error?: sql.append("s.status = 2")
        case .ok?, .unset?: sql.append("s.status != 2")
        case nil: break
        }
        if let v = f.userID { sql.append("s.user_id = ?"); binds.append(.text(v)) }
        if let v = f.sessionID { sql.append("s.session_id = ?"); binds.append(.text(v)) }
        if let v = f.tag { sql.append("EXISTS (SELECT 1 FROM json_each(s.tags) WHERE value = ?)"); binds.append(.text(v)) }
        if let v = f.minCostUSD { sql.append("s.cost_usd >= ?"); binds.append(.real(v)) }
        if let v = f.minDurationNanos { sql.append("s.duration_ns >= ?"); binds.append(.integer(v)) }
        if let name = f.scoreName {
            var c = "EXISTS (SELECT 1 FROM scores sc WHERE sc.project_id = s.project_id AND sc.trace_id = s.trace_id AND sc.name = ?"
            binds.append(.text(name))
            if let lo = f.minScore { c += " AND sc.value >= ?"; binds.append(.real(lo)) }
            if let hi = f.maxScore { c += " AND sc.value <= ?"; binds.append(.real(hi)) }
            sql.append(c + ")")
        }
        if let text = f.text, !text.isEmpty {
            let pattern = "%" + Self.likeEscape(text) + "%"
            sql.append("(s.input LIKE ? ESCAPE '\\' OR s.output LIKE ? ESCAPE '\\')")
            binds += [.text(pattern), .text(pattern)]
        }
        if filter.llmCallsOnly { sql.append("(s.model != '' OR s.provider != '')") }
        if !filter.traceIDs.isEmpty {
            sql.append("s.trace_id IN (" + filter.traceIDs.map { _ in "?" }.joined(separator: ",") + ")")
            binds += filter.traceIDs.map { .text($0) }
        }
        if let cursor {
            let c = try Cursor.decode(cursor, query: fingerprint, count: 2)
            let start = SQLiteValue.integer(Int64(c.after[0]) ?? 0)
            sql.append("(s.start_ns > ? OR (s.start_ns = ? AND s.span_id > ?))")
            binds += [start, start, .text(c.after[1])]
        }
        let query = "SELECT * FROM spans s WHERE " + sql.joined(separator: " AND ") + " ORDER BY s.start_ns, s.span_id LIMIT \(limit + 1)"
        let rows = try await db.read { [binds] c in try c.query(query, binds).map(SQLiteRowCoding.span) }
        let items = Array(rows.prefix(limit))
        var next: String?
        if rows.count > limit, let last = items.last {
            next = Cursor(query: fingerprint, after: [String(last.startUnixNanos), last.spanID]).encoded()
        }
        return Page(items: items, nextCursor: next)
    }

    /// Sessions or users: the `traces` table grouped by `column`, most recent activity first.
    private func groupedActivity(_ filter: SessionFilter, column: String, limit: Int, cursor: String?) async throws -> (rows: [SQLiteRow], next: String?) {
        try Self.checkLimit(limit)
        let fingerprint = Cursor.fingerprint([column, Cursor.fingerprint(filter)])
        // Sums use total() (a Double): sum() of integers fails the whole query on overflow, and one
        // span with 5e18 tokens would make the list unreadable. Reading back clamps to Int64.
        var cond = ["t.project_id = ?", "t.\(column) != ''"]
        var binds: [SQLiteValue] = [.text(filter.projectID)]
        if let v = filter.userID { cond.append("t.user_id = ?"); binds.append(.text(v)) }
        var having: [String] = []
        if let v = filter.from { having.append("last_ns >= ?"); binds.append(.integer(v)) }
        if let v = filter.to { having.append("last_ns < ?"); binds.append(.integer(v)) }
        if let cursor {
            let c = try Cursor.decode(cursor, query: fingerprint, count: 2)
            let last = SQLiteValue.integer(Int64(c.after[0]) ?? 0)
            having.append("(last_ns < ? OR (last_ns = ? AND key < ?))")
            binds += [last, last, .text(c.after[1])]
        }
        let sql = """
            SELECT t.\(column) AS key, max(t.user_id) AS user_id, min(t.start_ns) AS first_ns, max(t.end_ns) AS last_ns, count(*) AS traces,
                count(DISTINCT CASE WHEN t.session_id != '' THEN t.session_id END) AS sessions, total(t.llm_calls) AS llm_calls,
                total(t.error_count) AS errors, total(t.input_tokens) AS input_tokens, total(t.output_tokens) AS output_tokens, total(t.cost_usd) AS cost
            FROM traces t WHERE \(cond.joined(separator: " AND ")) GROUP BY t.\(column)
            \(having.isEmpty ? "" : "HAVING " + having.joined(separator: " AND "))
            ORDER BY last_ns DESC, key DESC LIMIT \(limit + 1)
            """
        let rows = try await db.read { [binds] c in try c.query(sql, binds) }
        var next: String?
        if rows.count > limit {
            let last = rows[limit - 1]
            next = Cursor(query: fingerprint, after: [String(last["last_ns"].int64 ?? 0), last["key"].string ?? ""]).encoded()
        }
        return (Array(rows.prefix(limit)), next)
    }

    public func listSessions(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<SessionSummary> {
        let (rows, next) = try await groupedActivity(filter, column: "session_id", limit: limit, cursor: cursor)
        return Page(items: rows.map { r in
            SessionSummary(sessionID: r["key"].string ?? "", userID: r["user_id"].string ?? "", firstUnixNanos: r["first_ns"].int64 ?? 0, lastUnixNanos: r["last_ns"].int64 ?? 0,
                           traceCount: Int(r["traces"].int64 ?? 0), llmCalls: Int(r["llm_calls"].int64 ?? 0), errorCount: Int(r["errors"].int64 ?? 0),
                           inputTokens: r["input_tokens"].int64 ?? 0, outputTokens: r["output_tokens"].int64 ?? 0, costUSD: r["cost"].double ?? 0)
        }, nextCursor: next)
    }

    public func listUsers(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<UserSummary> {
        let (rows, next) = try await groupedActivity(filter, column: "user_id", limit: limit, cursor: cursor)
        return Page(items: rows.map { r in
            UserSummary(userID: r["key"].string ?? "", firstUnixNanos: r["first_ns"].int64 ?? 0, lastUnixNanos: r["last_ns"].int64 ?? 0,
                        traceCount: Int(r["traces"].int64 ?? 0), sessionCount: Int(r["sessions"].int64 ?? 0), llmCalls: Int(r["llm_calls"].int64 ?? 0),
                        errorCount: Int(r["errors"].int64 ?? 0), inputTokens: r["input_tokens"].int64 ?? 0, outputTokens: r["output_tokens"].int64 ?? 0,
                        costUSD: r["cost"].double ?? 0)
        }, nextCursor: next)
    }

    public func sessionSpans(projectID: String, sessionID: String, limit: Int) async throws -> [SpanRow] {
        try Self.checkLimit(limit)
        return try await db.read { c in
            try c.query("""
                SELECT s.* FROM spans s WHERE s.project_id = ? AND s.trace_id IN
                    (SELECT trace_id FROM traces WHERE project_id = ? AND session_id = ?)
                ORDER BY s.start_ns, s.span_id LIMIT \(limit)
                """, [.text(projectID), .text(projectID), .text(sessionID)]).map(SQLiteRowCoding.span)
        }
    }

    public func metrics(_ q: MetricsQuery) async throws -> [MetricsBucket] {
        try MetricsBucketing.validate(q)
        if q.groupBy == .user { return try await userMetrics(q) }
        var cond = ["project_id = ?", "minute_unix >= ?", "minute_unix < ?"]
        var binds: [SQLiteValue] = [.text(q.projectID), .integer(q.fromUnix), .integer(q.toUnix)]
        if let v = q.service { cond.append("service = ?"); binds.append(.text(v)) }
        if let v = q.provider { cond.append("provider = ?"); binds.append(.text(v)) }
        if let v = q.model { cond.append("model = ?"); binds.append(.text(v)) }
        let sql = "SELECT * FROM rollups WHERE " + cond.joined(separator: " AND ")
        let result = try await db.read { [binds] c in
            var local = MetricsBucketing(query: q)
            try c.forEach(sql, binds) { r in
                let minute = r["minute_unix"].int64 ?? 0
                let group: String = switch q.groupBy {
                case .model: r["model"].string ?? ""
                case .provider: r["provider"].string ?? ""
                case .service: r["service"].string ?? ""
                case .none, .user: ""
                }
                local.add(minuteUnix: minute, group: group, value: SQLiteRowCoding.rollupValue(r))
            }
            return local
        }
        return result.buckets()
    }

    private func userMetrics(_ q: MetricsQuery) async throws -> [MetricsBucket] {
        var cond = ["project_id = ?", "start_ns >= ?", "start_ns < ?", "(model != '' OR provider != '')"]
        var binds: [SQLiteValue] = [.text(q.projectID), .integer(q.fromUnix * 1_000_000_000), .integer(q.toUnix * 1_000_000_000)]
        if let v = q.service { cond.append("service = ?"); binds.append(.text(v)) }
        if let v = q.provider { cond.append("provider = ?"); binds.append(.text(v)) }
        if let v = q.model { cond.append("model = ?"); binds.append(.text(v)) }
        let sql = "SELECT user_id, start_ns, duration_ns, status, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd, ttft_ns FROM spans WHERE " + cond.joined(separator: " AND ")
        let result = try await db.read { [binds] c in
            var local = MetricsBucketing(query: q)
            try c.forEach(sql, binds) { r in
                var v = RollupValue()
                v.requests = 1
                if r["status"].int64 == 2 { v.errors = 1 }
                v.inputTokens = UInt64(IngestBounds.tokens(r["input_tokens"].int64 ?? 0))
                v.outputTokens = UInt64(IngestBounds.tokens(r["output_tokens"].int64 ?? 0))
                v.cacheReadTokens = UInt64(IngestBounds.tokens(r["cache_read_tokens"].int64 ?? 0))
                v.cacheCreationTokens = UInt64(IngestBounds.tokens(r["cache_creation_tokens"].int64 ?? 0))
                v.reasoningTokens = UInt64(IngestBounds.tokens(r["reasoning_tokens"].int64 ?? 0))
                // Rows stored before the ingest bounds existed may hold anything: read them through the same bounds.
                if let cost = IngestBounds.cost(r["cost_usd"].double) { v.costUSD = cost } else { v.costUnknownRequests = 1 }
                v.latencyMs.add(Double(r["duration_ns"].int64 ?? 0) / 1e6)
                if let t = r["ttft_ns"].int64 { v.ttftMs.add(Double(t) / 1e6) }
                local.add(minuteUnix: (r["start_ns"].int64 ?? 0) / 1_000_000_000, group: r["user_id"].string ?? "", value: v)
            }
            return local
        }
        return result.buckets()
    }

    public func scores(projectID: String, traceIDs: [String]) async throws -> [ScoreRow] {
        guard !traceIDs.isEmpty else { return [] }
        let ids = Array(traceIDs.prefix(10_000))
        return try await db.read { c in
            try c.query("SELECT * FROM scores WHERE project_id = ? AND trace_id IN (" + ids.map { _ in "?" }.joined(separator: ",") + ") ORDER BY created_ns",
                        [.text(projectID)] + ids.map { .text($0) }).map(SQLiteRowCoding.score)
        }
    }

    public func scores(projectID: String, runID: String) async throws -> [ScoreRow] {
        try await db.read { c in
            try c.query("SELECT * FROM scores WHERE project_id = ? AND run_id = ? ORDER BY created_ns", [.text(projectID), .text(runID)]).map(SQLiteRowCoding.score)
        }
    }

    public func scores(projectID: String, sessionID: String) async throws -> [ScoreRow] {
        try await db.read { c in
            try c.query("SELECT * FROM scores WHERE project_id = ? AND session_id = ? ORDER BY created_ns", [.text(projectID), .text(sessionID)]).map(SQLiteRowCoding.score)
        }
    }
}
