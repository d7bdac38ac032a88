import Logging

/// PLACEHOLDER — replaced by the ClickHouse implementation (issue 4).
public final class ClickHouseStore: SpanStore {
    public let configuration: ClickHouseConfiguration
    public var description: String { "clickhouse \(configuration.url)" }

    public init(configuration: ClickHouseConfiguration, logger: Logger) async throws {
        self.configuration = configuration
        throw StoreError.unavailable("ClickHouse support is not built yet")
    }

    public func migrate() async throws {}
    public func insert(_ batch: StoreBatch) async throws -> InsertOutcome { throw StoreError.unavailable("n/a") }
    public func insertScores(_ scores: [ScoreRow]) async throws {}
    public func listTraces(_ filter: TraceFilter, sort: TraceSort, limit: Int, cursor: String?) async throws -> Page<TraceSummary> { Page(items: [], nextCursor: nil) }
    public func trace(projectID: String, traceID: String) async throws -> [SpanRow] { [] }
    public func listSpans(_ filter: SpanFilter, limit: Int, cursor: String?) async throws -> Page<SpanRow> { Page(items: [], nextCursor: nil) }
    public func listSessions(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<SessionSummary> { Page(items: [], nextCursor: nil) }
    public func sessionSpans(projectID: String, sessionID: String, limit: Int) async throws -> [SpanRow] { [] }
    public func listUsers(_ filter: SessionFilter, limit: Int, cursor: String?) async throws -> Page<UserSummary> { Page(items: [], nextCursor: nil) }
    public func metrics(_ query: MetricsQuery) async throws -> [MetricsBucket] { [] }
    public func scores(projectID: String, traceIDs: [String]) async throws -> [ScoreRow] { [] }
    public func scores(projectID: String, runID: String) async throws -> [ScoreRow] { [] }
    public func scores(projectID: String, sessionID: String) async throws -> [ScoreRow] { [] }
    public func deleteExpired(projectID: String, beforeUnixNanos: Int64) async throws -> Int { 0 }
    public func shutdown() async {}
}
