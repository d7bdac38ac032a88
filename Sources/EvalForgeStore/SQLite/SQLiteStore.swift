import EvalForgeModel
import Foundation
import Logging

/// The embedded store: one SQLite file in WAL mode, for users with no ClickHouse. Each batch is one
/// transaction (spans, trace summaries, merged rollups and the batch-ledger row commit together,
/// `synchronous=FULL`), so a batch is stored exactly once and is durable when `insert` returns.
/// Comfortable up to a few million spans.
public final class SQLiteStore: SpanStore {
    let db: SQLiteDatabase
    let logger: Logger

    public init(path: String, logger: Logger) throws {
        self.db = try SQLiteDatabase(path: path)
        self.logger = logger
    }

    public var description: String { "sqlite \(SQLiteConnection.libraryVersion) (\(db.path))" }

    public func migrate() async throws {
        try await SQLiteSchema.migrations.apply(to: db)
    }

    public func shutdown() async {
        db.close()
    }

    // MARK: Insert

    public func insert(_ batch: StoreBatch) async throws -> InsertOutcome {
        try await db.write { c in
            if try c.scalar("SELECT 1 FROM batches WHERE project_id = ? AND batch_id = ?", [.text(batch.projectID), .text(batch.batchID)]) != nil {
                return .duplicate
            }
            var newByTrace: [String: [SpanRow]] = [:]
            for var span in batch.spans {
                span.projectID = batch.projectID
                if try c.run(Self.insertSpanSQL, SQLiteRowCoding.values(span)) == 1 {
                    newByTrace[span.traceID, default: []].append(span)
                }
            }
            for (traceID, spans) in newByTrace {
                try Self.mergeTraceSummary(c, projectID: batch.projectID, traceID: traceID, spans: spans)
            }
            for var rollup in batch.rollups {
                rollup.key.project = batch.projectID
                try Self.mergeRollup(c, rollup)
            }
            try c.run("INSERT INTO batches (project_id, batch_id, stored_unix, spans) VALUES (?, ?, ?, ?)",
                      [.text(batch.projectID), .text(batch.batchID), .integer(Int64(Date().timeIntervalSince1970)), .integer(Int64(batch.spans.count))])
            return .stored
        }
    }

    static let insertSpanSQL = "INSERT OR IGNORE INTO spans (" + SQLiteRowCoding.spanColumns + ") VALUES (" + Array(repeating: "?", count: SQLiteRowCoding.spanColumnCount).joined(separator: ",") + ")"

    static func mergeTraceSummary(_ c: SQLiteConnection, projectID: String, traceID: String, spans: [SpanRow]) throws {
        var summary = try c.query("SELECT * FROM traces WHERE project_id = ? AND trace_id = ?", [.text(projectID), .text(traceID)]).first.map(TraceAggregate.init(row:)) ?? TraceAggregate(traceID: traceID)
        for s in spans { summary.add(s) }
        try c.run("""
            INSERT OR REPLACE INTO traces (project_id, trace_id, name, service, has_root, start_ns, end_ns, duration_ns, span_count, llm_calls,
                error_count, input_tokens, output_tokens, cost_usd, cost_unknown, user_id, session_id, tags, models, providers, services)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, summary.values(projectID: projectID))
    }

    static func mergeRollup(_ c: SQLiteConnection, _ r: RollupRow) throws {
        let k = r.key
        let keyBinds: [SQLiteValue] = [.text(k.project), .integer(k.minuteUnix), .text(k.service), .text(k.provider), .text(k.model), .integer(k.isError ? 1 : 0)]
        var value = r.value
        if let existing = try c.query("SELECT * FROM rollups WHERE project_id = ? AND minute_unix = ? AND service = ? AND provider = ? AND model = ? AND is_error = ?", keyBinds).first {
            value.merge(SQLiteRowCoding.rollupValue(existing))
        }
        try c.run("""
            INSERT OR REPLACE INTO rollups (project_id, minute_unix, service, provider, model, is_error, requests, errors, input_tokens,
                output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd, cost_unknown_requests, latency_ms, ttft_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, keyBinds + SQLiteRowCoding.rollupValues(value))
    }

    public func insertScores(_ scores: [ScoreRow]) async throws {
        guard !scores.isEmpty else { return }
        try await db.write { c in
            for s in scores {
                try c.run("""
                    INSERT OR REPLACE INTO scores (project_id, id, trace_id, span_id, session_id, name, value, label, data_type, source, comment, evaluator, run_id, created_ns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, SQLiteRowCoding.values(s))
            }
        }
    }

    // MARK: Retention

    /// Rows one retention transaction deletes at most: ingest waits for the write lock for one
    /// chunk, never for a whole project's expired days.
    static let retentionChunk = 5_000

    /// Chunked deletes per project (SQLite has no partitions; `everyProject` changes nothing).
    public func deleteExpired(_ cutoffs: [String: Int64], everyProject: Bool) async throws -> Int {
        var deleted = 0
        for (projectID, cutoff) in cutoffs.sorted(by: { $0.key < $1.key }) where cutoff > 0 {
            let p = SQLiteValue.text(projectID), ns = SQLiteValue.integer(cutoff), seconds = SQLiteValue.integer(cutoff / 1_000_000_000)
            // Traces with spans on both sides of the cutoff: summarized again from their remaining
            // spans once the old ones are gone (found first: their start is about to change).
            let straddling = try await db.read { c in
                try c.query("SELECT trace_id FROM traces WHERE project_id = ? AND start_ns < ? AND end_ns >= ?", [p, ns, ns]).compactMap { $0["trace_id"].string }
            }
            deleted = deleted.addingSaturated(try await deleteChunked("spans", "project_id = ? AND start_ns < ?", [p, ns]))
            deleted = deleted.addingSaturated(try await deleteChunked("traces", "project_id = ? AND start_ns < ? AND end_ns < ?", [p, ns, ns]))
            deleted = deleted.addingSaturated(try await deleteChunked("rollups", "project_id = ? AND minute_unix < ?", [p, seconds]))
            deleted = deleted.addingSaturated(try await deleteChunked("scores", "project_id = ? AND created_ns < ?", [p, ns]))
            deleted = deleted.addingSaturated(try await deleteChunked("batches", "project_id = ? AND stored_unix < ?", [p, seconds]))
            for chunk in stride(from: 0, to: straddling.count, by: 500) {
                let ids = Array(straddling[chunk..<min(straddling.count, chunk + 500)])
                try await db.write { c in
                    for id in ids {
                        let spans = try c.query("SELECT * FROM spans WHERE project_id = ? AND trace_id = ?", [p, .text(id)]).map(SQLiteRowCoding.span)
                        try c.run("DELETE FROM traces WHERE project_id = ? AND trace_id = ?", [p, .text(id)])
                        if !spans.isEmpty { try Self.mergeTraceSummary(c, projectID: projectID, traceID: id, spans: spans) }
                    }
                }
            }
        }
        return deleted
    }

    /// `DELETE FROM table WHERE condition` in transactions of at most `retentionChunk` rows.
    private func deleteChunked(_ table: String, _ condition: String, _ binds: [SQLiteValue]) async throws -> Int {
        var total = 0
        while true {
            let n = try await db.write { c in
                try c.run("DELETE FROM \(table) WHERE rowid IN (SELECT rowid FROM \(table) WHERE \(condition) LIMIT \(Self.retentionChunk))", binds)
            }
            total = total.addingSaturated(n)
            if n < Self.retentionChunk { return total }
        }
    }
}

extension SQLiteStore {
    /// Deletes the project's rows from every telemetry table (each has a `project_id` column), in
    /// one transaction.
    public func deleteProject(projectID: String) async throws {
        try await db.write { c in
            let p = SQLiteValue.text(projectID)
            for table in ["spans", "traces", "rollups", "scores", "batches"] {
                try c.run("DELETE FROM \(table) WHERE project_id = ?", [p])
            }
        }
    }
}

/// A trace summary being merged with newly stored spans.
struct TraceAggregate {
    var traceID: String
    var name = ""
    var service = ""
    var hasRoot = false
    var start = Int64.max
    var end = Int64.min
    var spanCount = 0
    var llmCalls = 0
    var errorCount = 0
    var inputTokens: Int64 = 0
    var outputTokens: Int64 = 0
    var cost = 0.0
    var costUnknown = 0
    var userID = ""
    var sessionID = ""
    var tags: [String] = []
    var models: [String] = []
    var providers: [String] = []
    var services: [String] = []

    init(traceID: String) { self.traceID = traceID }

    init(row r: SQLiteRow) {
        traceID = r["trace_id"].string ?? ""
        name = r["name"].string ?? ""
        service = r["service"].string ?? ""
        hasRoot = (r["has_root"].int64 ?? 0) != 0
        start = r["start_ns"].int64 ?? .max
        end = r["end_ns"].int64 ?? .min
        spanCount = Int(r["span_count"].int64 ?? 0)
        llmCalls = Int(r["llm_calls"].int64 ?? 0)
        errorCount = Int(r["error_count"].int64 ?? 0)
        inputTokens = r["input_tokens"].int64 ?? 0
        outputTokens = r["output_tokens"].int64 ?? 0
        cost = r["cost_usd"].double ?? 0
        costUnknown = Int(r["cost_unknown"].int64 ?? 0)
        userID = r["user_id"].string ?? ""
        sessionID = r["session_id"].string ?? ""
        tags = SQLiteRowCoding.stringArray(r["tags"].string)
        models = SQLiteRowCoding.stringArray(r["models"].string)
        providers = SQLiteRowCoding.stringArray(r["providers"].string)
        services = SQLiteRowCoding.stringArray(r["services"].string)
    }

    mutating func add(_ s: SpanRow) {
        let earlier = s.startUnixNanos < start
        if s.isRoot && !hasRoot || (!hasRoot && earlier) {
            name = s.name
            service = s.service
            hasRoot = s.isRoot
        }
        start = min(start, s.startUnixNanos)
        end = max(end, s.endUnixNanos)
        spanCount += 1
        if s.isLLMCall {
            llmCalls += 1
            if s.costUSD == nil { costUnknown += 1 }
        }
        if s.isError { errorCount += 1 }
        inputTokens = inputTokens.addingSaturated(s.inputTokens)
        outputTokens = outputTokens.addingSaturated(s.outputTokens)
        if let c = s.costUSD, c.isFinite { cost += c }
        if userID.isEmpty || (s.isRoot && !s.userID.isEmpty) { if !s.userID.isEmpty { userID = s.userID } }
        if sessionID.isEmpty || (s.isRoot && !s.sessionID.isEmpty) { if !s.sessionID.isEmpty { sessionID = s.sessionID } }
        for t in s.tags where !tags.contains(t) { tags.append(t) }
        if !s.model.isEmpty, !models.contains(s.model) { models.append(s.model) }
        if !s.provider.isEmpty, !providers.contains(s.provider) { providers.append(s.provider) }
        if !s.service.isEmpty, !services.contains(s.service) { services.append(s.service) }
    }

    func values(projectID: String) -> [SQLiteValue] {
        [.text(projectID), .text(traceID), .text(name), .text(service), .integer(hasRoot ? 1 : 0), .integer(start), .integer(end),
         .integer(max(0, end.subtractingSaturated(start))), .integer(Int64(spanCount)), .integer(Int64(llmCalls)), .integer(Int64(errorCount)),
         .integer(inputTokens), .integer(outputTokens), .real(cost), .integer(Int64(costUnknown)), .text(userID), .text(sessionID),
         .text(SQLiteRowCoding.json(tags)), .text(SQLiteRowCoding.json(models)), .text(SQLiteRowCoding.json(providers)), .text(SQLiteRowCoding.json(services))]
    }

    var summary: TraceSummary {
        TraceSummary(traceID: traceID, name: name, service: service, startUnixNanos: start, durationNanos: max(0, end.subtractingSaturated(start)), spanCount: spanCount, llmCalls: llmCalls, errorCount: errorCount, inputTokens: inputTokens, outputTokens: outputTokens, costUSD: cost, costUnknownSpans: costUnknown, userID: userID, sessionID: sessionID, tags: tags, models: models)
    }
}

extension SQLiteStore {
    public func countSpans(projectID: String, fromUnixNanos: Int64?, toUnixNanos: Int64?) async throws -> Int {
        try await db.read { c in
            Int(try c.scalar("SELECT count(*) FROM spans WHERE project_id = ? AND start_ns >= ? AND start_ns < ?",
                             [.text(projectID), .integer(fromUnixNanos ?? .min), .integer(toUnixNanos ?? .max)])?.int64 ?? 0)
        }
    }
}
