import EvalForgeStore
import Logging
import ServiceLifecycle

/// The evaluation runner hosted by the backend: evaluators, online evaluation, datasets,
/// experiments, run comparison and webhooks. (Skeleton: the evaluation issue fills it in.)
public final class EvaluationService: Sendable {
    public let store: any SpanStore
    public let metadata: SQLiteDatabase
    public let logger: Logger

    /// `metadata` is the backend's SQLite metadata file (datasets, runs and webhooks live there);
    /// `store` holds spans and scores.
    public init(store: any SpanStore, metadata: SQLiteDatabase, logger: Logger) async throws {
        self.store = store
        self.metadata = metadata
        self.logger = logger
    }

    /// Called by ingest after a batch is durably stored (never blocks ingest: enqueue and return).
    public func spansStored(projectID: String, spans: [SpanRow]) {}

    /// Background services (run workers, webhook delivery) the backend application runs.
    public var services: [any Service] { [] }
}
