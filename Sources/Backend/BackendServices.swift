import EvalForgeStore
import Evaluation
import Logging

/// Everything the backend's routes share: the telemetry store, the metadata file and its project
/// registry, ingest, and the evaluation runner.
public struct BackendServices: Sendable {
    public let configuration: BackendConfiguration
    public let store: any SpanStore
    public let metadata: any MetadataDatabase
    public let projects: ProjectStore
    /// Web UI sessions (the store and the cookie settings).
    public let sessions: UISessions
    public let ingest: IngestService
    public let evaluation: EvaluationService
    public let logger: Logger
    /// Tiered rate limits (requests, spans, evaluations, judge tokens and cost) shared by replicas
    /// through the metadata file.
    public let rateLimiter: RateLimiter
    /// The admin token generated at this start (none was configured or stored before): printed once
    /// by `evalforge backend`, never stored in plain text. Nil otherwise.
    public var generatedAdminToken: String? = nil
}
