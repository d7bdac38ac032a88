import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers

public typealias ExportTraceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest

/// The collector's data path: validate and normalize (from the protobuf bytes, no messages built)
/// → deduplicate → WAL → rollups and tail sampling → sealed batches for the forwarder. One short
/// critical section per request keeps WAL order, dedup state and sampling consistent;
/// normalization runs outside it and the fsync wait happens after it.
public final class CollectorPipeline: Sendable {
    public let configuration: CollectorConfiguration
    let wal: WriteAheadLog
    let normalizer: GenAINormalizer
    let metrics: CollectorMetrics
    let logger: Logger
    /// A pthread mutex (visible to the thread sanitizer), held for short CPU-only sections.
    private let state: NIOLockedValueBox<State>

    private struct State {
        var dedup: DuplicateFilter
        var sampler: TailSampler
        var pending = PendingRecords()
        /// WAL records at or below this were forwarded in the outbox batch found at start-up.
        var skipThroughSeq: UInt64 = 0
    }

    /// What happened to the spans of one request.
    public struct IngestResult: Sendable, Equatable {
        public var accepted = 0
        public var duplicates = 0
        public var rejected = 0
        public var rejectionReason: String?
    }

    public init(configuration: CollectorConfiguration, metricsFactory: any MetricsFactory = MetricsSystem.factory, logger: Logger = Logger(label: "evalforge.collector")) throws {
        guard let policy = configuration.fsyncPolicy else {
            throw CollectorError.configuration("queue.fsync '\(configuration.fsync)' must be always, never or interval:<ms>")
        }
        self.configuration = configuration
        self.logger = logger
        wal = try WriteAheadLog(directory: configuration.queueDirectory, maxSegmentBytes: configuration.queueSegmentBytes, policy: policy)
        normalizer = GenAINormalizer()
        metrics = CollectorMetrics(factory: metricsFactory)
        state = NIOLockedValueBox(State(
            dedup: DuplicateFilter(window: configuration.dedupWindow, maxIDs: configuration.dedupMaxIDs),
            sampler: TailSampler(policy: configuration.sampling)))
    }

    // MARK: Ingest

    /// Ingests one request; `raw` is its protobuf encoding, which is what the pipeline reads (the
    /// decoded `request` is not used: kept for callers that have one).
    public func ingest(_ request: ExportTraceRequest, raw: [UInt8]) async throws -> IngestResult {
        try await ingest(protobuf: raw)
    }

    /// Ingests one OTLP `ExportTraceServiceRequest` protobuf body: validated and read without
    /// building messages (`OTLPWireDecoder`), normalized from its bytes. Returns after the accepted
    /// spans are durable (by the fsync policy); throws `CollectorError.badRequest` for a malformed
    /// body and `CollectorError.queueFull` under backpressure, with nothing accepted.
    public func ingest(protobuf body: [UInt8]) async throws -> IngestResult {
        guard wal.totalBytes < configuration.queueMaxBytes else {
            metrics.requestsRejected.increment()
            throw CollectorError.queueFull
        }
        let (request, spans) = try normalize(body)
        let bodyCRC = WriteAheadLog.checksum(body)  // outside the lock; combined with the record's header in `append`
        let now = Self.nowNanos()
        let (seq, result) = try state.withLockedValue { s -> (UInt64?, IngestResult) in
            var result = IngestResult()
            var excluded: [Int] = []
            var fingerprints: [UInt64] = []
            fingerprints.reserveCapacity(spans.count)
            var local = FingerprintSet(minimumCapacity: spans.count)
            for (i, span) in spans.enumerated() {
                guard let f = span.facts else {
                    excluded.append(i)
                    result.rejected += 1
                    continue
                }
                let fp = DuplicateFilter.fingerprint(f.traceID, f.spanID)
                if s.dedup.contains(fp) || !local.insert(fp) {
                    excluded.append(i)
                    result.duplicates += 1
                } else {
                    fingerprints.append(fp)
                }
            }
            result.accepted = fingerprints.count
            if result.rejected > 0 { result.rejectionReason = "\(result.rejected) span(s) have an invalid trace id (16 non-zero bytes) or span id (8 non-zero bytes)" }
            guard result.accepted > 0 else { return (nil, result) }
            let seq: UInt64
            do { seq = try wal.append(prefix: WALRecord.prefix(excluded: excluded), body: body, bodyCRC: bodyCRC) } catch {
                throw CollectorError.storage("cannot write the queue: \(error)")
            }
            for fp in fingerprints { s.dedup.insert(fp, nowNanos: now) }
            Self.apply(seq: seq, request: request, spans: spans, excluded: excluded, now: now, state: &s, metrics: metrics)
            return (seq, result)
        }
        metrics.spansReceived.increment(by: spans.count)
        metrics.received.add(spans.count, ordering: .relaxed)
        if result.duplicates > 0 {
            metrics.duplicates.increment(by: result.duplicates)
            metrics.duplicateCount.add(result.duplicates, ordering: .relaxed)
        }
        if result.rejected > 0 {
            metrics.spansRejected.increment(by: result.rejected)
            metrics.rejected.add(result.rejected, ordering: .relaxed)
        }
        if let seq {
            do { try await wal.waitDurable(seq) } catch { throw CollectorError.storage("cannot sync the queue: \(error)") }
        }
        return result
    }

    /// One span of a request after normalization: facts (nil: invalid ids), where its normalized
    /// bytes are, and its scope.
    struct NormalizedSpan {
        var facts: SpanFacts?
        var range: Range<Int>
        var scope: Int32
    }

    /// Validates and normalizes every span of a protobuf request body.
    private func normalize(_ body: [UInt8]) throws -> (NormalizedRequest, [NormalizedSpan]) {
        try body.withUnsafeBytes { b in
            let wire = try OTLPWireDecoder.decode(b)
            let (request, facts, ranges) = NormalizedRequest.build(wire, body: b, normalizer: normalizer, defaultProject: configuration.defaultProject)
            var spans: [NormalizedSpan] = []
            spans.reserveCapacity(facts.count)
            for i in facts.indices { spans.append(NormalizedSpan(facts: facts[i], range: ranges[i], scope: Int32(truncatingIfNeeded: wire.spans[i].scope))) }
            return (request, spans)
        }
    }

    /// Feeds the accepted spans of WAL record `seq` to the rollups and the sampler.
    private static func apply(seq: UInt64, request: NormalizedRequest, spans: [NormalizedSpan], excluded: [Int], now: UInt64, state s: inout State, metrics: CollectorMetrics) {
        s.pending.open(seq: seq)
        var outcomes: [TailSampler.Outcome] = []
        outcomes.reserveCapacity(spans.count)
        var rollups = RollupTable()
        var accepted = 0
        var ex = 0
        for (i, span) in spans.enumerated() {
            if ex < excluded.count, excluded[ex] == i {
                ex += 1
                continue
            }
            guard let f = span.facts else { continue }
            accepted += 1
            rollups.add(f)
            s.sampler.offer(seq: seq, facts: f, span: KeptSpan(request: request, scope: span.scope, range: span.range), nowNanos: now, into: &outcomes)
        }
        s.pending.withRecord(seq) { r in
            r.rollups = rollups
            r.accepted = accepted
            r.undecided = accepted
        }
        record(outcomes, into: &s.pending, metrics: metrics)
    }

    private static func record(_ outcomes: [TailSampler.Outcome], into pending: inout PendingRecords, metrics: CollectorMetrics) {
        var kept = 0
        var dropped = 0
        for o in outcomes {
            switch o {
            case .keep(let seq, let span):
                kept += 1
                pending.withRecord(seq) { r in
                    r.kept.append(span)
                    r.undecided -= 1
                }
            case .drop(let seq):
                dropped += 1
                pending.withRecord(seq) { $0.undecided -= 1 }
            }
        }
        if kept > 0 {
            metrics.sampledIn.increment(by: kept)
            metrics.keptCount.add(kept, ordering: .relaxed)
        }
        if dropped > 0 {
            metrics.sampledOut.increment(by: dropped)
            metrics.droppedCount.add(dropped, ordering: .relaxed)
        }
    }

    // MARK: Replay

    /// Re-reads the WAL after a restart: records past the checkpoint are processed again (dedup
    /// state, rollups, sampling), except those already covered by the outbox batch `skipThrough`;
    /// acknowledged records still on disk only restore dedup state, so a client retrying a request
    /// whose answer was lost in the crash is recognised. Returns the records processed again.
    func replay(skipThrough: UInt64) throws -> Int {
        state.withLockedValue { $0.skipThroughSeq = skipThrough }
        var count = 0
        try wal.replay { seq, payload, acknowledged in
            guard let record = WALRecord.decode(payload), let (request, spans) = try? normalize(Array(record.request)) else {
                logger.error("unreadable WAL record skipped", metadata: ["seq": "\(seq)"])
                return
            }
            let now = Self.nowNanos()
            state.withLockedValue { s in
                var ex = 0
                for (i, span) in spans.enumerated() {
                    if ex < record.excluded.count, record.excluded[ex] == i { ex += 1; continue }
                    if let f = span.facts { s.dedup.insert(DuplicateFilter.fingerprint(f.traceID, f.spanID), nowNanos: now) }
                }
                if !acknowledged && seq > s.skipThroughSeq {
                    Self.apply(seq: seq, request: request, spans: spans, excluded: record.excluded, now: now, state: &s, metrics: metrics)
                }
            }
            if !acknowledged { count += 1 }
        }
        return count
    }

    // MARK: Sealing batches

    /// A batch ready to forward: the results of WAL records `firstSeq...lastSeq`.
    struct SealedBatch: Sendable {
        var firstSeq: UInt64
        var lastSeq: UInt64
        var rollups: RollupTable
        var kept: [KeptSpan]
        var accepted: Int
    }

    /// Decides traces whose time has come and seals the forwardable prefix; nil when nothing is ready.
    /// `force` decides every pending trace now (shutdown).
    func seal(force: Bool = false) -> SealedBatch? {
        let now = Self.nowNanos()
        return state.withLockedValue { s -> SealedBatch? in
            var outcomes: [TailSampler.Outcome] = []
            s.sampler.expire(nowNanos: now, force: force, into: &outcomes)
            Self.record(outcomes, into: &s.pending, metrics: metrics)
            metrics.pendingTraces.record(s.sampler.pendingTraces)
            let records = s.pending.takeDecidedPrefix(maxSpans: configuration.maxBatchSpans)
            guard let first = records.first, let last = records.last else { return nil }
            var batch = SealedBatch(firstSeq: first.seq, lastSeq: last.seq, rollups: RollupTable(), kept: [], accepted: 0)
            batch.kept.reserveCapacity(records.reduce(0) { $0 + $1.kept.count })
            for r in records {
                batch.rollups.merge(r.rollups)
                batch.kept.append(contentsOf: r.kept)
                batch.accepted += r.accepted
            }
            return batch
        }
    }

    /// Kept spans waiting in decided records (the forwarder seals early past its batch size).
    var readyKeptSpans: Int { state.withLockedValue { $0.pending.keptSpans } }

    public var statistics: CollectorStatistics {
        let pending = state.withLockedValue { $0.sampler.pendingTraces }
        return CollectorStatistics(
            spansReceived: metrics.received.load(ordering: .relaxed),
            spansRejected: metrics.rejected.load(ordering: .relaxed),
            duplicatesDropped: metrics.duplicateCount.load(ordering: .relaxed),
            sampledIn: metrics.keptCount.load(ordering: .relaxed),
            sampledOut: metrics.droppedCount.load(ordering: .relaxed),
            batchesForwarded: metrics.forwardedBatches.load(ordering: .relaxed),
            spansForwarded: metrics.forwardedSpans.load(ordering: .relaxed),
            forwardFailures: metrics.forwardFailures.load(ordering: .relaxed),
            queueDepthRecords: Int(wal.depth),
            queueBytes: wal.totalBytes,
            pendingTraces: pending)
    }

    static func nowNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// A WAL payload: the indices of spans not accepted (duplicates, invalid ids) and the request's
/// protobuf bytes as received (validation and normalization are deterministic and redone on replay).
enum WALRecord {
    /// The part before the request bytes: the count of excluded indices, then each (varints).
    static func prefix(excluded: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(2 + excluded.count * 2)
        varint(UInt64(excluded.count), &out)
        for e in excluded { varint(UInt64(e), &out) }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> (excluded: [Int], request: ArraySlice<UInt8>)? {
        var r = ProtobufWireReader(bytes)
        guard let n = r.varint(), n < 10_000_000 else { return nil }
        var excluded: [Int] = []
        for _ in 0..<n {
            guard let e = r.varint() else { return nil }
            excluded.append(Int(e))
        }
        return (excluded, bytes[r.offset...])
    }

    private static func varint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

}

/// Errors the collector reports to clients and operators.
public struct CollectorError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case queueFull, storage, configuration, badRequest, tooLarge, unsupportedMediaType }
    private let code: Code
    public let message: String
    public var description: String { message }

    public static let queueFull = CollectorError(code: .queueFull, message: "the collector's queue is full (backend slow or down); retry after the indicated delay")
    static func storage(_ m: String) -> CollectorError { CollectorError(code: .storage, message: m) }
    static func configuration(_ m: String) -> CollectorError { CollectorError(code: .configuration, message: m) }
    static func badRequest(_ m: String) -> CollectorError { CollectorError(code: .badRequest, message: m) }
    static func tooLarge(_ m: String) -> CollectorError { CollectorError(code: .tooLarge, message: m) }
    static func unsupportedMediaType(_ m: String) -> CollectorError { CollectorError(code: .unsupportedMediaType, message: m) }

    var httpStatus: Int {
        switch code {
        case .queueFull, .storage: return 503
        case .configuration: return 500
        case .badRequest: return 400
        case .tooLarge: return 413
        case .unsupportedMediaType: return 415
        }
    }
}
