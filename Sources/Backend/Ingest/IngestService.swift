import EvalForgeModel
import EvalForgeStore
import Evaluation
import Logging
import Metrics
import NIOConcurrencyHelpers

/// Stores batches from both ingest routes: bounds the number stored concurrently (beyond it callers
/// get `IngestError.overloaded`, i.e. 503 + Retry-After, so the collector keeps the data queued),
/// and queues stored spans for online evaluation (durably, before the acknowledgement).
public final class IngestService: Sendable {
    let store: any SpanStore
    let evaluation: EvaluationService?
    let logger: Logger
    private let maxInflight: Int
    private let inflight = NIOLockedValueBox(0)
    private let batchesStored = Counter(label: "evalforge_backend_batches_stored_total")
    private let batchesDuplicate = Counter(label: "evalforge_backend_batches_duplicate_total")
    private let spansStored = Counter(label: "evalforge_backend_spans_stored_total")
    private let rollupsStored = Counter(label: "evalforge_backend_rollups_stored_total")
    private let storeErrors = Counter(label: "evalforge_backend_store_errors_total")
    private let overloaded = Counter(label: "evalforge_backend_ingest_overloaded_total")
    private let onlineEnqueueErrors = Counter(label: "evalforge_backend_online_enqueue_errors_total")
    private let insertLatency = Timer(label: "evalforge_backend_insert_duration_seconds")

    public init(store: any SpanStore, evaluation: EvaluationService?, maxInflight: Int, logger: Logger) {
        self.store = store
        self.evaluation = evaluation
        self.maxInflight = max(1, maxInflight)
        self.logger = logger
    }

    /// Stores `batch` durably (at most once per batch id), queues its spans for online evaluation,
    /// and returns whether it was new.
    public func ingest(_ batch: StoreBatch) async throws -> InsertOutcome {
        let admitted = inflight.withLockedValue { n -> Bool in
            guard n < maxInflight else { return false }
            n += 1
            return true
        }
        guard admitted else {
            overloaded.increment()
            throw IngestError.overloaded("the backend is storing \(maxInflight) batches already; retry later")
        }
        defer { inflight.withLockedValue { $0 -= 1 } }
        let start = ContinuousClock.now
        let outcome: InsertOutcome
        do {
            outcome = try await store.insert(batch)
        } catch let e as StoreError {
            storeErrors.increment()
            logger.warning("store insert failed", metadata: ["batch": "\(batch.batchID)", "error": "\(e.message)"])
            throw e.isTransient ? IngestError.unavailable(e.message) : IngestError.rejected(e.message)
        }
        insertLatency.recordInterval(since: start)
        switch outcome {
        case .stored:
            batchesStored.increment()
            spansStored.increment(by: batch.spans.count)
            rollupsStored.increment(by: batch.rollups.count)
        case .duplicate:
            batchesDuplicate.increment()
        }
        // Durably queued for online evaluation before the acknowledgement, a duplicate too: the
        // first attempt may have ended between the insert and this (the queue keeps one row per span).
        if let evaluation, !batch.spans.isEmpty {
            do { try await evaluation.spansStored(projectID: batch.projectID, spans: batch.spans) } catch {
                onlineEnqueueErrors.increment()
                logger.warning("online evaluation enqueue failed; the batch is not acknowledged", metadata: ["batch": "\(batch.batchID)", "error": "\(error)"])
                throw IngestError.unavailable("online evaluation queue: \(error)")
            }
        }
        return outcome
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let d = ContinuousClock.now - start
        recordNanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }
}

/// Why an ingest request was not stored, with its HTTP status.
public struct IngestError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case badRequest, unavailable, overloaded, rejected, tooLarge, unsupportedMediaType, foreignProject }
    private let code: Code
    public let message: String
    public var description: String { message }

    static func badRequest(_ m: String) -> IngestError { .init(code: .badRequest, message: m) }
    static func unavailable(_ m: String) -> IngestError { .init(code: .unavailable, message: "storage unavailable, retry later: " + m) }
    static func overloaded(_ m: String) -> IngestError { .init(code: .overloaded, message: m) }
    static func rejected(_ m: String) -> IngestError { .init(code: .rejected, message: "storage refused the batch: " + m) }
    static func tooLarge(_ m: String) -> IngestError { .init(code: .tooLarge, message: m) }
    static func unsupportedMediaType(_ m: String) -> IngestError { .init(code: .unsupportedMediaType, message: m) }
    /// OTLP naming another project than the key's (403: the key may not write there).
    static func foreignProject(_ m: String) -> IngestError { .init(code: .foreignProject, message: m) }

    /// HTTP status: 400, 403, 413, 415, or 503 (with Retry-After) for the retryable ones.
    public var status: Int {
        switch code {
        case .badRequest, .rejected: 400
        case .foreignProject: 403
        case .tooLarge: 413
        case .unsupportedMediaType: 415
        case .unavailable, .overloaded: 503
        }
    }

    public var isRetryable: Bool { code == .unavailable || code == .overloaded }
}
