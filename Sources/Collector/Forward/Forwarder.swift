import AsyncHTTPClient
import EvalForgeCore
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// Sends sealed batches to the backend: gzip protobuf, one batch in flight while the next is
/// prepared, retried with backoff until acknowledged; only then is the WAL released. On graceful shutdown it decides pending
/// traces and forwards what it can within the shutdown timeout; the rest stays in the WAL.
final class Forwarder: Service, Sendable {
    let pipeline: CollectorPipeline
    let outbox: Outbox
    let client: HTTPClient
    let url: String
    let logger: Logger
    private let ownsClient: Bool

    init(pipeline: CollectorPipeline, outbox: Outbox, client: HTTPClient? = nil, logger: Logger) {
        self.pipeline = pipeline
        self.outbox = outbox
        self.client = client ?? HTTPClient(eventLoopGroupProvider: .singleton)
        self.ownsClient = client == nil
        let base = pipeline.configuration.backendURL
        url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/batches"
        self.logger = logger
    }

    func run() async throws {
        let c = pipeline.configuration
        for left in outbox.pending() {
            logger.info("resending a batch left from the previous run", metadata: ["first_seq": "\(left.firstSeq)", "last_seq": "\(left.lastSeq)"])
            guard await deliver(left, deadline: nil) else { return }
        }
        // Two stages overlap: while one batch is being delivered, the next is sealed, encoded,
        // compressed and written to the outbox. Delivery (and so WAL release) stays in order.
        var ready: Prepared?
        await withGracefulShutdownHandler {
            var lastSeal = ContinuousClock.now
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                if ready == nil { try? await Task.sleep(for: .milliseconds(50)) }
                let due = ContinuousClock.now - lastSeal >= c.flushInterval || pipeline.readyKeptSpans >= c.maxBatchSpans
                if due { lastSeal = ContinuousClock.now }
                guard let current = ready else {
                    if due { ready = prepare(force: false) }
                    continue
                }
                async let next = due ? prepare(force: false) : nil
                let delivered = await deliver(current.entry, deadline: nil)
                if delivered { pipeline.metrics.forwardedSpans.add(current.kept, ordering: .relaxed) }
                let prepared = await next
                guard delivered else {
                    // Shutting down with the backend unreachable: both stay in the outbox and the WAL.
                    ready = nil
                    break
                }
                ready = prepared
                // More than a batch ready: prepare again at once.
                if ready == nil, pipeline.readyKeptSpans >= c.maxBatchSpans { ready = prepare(force: false) }
            }
        } onGracefulShutdown: {
            self.logger.info("collector forwarder draining")
        }
        // Drain: decide everything and forward within the shutdown timeout — unless a batch is
        // stuck in the outbox (the backend is down): then everything stays in the WAL.
        let deadline = ContinuousClock.now + c.shutdownTimeout
        if let current = ready, await deliver(current.entry, deadline: deadline) {
            pipeline.metrics.forwardedSpans.add(current.kept, ordering: .relaxed)
        }
        while outbox.pending().isEmpty, ContinuousClock.now < deadline, let prepared = prepare(force: true) {
            guard await deliver(prepared.entry, deadline: deadline) else { break }
            pipeline.metrics.forwardedSpans.add(prepared.kept, ordering: .relaxed)
        }
        await pipeline.wal.syncInBackground()
        if ownsClient { try? await client.shutdown() }
    }

    /// A batch written to the outbox, not yet delivered.
    struct Prepared: Sendable {
        var entry: Outbox.Entry
        var kept: Int
    }

    /// Seals the next batch, encodes and compresses it, and persists it to the outbox (so a crash
    /// before the acknowledgement resends the same batch). Nil when nothing is ready or it failed.
    private func prepare(force: Bool) -> Prepared? {
        guard let batch = pipeline.seal(force: force) else { return nil }
        let c = pipeline.configuration
        do {
            let body = try BatchEncoder.encode(batch, collectorID: c.collectorID)
            let gz = try Gzip.compress(body, level: Int32(c.gzipLevel))
            let entry = Outbox.Entry(firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, body: gz)
            try outbox.write(entry)
            return Prepared(entry: entry, kept: batch.kept.count)
        } catch {
            logger.error("cannot prepare batch", metadata: ["error": "\(error)"])
            pipeline.metrics.forwardErrors.increment()
            return nil
        }
    }

    /// Posts until the backend acknowledges (2xx, or 409 for an already stored batch id). Returns
    /// false only when shutdown's deadline passes; the batch then stays in the outbox and the WAL.
    private func deliver(_ entry: Outbox.Entry, deadline: ContinuousClock.Instant?) async -> Bool {
        let c = pipeline.configuration
        let id = BatchEncoder.batchID(collectorID: c.collectorID, firstSeq: entry.firstSeq, lastSeq: entry.lastSeq)
        var attempt = 0
        while true {
            attempt += 1
            let start = ContinuousClock.now
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-protobuf")
            request.headers.add(name: "Content-Encoding", value: "gzip")
            request.headers.add(name: "X-EvalForge-Batch-Id", value: id)
            if let key = c.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
            request.body = .bytes(ByteBuffer(bytes: entry.body))
            var retryAfter: Duration?
            var failure = ""
            do {
                var timeout = c.forwardTimeout
                if let deadline { timeout = min(timeout, max(.milliseconds(100), deadline - .now)) }
                let response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
                let status = Int(response.status.code)
                let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
                pipeline.metrics.forwardLatency.recordNanoseconds(Int64((ContinuousClock.now - start).components.attoseconds / 1_000_000_000 + (ContinuousClock.now - start).components.seconds * 1_000_000_000))
                if (200..<300).contains(status) || status == 409 {
                    try? pipeline.wal.release(upTo: entry.lastSeq)
                    outbox.remove(entry)
                    pipeline.metrics.batchesForwarded.increment()
                    pipeline.metrics.forwardedBatches.add(1, ordering: .relaxed)
                    pipeline.metrics.queueDepth.record(Int(pipeline.wal.depth))
                    pipeline.metrics.queueBytes.record(pipeline.wal.totalBytes)
                    return true
                }
                failure = "backend answered \(status): \(text.prefix(200))"
                if let ra = response.headers.first(name: "Retry-After"), let s = Double(ra) { retryAfter = .milliseconds(Int64(s * 1000)) }
                if (400..<500).contains(status) && status != 429 && status != 408 {
                    // The backend refuses this batch for good: keep it in the outbox for an operator,
                    // but do not let it block the queue.
                    logger.error("backend rejected batch; moved aside", metadata: ["batch_id": "\(id)", "reason": "\(failure)"])
                    let aside = outbox.directory + "/rejected"
                    try? FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true)
                    try? Data(entry.body).write(to: URL(fileURLWithPath: aside + "/" + id + ".pb.gz"))
                    try? pipeline.wal.release(upTo: entry.lastSeq)
                    outbox.remove(entry)
                    pipeline.metrics.forwardFailures.add(1, ordering: .relaxed)
                    pipeline.metrics.forwardErrors.increment()
                    return true
                }
            } catch {
                failure = "\(error)"
            }
            pipeline.metrics.forwardErrors.increment()
            pipeline.metrics.forwardFailures.add(1, ordering: .relaxed)
            let backoff = retryAfter ?? Self.backoff(attempt: attempt, initial: c.initialBackoff, max: c.maxBackoff)
            if attempt == 1 || attempt % 10 == 0 {
                logger.warning("forward failed; retrying", metadata: ["batch_id": "\(id)", "attempt": "\(attempt)", "reason": "\(failure)"])
            }
            if let deadline, ContinuousClock.now + backoff > deadline { return false }
            if deadline == nil && Task.isShuttingDownGracefully { return false }
            try? await Task.sleep(for: backoff)
        }
    }

    static func backoff(attempt: Int, initial: Duration, max maxDelay: Duration) -> Duration {
        let base = initial * (1 << min(attempt - 1, 20))
        let cap = min(base, maxDelay)
        let ms = Swift.max(1, Int64(cap.components.seconds * 1000 + cap.components.attoseconds / 1_000_000_000_000_000))
        return .milliseconds(Int64.random(in: ms / 2...ms))
    }
}
