import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers

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
    /// The API key (reloadable) and forwarding's health.
    let forwarding: ForwardingState
    /// This WAL's instance epoch, part of every batch id (`InstanceEpoch`).
    let instanceEpoch: String
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
        // Configurations built in code skip `validate()`: forwarding needs at least one backend.
        guard !configuration.backendURLs.isEmpty else { throw CollectorError.configuration("forward.backend_urls is empty: give at least one backend URL") }
        self.configuration = configuration
        self.logger = logger
        wal = try WriteAheadLog(directory: configuration.queueDirectory, maxSegmentBytes: configuration.queueSegmentBytes, policy: policy)
        normalizer = GenAINormalizer(priceTable: configuration.priceTable)
        metrics = CollectorMetrics(factory: metricsFactory)
        forwarding = ForwardingState(apiKey: configuration.apiKey, backendURLs: configuration.backendURLs)
        let outboxNames = (try? FileManager.default.contentsOfDirectory(atPath: configuration.queueDirectory + "/outbox")) ?? []
        instanceEpoch = try InstanceEpoch.load(
            directory: configuration.queueDirectory,
            walIsEmpty: wal.ackedSeq == 0 && wal.totalBytes == 0 && !outboxNames.contains { $0.hasPrefix("batch-") })
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
    ///
    /// `project`: the project the request's key writes to; a resource whose `evalforge.project`
    /// names another refuses the request with 403 (nil: no check, open mode without an answer).
    public func ingest(protobuf body: [UInt8], project: KeyProject? = nil) async throws -> IngestResult {
        guard wal.totalBytes < configuration.queueMaxBytes else {
            metrics.requestsRejected.increment()
            throw CollectorError.queueFull
        }
        let (request, spans) = try normalize(body, project: project)
        try checkForwardable(request, spans)
        let bodyCRC = WriteAheadLog.checksum(body)  // outside the lock; combined with the record's header in `append`
        let now = Self.nowNanos()
        let (seq, result) = try state.withLockedValue { s -> (UInt64?, IngestResult) in
            var result = IngestResult()
            var excluded: [Int] = []
            var fingerprints: [UInt64] = []
            fingerprints.reserveCapacity(spans.count)
            var local = FingerprintSet(minimumCapacity: spans.count)
            var reason: String?
            for (i, span) in spans.enumerated() {
                guard let f = span.facts, f.problem == nil else {
                    excluded.append(i)
                    result.rejected += 1
                    if reason == nil {
                        reason = "span \(i): " + (span.facts?.problem ?? "invalid trace id (16 non-zero bytes) or span id (8 non-zero bytes)")
                    }
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
            if let reason { result.rejectionReason = "\(result.rejected) span(s) rejected; first: \(reason)" }
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

    /// Room in a batch for everything but spans (header, rollups): spans of one request must fit
    /// in `maxBatchBytes` minus this.
    static let batchOverheadBytes = 64 << 10

    /// Refuses (413, before anything is acknowledged) a request the forwarder could not send: a
    /// span whose normalized bytes alone exceed the batch limit, or spans that together would not
    /// fit one batch (a WAL record is never split across batches).
    private func checkForwardable(_ request: NormalizedRequest, _ spans: [NormalizedSpan]) throws {
        let limit = configuration.maxBatchBytes - Self.batchOverheadBytes
        var total = 0
        var lastScope: Int32 = -1
        for (i, span) in spans.enumerated() {
            let scope = request.scopes[Int(span.scope)]
            let framing = span.scope != lastScope ? scope.resource.count + scope.scope.count + 36 : 0
            lastScope = span.scope
            let bytes = span.range.count + 6
            if bytes + scope.resource.count + scope.scope.count + 36 > limit {
                throw CollectorError.tooLarge("span \(i) is \(span.range.count) bytes after normalization; the collector forwards at most \(limit) bytes of spans per batch (forward.max_batch_bytes \(configuration.maxBatchBytes)): shorten its attributes or events")
            }
            total += bytes + framing
        }
        // Rollups travel in the same batch; they are computed here only for large requests.
        if total > limit / 2 {
            var rollups = RollupTable()
            for span in spans { if let f = span.facts, f.problem == nil { rollups.add(f) } }
            total += PendingRecords.estimatedBytes(rollups)
        }
        if total > limit {
            throw CollectorError.tooLarge("the request's spans and rollups are \(total) bytes after normalization; the collector forwards at most \(limit) bytes per batch (forward.max_batch_bytes \(configuration.maxBatchBytes)): send fewer spans per request")
        }
    }

    /// Validates and normalizes every span of a protobuf request body.
    private func normalize(_ body: [UInt8], project: KeyProject?) throws -> (NormalizedRequest, [NormalizedSpan]) {
        let normalized: NormalizedOTLPRequest
        do {
            normalized = try NormalizedOTLPRequest.normalize(body, normalizer: normalizer, defaultProject: project?.id ?? configuration.defaultProject)
        } catch let e as OTLPRequestError {
            throw CollectorError(e)
        }
        if let project, let foreign = normalized.foreignProject(accepts: { ForeignProjectError.accepts($0, projectID: project.id, projectName: project.name) }) {
            throw CollectorError.forbidden(foreign.message(projectID: project.id, projectName: project.name))
        }
        let request = NormalizedRequest(bytes: normalized.bytes, scopes: normalized.scopes)
        var spans: [NormalizedSpan] = []
        spans.reserveCapacity(normalized.spans.count)
        for s in normalized.spans { spans.append(NormalizedSpan(facts: s.facts, range: s.range, scope: Int32(truncatingIfNeeded: s.scope))) }
        return (request, spans)
    }

    /// Feeds the accepted spans of WAL record `seq` to the rollups and the sampler.
    private static func apply(seq: UInt64, request: NormalizedRequest, spans: [NormalizedSpan], excluded: [Int], now: UInt64, state s: inout State, metrics: CollectorMetrics) {
        // Sequences only increase (the WAL assigns them); a record that does not is skipped, not a trap.
        guard s.pending.open(seq: seq) else { return }
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
            // A span refused at ingest today (`SpanFacts.problem`) may sit in a record an older build wrote.
            guard let f = span.facts, f.problem == nil else { continue }
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
                    r.keep(span)
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
        try wal.replay({ seq, payload, acknowledged in
            let decoded: (WALRecord.Decoded, NormalizedRequest, [NormalizedSpan])
            do {
                guard let record = WALRecord.decode(payload) else { throw CollectorError.badRequest("the record's excluded-span list is unreadable") }
                let (request, spans) = try normalize(Array(record.request), project: nil)
                guard record.excluded.allSatisfy({ $0 < spans.count }), zip(record.excluded, record.excluded.dropFirst()).allSatisfy({ $0 < $1 }) else {
                    throw CollectorError.badRequest("the record's excluded-span list does not fit its \(spans.count) spans")
                }
                decoded = (record, request, spans)
            } catch {
                // A record this build cannot apply (damage, or validation stricter than the build
                // that wrote it): set aside with its reason rather than crash or drop it unseen.
                // Acknowledged records only rebuild dedup state: the backend has them already.
                guard !acknowledged else { return }
                self.deadLetter(.walRecord, seq: seq, lastSeq: seq, reason: "WAL record \(seq) cannot be applied: \(error)", payload: payload)
                return
            }
            let (record, request, spans) = decoded
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
        }, damage: { damage in
            switch damage {
            case .gap(let missing):
                let n = Int(clamping: missing.upperBound - missing.lowerBound).addingSaturated(1)
                metrics.walMissingRecords.increment(by: n)
                metrics.walMissingCount.add(n, ordering: .relaxed)
                self.deadLetter(.walGap, seq: missing.lowerBound, lastSeq: missing.upperBound,
                                reason: "WAL records \(missing.lowerBound)…\(missing.upperBound) are missing (a lost or damaged segment); skipped", payload: [])
            case .corrupt(let segment, let after, let bytes, let reason):
                self.deadLetter(.walCorruption, seq: after, lastSeq: after,
                                reason: "\(bytes.count) bytes after record \(after) of \(segment) do not verify (\(reason)); cut off the segment", payload: bytes)
            }
        })
        return count
    }

    /// The dead-letter file beside the WAL.
    var deadLetterFile: DeadLetterFile { DeadLetterFile(directory: configuration.queueDirectory) }

    /// Writes a dead-letter entry, counts it and logs it. Writing can fail (disk full): it is then
    /// logged with the reason and still counted, and the caller goes on (the alternative, refusing
    /// to start, would be the crash loop this replaces).
    /// Returns whether the entry reached the file; a caller that can keep the data (the forwarder
    /// holds its batch) must not release it when this is false.
    @discardableResult
    func deadLetter(_ kind: DeadLetterFile.Kind, seq: UInt64, lastSeq: UInt64, reason: String, payload: [UInt8]) -> Bool {
        do {
            try deadLetterFile.append(kind, seq: seq, lastSeq: lastSeq, reason: reason, payload: payload)
        } catch {
            metrics.deadLetterWriteFailures.increment()
            logger.critical("cannot write the dead-letter file", metadata: ["error": "\(error)", "kind": "\(kind)", "seq": "\(seq)", "reason": "\(reason)", "file": "\(deadLetterFile.path)"])
            return false
        }
        metrics.deadLetters.increment()
        metrics.deadLetterCount.add(1, ordering: .relaxed)
        logger.error("dead-lettered", metadata: ["kind": "\(kind)", "seq": "\(seq)", "last_seq": "\(lastSeq)", "reason": "\(reason)", "file": "\(deadLetterFile.path)"])
        return true
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
            let records = s.pending.takeDecidedPrefix(maxSpans: configuration.maxBatchSpans, maxBytes: configuration.maxBatchBytes - Self.batchOverheadBytes)
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
        let queueBytes = wal.totalBytes
        let full = queueBytes >= configuration.queueMaxBytes
        return CollectorStatistics(
            spansReceived: metrics.received.load(ordering: .relaxed),
            spansRejected: metrics.rejected.load(ordering: .relaxed),
            duplicatesDropped: metrics.duplicateCount.load(ordering: .relaxed),
            sampledIn: metrics.keptCount.load(ordering: .relaxed),
            sampledOut: metrics.droppedCount.load(ordering: .relaxed),
            batchesForwarded: metrics.forwardedBatches.load(ordering: .relaxed),
            spansForwarded: metrics.forwardedSpans.load(ordering: .relaxed),
            forwardFailures: metrics.forwardFailures.load(ordering: .relaxed),
            queueDepthRecords: Int(clamping: wal.depth),
            queueBytes: queueBytes,
            pendingTraces: pending,
            deadLetters: metrics.deadLetterCount.load(ordering: .relaxed),
            walMissingRecords: metrics.walMissingCount.load(ordering: .relaxed),
            status: forwarding.degradedReason == nil ? "ok" : "degraded",
            degradedReason: forwarding.degradedReason,
            ready: !full,
            notReadyReason: full ? "the write-ahead log is full (\(queueBytes) of \(configuration.queueMaxBytes) bytes): spans are refused with 503 until the backends take batches" : nil,
            failovers: metrics.failoverCount.load(ordering: .relaxed),
            backends: forwarding.backends.statuses)
    }

    /// Applies a reloaded configuration's API key (SIGHUP): the next delivery attempt uses it, so
    /// forwarding held by a 401/403 resumes by itself. Other settings need a restart.
    public func reload(apiKey: String?) {
        if forwarding.setAPIKey(apiKey) { logger.notice("forward.api_key reloaded") }
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

    typealias Decoded = (excluded: [Int], request: ArraySlice<UInt8>)

    static func decode(_ bytes: [UInt8]) -> Decoded? {
        var r = ProtobufWireReader(bytes)
        guard let n = r.varint(), n < 10_000_000, n <= UInt64(bytes.count) else { return nil }
        var excluded: [Int] = []
        for _ in 0..<n {
            guard let e = r.varint(), let i = Int(exactly: e) else { return nil }
            excluded.append(i)
        }
        guard r.offset <= bytes.count else { return nil }
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
    private enum Code: Sendable { case queueFull, storage, configuration, badRequest, forbidden, tooLarge, unsupportedMediaType }
    private let code: Code
    public let message: String
    public var description: String { message }

    public static let queueFull = CollectorError(code: .queueFull, message: "the collector's queue is full (backend slow or down); retry after the indicated delay")
    static func storage(_ m: String) -> CollectorError { CollectorError(code: .storage, message: m) }
    static func configuration(_ m: String) -> CollectorError { CollectorError(code: .configuration, message: m) }
    static func badRequest(_ m: String) -> CollectorError { CollectorError(code: .badRequest, message: m) }
    static func tooLarge(_ m: String) -> CollectorError { CollectorError(code: .tooLarge, message: m) }
    /// Spans of another project than the key's (403).
    static func forbidden(_ m: String) -> CollectorError { CollectorError(code: .forbidden, message: m) }
    static func unsupportedMediaType(_ m: String) -> CollectorError { CollectorError(code: .unsupportedMediaType, message: m) }

    /// The HTTP status this error maps to (400, 403, 413, 415, 500 or 503).
    public var statusCode: Int { httpStatus }

    var httpStatus: Int {
        switch code {
        case .queueFull, .storage: return 503
        case .configuration: return 500
        case .badRequest: return 400
        case .forbidden: return 403
        case .tooLarge: return 413
        case .unsupportedMediaType: return 415
        }
    }
}

extension CollectorError {
    /// A refused request (EvalForgeIngest's decoders), answered with the same status.
    init(_ e: OTLPRequestError) {
        switch e.httpStatus {
        case 413: self = .tooLarge(e.message)
        case 415: self = .unsupportedMediaType(e.message)
        default: self = .badRequest(e.message)
        }
    }
}
