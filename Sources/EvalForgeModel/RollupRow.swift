import EvalForgeModel

/// One minute × project × service × provider × model × status of exact aggregates, as computed by
/// the collector before sampling (or by the backend for spans it received directly).
public struct RollupRow: Sendable, Equatable {
    /// `key.project` is the project id of the API key that delivered the rollup.
    public var key: RollupKey
    public var value: RollupValue

    public init(key: RollupKey, value: RollupValue) {
        self.key = key
        self.value = value
    }
}

/// What one ingest call stores, atomically and at most once per (project, batch id).
public struct StoreBatch: Sendable {
    public var projectID: String
    /// Stable across resends of the same data; the store keeps a ledger of ids it has stored.
    public var batchID: String
    public var spans: [SpanRow]
    public var rollups: [RollupRow]

    public init(projectID: String, batchID: String, spans: [SpanRow], rollups: [RollupRow]) {
        self.projectID = projectID
        self.batchID = batchID
        self.spans = spans
        self.rollups = rollups
    }
}

/// The result of storing a batch.
public enum InsertOutcome: Sendable, Equatable {
    /// Stored now.
    case stored
    /// A batch with this id was already stored; nothing was written.
    case duplicate
}
