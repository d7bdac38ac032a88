import EvalForgeModel
/// Telemetry storage: spans, rollups and scores, and the queries the API and the evaluation runner
/// need. Two implementations, `ClickHouseStore` and `SQLiteStore`, pass one conformance suite
/// (Tests/StoreTests).
///
/// Every query is scoped to one project: no method returns another project's rows.
public protocol SpanStore: Sendable {
    /// Short description for logs and `/healthz`, e.g. "sqlite 3.40.1 (data/evalforge.db)" or
    /// "clickhouse 18.16.1 (legacy schema)".
    var description: String { get }

    /// Creates or upgrades the schema (versioned migrations); called once at start-up.
    func migrate() async throws

    /// The schema version this binary migrates the store to (its newest migration).
    var schemaVersion: Int { get }

    /// Readiness: whether the store can take writes now, checked once (no retries) within
    /// `timeout`. Returns the schema version the database is at (above `schemaVersion` while a newer
    /// backend shares it during a rolling upgrade); throws `StoreError.unavailable` naming the cause.
    func checkReady(timeout: Duration) async throws -> Int

    /// Stores a batch durably, at most once per (project, batch id). Returns after the data is
    /// durable (committed / acknowledged by the server). Throws `StoreError` when storage is
    /// unavailable; the caller must then not acknowledge the batch.
    func insert(_ batch: StoreBatch) async throws -> InsertOutcome

    /// Stores scores; a score id stored twice is kept once (the later value wins).
    func insertScores(_ scores: [ScoreRow]) async throws

    /// A page of traces matching `filter`, in `sort` order. `cursor` is a previous page's
    /// `nextCursor`; an invalid cursor throws `StoreError.invalidCursor`.
    func listTraces(_ filter: TraceFilter, sort: TraceSort, limit: Int, cursor: String?) async throws -> Page<TraceSummary>

    /// Every span of one trace, ordered by start time; empty when the trace is unknown.
    func trace(projectID: String, traceID: String) async throws -> [SpanRow]

    /// A page of spans matching `filter`, ordered by (start, span id) ascending; used for exports.
    func listSpans(_ filter: SpanFilter, limit: Int, cursor: String?) async throws -> Page<SpanRow>

    /// Sessions, most recent activity first.
    func listSessions(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<SessionSummary>

    /// The spans of a session's traces, ordered by start time (at most `limit`).
    func sessionSpans(projectID: String, sessionID: String, limit: Int) async throws -> [SpanRow]

    /// Users, most recent activity first.
    func listUsers(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<UserSummary>

    /// Time series of merged rollups (see `MetricsQuery`).
    func metrics(_ query: MetricsQuery) async throws -> [MetricsBucket]

    /// Scores of the given traces (trace-level and span-level), for a project.
    func scores(projectID: String, traceIDs: [String]) async throws -> [ScoreRow]

    /// Scores produced by one evaluation run or online rule.
    func scores(projectID: String, runID: String) async throws -> [ScoreRow]

    /// Scores attached to a session.
    func scores(projectID: String, sessionID: String) async throws -> [ScoreRow]

    /// Retention: deletes, for each project in `cutoffs`, its spans, trace summaries, rollups,
    /// scores and batch records older than the project's cutoff (Unix nanoseconds), all projects in
    /// one pass (so a ClickHouse server rewrites each part once). Rows at or after a cutoff, and
    /// other projects' rows, are untouched; a trace with spans on both sides keeps a summary of its
    /// remaining spans. `everyProject`: `cutoffs` names every project that exists (none is kept
    /// forever), so a store may drop a whole time partition that ends before the earliest cutoff:
    /// any row a project could still write into it is expired for that project too.
    /// Returns the rows deleted (physical rows, before deduplication), when known.
    @discardableResult
    func deleteExpired(_ cutoffs: [String: Int64], everyProject: Bool) async throws -> Int

    /// Deletes every span, trace summary, rollup, score and batch record of a project (the project
    /// itself was deleted). Returns after the rows are gone; throws when the store is unavailable
    /// (the caller retries: deleting twice is harmless).
    func deleteProject(projectID: String) async throws

    /// Number of stored spans of a project whose start is in [fromUnixNanos, toUnixNanos), each
    /// span counted once. A default pages through `listSpans`; stores answer with a counting query.
    func countSpans(projectID: String, fromUnixNanos: Int64?, toUnixNanos: Int64?) async throws -> Int

    /// Releases connections; the store is unusable afterwards.
    func shutdown() async
}

extension SpanStore {
    /// `deleteExpired` for one project (no partition is dropped).
    @discardableResult
    public func deleteExpired(projectID: String, beforeUnixNanos: Int64) async throws -> Int {
        try await deleteExpired([projectID: beforeUnixNanos], everyProject: false)
    }

    /// Counts by paging through `listSpans` (for stores without a counting query).
    public func countSpans(projectID: String, fromUnixNanos: Int64?, toUnixNanos: Int64?) async throws -> Int {
        var n = 0
        var cursor: String?
        repeat {
            let page = try await listSpans(SpanFilter(trace: TraceFilter(projectID: projectID, from: fromUnixNanos, to: toUnixNanos)), limit: 10_000, cursor: cursor)
            n += page.items.count
            cursor = page.nextCursor
        } while cursor != nil
        return n
    }
}
