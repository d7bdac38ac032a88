import AsyncHTTPClient
import EvalForgeCompression
import EvalForgeCore
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Sends sealed batches to the backend: protobuf compressed per `forward.compression` (lz4 by
/// default, zstd, gzip or none; each outbox file records its own encoding), up to
/// `forward.concurrency` batches in flight while the next is sealed and its outbox file written,
/// each retried with backoff until acknowledged.
/// Acknowledgements may arrive out of order; the WAL and the outbox are released only up to the
/// oldest batch still in flight, so a crash leaves every unacknowledged batch (and perhaps some
/// acknowledged ones, which the backend recognises by batch id) in the outbox to resend. On graceful
/// shutdown it decides pending traces and forwards what it can within the shutdown timeout; the
/// rest stays in the WAL.
final class Forwarder: Service, Sendable {
    let pipeline: CollectorPipeline
    let outbox: Outbox
    let client: HTTPClient
    let logger: Logger
    private let ownsClient: Bool
    /// Outbox and checkpoint files are written (and fsynced) here, in order, not on the cooperative
    /// thread pool: a few milliseconds of fsync per batch there left one of two cores idle.
    private let fileQueue = DispatchQueue(label: "evalforge.forwarder.files")
    /// Acknowledged batches are released here (checkpoint written and fsynced, outbox file
    /// removed), in batch order, while the run loop goes on preparing and delivering.
    private let releaseQueue = DispatchQueue(label: "evalforge.forwarder.release")
    /// Batches acknowledged, in order, whose release (checkpoint, outbox file) has not run yet.
    private let unreleased = Mutex<[Outbox.Entry]>([])
    /// Set when graceful shutdown begins: a failing outbox write stops retrying.
    private let stopping = Atomic<Bool>(false)
    /// Set when an outbox write gave up; every write queued after it gives up too.
    private let writeFailed = Atomic<Bool>(false)

    init(pipeline: CollectorPipeline, outbox: Outbox, client: HTTPClient? = nil, logger: Logger) {
        self.pipeline = pipeline
        self.outbox = outbox
        var configuration = HTTPClient.Configuration()
        if pipeline.configuration.backendURLs.count > 1 {
            // With backends to fail over to, one that cannot be connected to fails the attempt within
            // health_timeout_ms, not after the client's connection retries (up to its 10 s connect timeout).
            configuration.timeout.connect = .nanoseconds(Self.nanoseconds(pipeline.configuration.healthTimeout))
            configuration.connectionPool.retryConnectionEstablishment = false
        }
        self.client = client ?? HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.ownsClient = client == nil
        self.logger = logger
    }

    /// What a delivery task reports back to the run loop.
    private enum Event: Sendable {
        case finished(firstSeq: UInt64, Delivery)
        case tick
    }

    func run() async throws {
        let c = pipeline.configuration
        for left in outbox.pending() {
            logger.info("resending a batch left from the previous run", metadata: ["first_seq": "\(left.firstSeq)", "last_seq": "\(left.lastSeq)"])
            let outcome = await deliver(left, deadline: nil)
            guard outcome != .gaveUp else { return }
            complete(left)
        }
        // Preparing (seal, encode, compress, outbox write) runs on this task while up to
        // `forwardConcurrency` deliveries run as child tasks.
        var stopped = false
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Event.self) { group in
                var window = InFlightWindow()
                var ticking = false
                var lastSeal = ContinuousClock.now
                while !stopped {
                    if Task.isCancelled || Task.isShuttingDownGracefully { stopped = true; break }
                    // Fill the window with every batch that is due.
                    while window.count < c.forwardConcurrency {
                        let due = ContinuousClock.now - lastSeal >= c.flushInterval || pipeline.readyKeptSpans >= c.maxBatchSpans
                        guard due else { break }
                        lastSeal = ContinuousClock.now
                        let prepared: Prepared
                        do {
                            guard let p = try prepare(force: false) else { break }
                            prepared = p
                        } catch {
                            // The batch cannot be encoded at all: stop forwarding rather than release
                            // the WAL past it; everything stays in the WAL for the next start.
                            logger.critical("cannot encode batch; forwarding stopped", metadata: ["error": "\(error)"])
                            stopped = true
                            break
                        }
                        window.append(prepared)
                        group.addTask {
                            // Sent only once its outbox file is durable (see `prepare`).
                            guard await prepared.persisted.wait() else { return .finished(firstSeq: prepared.entry.firstSeq, .gaveUp) }
                            return .finished(firstSeq: prepared.entry.firstSeq, await self.deliver(prepared.entry, deadline: nil))
                        }
                    }
                    if window.count < c.forwardConcurrency && !ticking {
                        ticking = true
                        group.addTask {
                            try? await Task.sleep(for: .milliseconds(50))
                            return .tick
                        }
                    }
                    guard let event = await group.next() else { continue }
                    switch event {
                    case .tick:
                        ticking = false
                    case .finished(let firstSeq, let outcome):
                        if outcome == .gaveUp {
                            // Shutting down with the backend unreachable: it stays in the outbox and the WAL.
                            stopped = true
                            continue
                        }
                        for done in window.finish(firstSeq: firstSeq) { complete(done.entry, kept: done.kept) }
                    }
                }
                // Let the deliveries in flight finish (they give up at shutdown when failing), then
                // release what was acknowledged in order.
                while let event = await group.next() {
                    if case .finished(let firstSeq, let outcome) = event, outcome != .gaveUp {
                        for done in window.finish(firstSeq: firstSeq) { complete(done.entry, kept: done.kept) }
                    }
                }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.logger.info("collector forwarder draining")
        }
        // Drain: decide everything and forward within the shutdown timeout — unless a batch is
        // stuck in the outbox (the backend is down): then everything stays in the WAL.
        let deadline = ContinuousClock.now + c.shutdownTimeout
        await releasesDone()
        while outbox.pending().isEmpty, ContinuousClock.now < deadline, let prepared = try? prepare(force: true) {
            guard await prepared.persisted.wait(), await deliver(prepared.entry, deadline: deadline) != .gaveUp else { break }
            complete(prepared.entry, kept: prepared.kept)
            await releasesDone()
        }
        await pipeline.wal.syncInBackground()
        if ownsClient { try? await client.shutdown() }
    }

    /// Releases an acknowledged (or dead-lettered) batch: the WAL up to its last record, its outbox file.
    /// Called in batch order.
    private func complete(_ entry: Outbox.Entry, kept: Int = 0) {
        // Counted before the queue shrinks, so a reader that sees an empty queue sees every span forwarded.
        pipeline.metrics.forwardedSpans.add(kept, ordering: .relaxed)
        unreleased.withLock { $0.append(entry) }
        // Not awaited: the serial release queue keeps batch order; `run` waits for it before returning.
        // Whichever job runs first releases every batch completed so far with one checkpoint write;
        // the outbox files go only after the checkpoint is durable.
        releaseQueue.async { [self] in
            let done = unreleased.withLock { u -> [Outbox.Entry] in
                defer { u.removeAll(keepingCapacity: true) }
                return u
            }
            guard let last = done.last else { return }
            do {
                try pipeline.wal.release(upTo: last.lastSeq)
            } catch {
                // Kept for the next release; until then a restart resends them (same batch ids).
                logger.error("cannot write the WAL checkpoint", metadata: ["error": "\(error)"])
                unreleased.withLock { $0.insert(contentsOf: done, at: 0) }
                return
            }
            for e in done { outbox.remove(e) }
            pipeline.metrics.queueDepth.record(Int(clamping: pipeline.wal.depth))
            pipeline.metrics.queueBytes.record(pipeline.wal.totalBytes)
        }
    }

    /// Returns when every release queued so far is done.
    private func releasesDone() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in releaseQueue.async { c.resume() } }
    }

    /// A batch sealed and queued for the outbox, not yet delivered.
    struct Prepared: Sendable {
        var entry: Outbox.Entry
        var kept: Int
        /// Completes when the outbox file is durable (true), or when writing it failed for good (false).
        var persisted: OutboxWrite
    }

    /// Seals the next batch and encodes and compresses it, then queues its outbox write (so a
    /// crash before the acknowledgement resends the *same* batch) and returns without waiting for
    /// it: the next batch is sealed while this one's file is written and fsynced. Writes run on the
    /// serial `fileQueue` in batch order, so a batch's file is never durable before an earlier
    /// one's; a delivery waits for its own (`persisted`). Nil when nothing is ready.
    private func prepare(force: Bool) throws -> Prepared? {
        guard let batch = pipeline.seal(force: force) else { return nil }
        let c = pipeline.configuration
        var (coding, level) = c.forwardCoding
        let body: [UInt8]
        do {
            body = try BatchEncoder.encode(batch, collectorID: c.collectorID, epoch: pipeline.instanceEpoch, coding: coding, level: level)
        } catch {
            // Compression does not fail on valid input; should it, the batch goes uncompressed
            // rather than being dropped (its records are sealed: nothing else would send them).
            logger.error("cannot compress batch; sending it uncompressed", metadata: ["error": "\(error)"])
            pipeline.metrics.forwardErrors.increment()
            coding = .identity
            body = try BatchEncoder.encode(batch, collectorID: c.collectorID, epoch: pipeline.instanceEpoch, coding: coding, level: level)
        }
        return queue(Outbox.Entry(firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, body: body, coding: coding), kept: batch.kept.count)
    }

    /// Queues `entry`'s outbox write. A failed write (disk full, I/O error) is retried with backoff
    /// on the file queue, which holds back the later batches' writes (and so their deliveries and
    /// the WAL's release: the receiver answers 503 when the queue fills) until it succeeds; at
    /// shutdown it gives up, and so does every write queued after it, keeping batch order on disk.
    private func queue(_ entry: Outbox.Entry, kept: Int) -> Prepared {
        let done = OutboxWrite()
        let (outbox, logger, metrics) = (outbox, logger, pipeline.metrics)
        let initial = pipeline.configuration.initialBackoff, maxBackoff = pipeline.configuration.maxBackoff
        fileQueue.async {
            var attempt = 0
            while !self.writeFailed.load(ordering: .relaxed) {
                attempt += 1
                do {
                    try outbox.write(entry)  // write, fsync, rename, fsync the directory
                    done.complete(true)
                    return
                } catch {
                    metrics.forwardErrors.increment()
                    if attempt == 1 || attempt % 10 == 0 {
                        logger.error("cannot write outbox file; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                    }
                    if self.stopping.load(ordering: .relaxed) { self.writeFailed.store(true, ordering: .relaxed); break }
                    let pause = Backoff.delay(attempt: attempt, initial: initial, max: maxBackoff)
                    usleep(useconds_t(clamping: Self.milliseconds(pause).multipliedSaturated(by: 1000)))
                }
            }
            done.complete(false)
        }
        return Prepared(entry: entry, kept: kept, persisted: done)
    }

    /// How a delivery ended.
    enum Delivery: Sendable, Equatable {
        /// The backend acknowledged it (2xx, or 409 for an already stored batch id).
        case acknowledged
        /// The backend proved it malformed (400): written to the dead-letter file with the answer,
        /// counted; released like an acknowledged batch (resending cannot succeed).
        case deadLettered
        /// Shutdown's deadline passed first; it stays in the outbox and the WAL.
        case gaveUp
    }

    /// What an answer from the backend means for a batch.
    enum Answer: Equatable {
        case acknowledged
        /// Malformed batch (400): dead-letter it.
        case malformed
        /// The backend refuses it for a reason outside the batch (401, 403, 404, 413, 415, other
        /// 4xx): held, retried with backoff until the cause is fixed (a new key, a larger limit),
        /// reported as degraded. Never released.
        case refused
        /// 408, 429, 5xx: retried with backoff.
        case transient

        init(status: Int) {
            switch status {
            case 200..<300, 409: self = .acknowledged
            case 400: self = .malformed
            case 408, 429: self = .transient
            case 401..<500: self = .refused
            default: self = .transient
            }
        }
    }

    /// Transient failures of one batch before forwarding counts as degraded (backend unreachable).
    static let degradedAfterAttempts = 5

    /// Posts until a backend acknowledges it or proves it malformed; `.gaveUp` only when
    /// shutdown's deadline passes. Refusals (401, 403, 413…) hold the batch and are retried with
    /// bounded backoff: acknowledged data is never released without the backend having it. The
    /// caller releases the WAL and the outbox file, in batch order.
    ///
    /// Each attempt goes to a healthy backend (`BackendPool`); a transport error or a 5xx marks it
    /// unhealthy and the batch goes to the next healthy one at once, without backoff (same batch id:
    /// a backend that stored it and lost the answer is answered as a duplicate by the next). Other
    /// answers (400, 401, 403, 408, 413, 429…) keep their meaning for the batch, whichever backend
    /// gave them; the retry after the backoff may go to another backend.
    private func deliver(_ entry: Outbox.Entry, deadline: ContinuousClock.Instant?) async -> Delivery {
        let c = pipeline.configuration
        let id = BatchEncoder.batchID(collectorID: c.collectorID, epoch: pipeline.instanceEpoch, firstSeq: entry.firstSeq, lastSeq: entry.lastSeq)
        let body = ByteBuffer(bytes: entry.body)  // copied once, shared by every attempt
        let forwarding = pipeline.forwarding
        let pool = forwarding.backends
        var attempt = 0  // rounds, each ended by a backoff
        var tried = Set<Int>()  // backends that failed this round
        var failedOver = false
        while true {
            if Task.isCancelled { return .gaveUp }  // see below: a cancelled task must not spin
            if !failedOver {
                attempt += 1
                tried.removeAll(keepingCapacity: true)
            }
            failedOver = false
            let target = pool.pick(avoiding: tried)
            let backend = pool.backends[target]
            var unhealthy = false
            let start = ContinuousClock.now
            var request = HTTPClientRequest(url: backend.batchesURL)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-protobuf")
            // The encoding the batch was stored with, not today's configuration (see `Outbox`).
            if let encoding = entry.coding.headerValue { request.headers.add(name: "Content-Encoding", value: encoding) }
            request.headers.add(name: "X-EvalForge-Batch-Id", value: id)
            // Read per attempt: a key reloaded on SIGHUP applies to the next retry.
            if let key = forwarding.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
            request.body = .bytes(body)
            var retryAfter: Duration?
            var failure = ""
            var answer = Answer.transient
            do {
                var timeout = c.forwardTimeout
                if let deadline { timeout = min(timeout, max(.milliseconds(100), deadline - .now)) }
                let response = try await client.execute(request, timeout: .nanoseconds(Self.nanoseconds(timeout)))
                let status = Int(response.status.code)
                let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
                pipeline.metrics.forwardLatency.recordNanoseconds(Self.nanoseconds(ContinuousClock.now - start))
                answer = Answer(status: status)
                unhealthy = status >= 500
                if answer == .acknowledged {
                    if pool.markHealthy(target), pool.count > 1 {
                        logger.notice("backend answers again", metadata: ["backend": "\(backend.base)"])
                    }
                    pipeline.metrics.batchesForwarded.increment()
                    pipeline.metrics.forwardedBatches.add(1, ordering: .relaxed)
                    if forwarding.delivered(id) {
                        pipeline.metrics.forwardDegraded.record(0)
                        logger.notice("forwarding resumed", metadata: ["batch_id": "\(id)"])
                    }
                    return .acknowledged
                }
                failure = "backend \(backend.base) answered \(status): \(text.prefix(200))"
                if let d = RetryAfter.parse(response.headers.first(name: "Retry-After"), maximum: c.maxBackoff) { retryAfter = d }
                if answer == .malformed {
                    if pipeline.deadLetter(
                        .rejectedBatch, seq: entry.firstSeq, lastSeq: entry.lastSeq,
                        reason: "the backend refused batch \(id) as malformed (\(failure)); body \(entry.coding.headerValue ?? "identity")-encoded",
                        payload: entry.body) {
                        pipeline.metrics.forwardFailures.add(1, ordering: .relaxed)
                        pipeline.metrics.forwardErrors.increment()
                        if forwarding.delivered(id) { pipeline.metrics.forwardDegraded.record(0) }
                        return .deadLettered
                    }
                    // Not set aside, so not released: held and retried like a refused batch.
                    failure += "; the dead-letter file cannot be written"
                    answer = .refused
                }
            } catch {
                failure = "backend \(backend.base): \(error)"
                unhealthy = true
            }
            pipeline.metrics.forwardErrors.increment()
            pipeline.metrics.forwardFailures.add(1, ordering: .relaxed)
            if unhealthy {
                tried.insert(target)
                if pool.markFailed(target, reason: failure), pool.count > 1 {
                    logger.warning("backend failed; its batches go to the others until it is ready again", metadata: ["backend": "\(backend.base)", "reason": "\(failure)"])
                }
                // Another backend is healthy: the batch goes there now (the deadline allowing).
                if pool.hasHealthy(avoiding: tried), deadline.map({ ContinuousClock.now < $0 }) ?? true {
                    pipeline.metrics.forwardFailovers.increment()
                    pipeline.metrics.failoverCount.add(1, ordering: .relaxed)
                    failedOver = true
                    continue
                }
            }
            if answer == .refused {
                pipeline.metrics.forwardBlocked.increment()
            }
            if answer == .refused || attempt >= Self.degradedAfterAttempts {
                let what = answer == .refused ? "the backend refuses batches" : pool.count > 1 ? "no backend can be reached or they keep failing" : "the backend cannot be reached or keeps failing"
                let reason = "\(what) (\(failure)); batch \(id) and everything after it are held in the WAL and retried, nothing is released"
                if forwarding.hold(id, reason: reason) {
                    pipeline.metrics.forwardDegraded.record(1)
                    logger.error("forwarding degraded", metadata: ["batch_id": "\(id)", "reason": "\(failure)"])
                }
            }
            let backoff = retryAfter ?? Backoff.delay(attempt: attempt, initial: c.initialBackoff, max: c.maxBackoff)
            if attempt == 1 || attempt % 10 == 0 {
                logger.warning("forward failed; retrying", metadata: ["batch_id": "\(id)", "attempt": "\(attempt)", "reason": "\(failure)"])
            }
            if let deadline, ContinuousClock.now + backoff > deadline { return .gaveUp }
            if deadline == nil && Task.isShuttingDownGracefully { return .gaveUp }
            // A cancelled task gets CancellationError from every request and no sleep: without this
            // check the loop spins (tens of thousands of attempts a second). The batch stays in the
            // outbox and the WAL for the next start.
            if Task.isCancelled { return .gaveUp }
            try? await Task.sleep(for: backoff)
        }
    }

    /// A duration in whole nanoseconds, saturating (no trap for huge durations).
    static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        return s.multipliedSaturated(by: 1_000_000_000).addingSaturated(a / 1_000_000_000)
    }

    /// A duration in whole milliseconds, saturating.
    static func milliseconds(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        return s.multipliedSaturated(by: 1000).addingSaturated(a / 1_000_000_000_000_000)
    }
}

/// Completes once with whether a batch's outbox file was written; any number of tasks may wait.
final class OutboxWrite: Sendable {
    private let state = Mutex<(done: Bool?, waiters: [CheckedContinuation<Bool, Never>])>((nil, []))

    func complete(_ ok: Bool) {
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.done = ok
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: ok) }
    }

    func wait() async -> Bool {
        await withCheckedContinuation { c in
            let done = state.withLock { s -> Bool? in
                if s.done == nil { s.waiters.append(c) }
                return s.done
            }
            if let done { c.resume(returning: done) }
        }
    }
}

/// The batches in flight, oldest first; acknowledgements may come in any order, releases go in order.
struct InFlightWindow {
    private var batches: [(prepared: Forwarder.Prepared, done: Bool)] = []

    var count: Int { batches.count }

    mutating func append(_ p: Forwarder.Prepared) { batches.append((p, false)) }

    /// Marks the batch starting at `firstSeq` done; returns the batches that can now be released
    /// (the done prefix), oldest first.
    mutating func finish(firstSeq: UInt64) -> [Forwarder.Prepared] {
        if let i = batches.firstIndex(where: { $0.prepared.entry.firstSeq == firstSeq }) { batches[i].done = true }
        var released: [Forwarder.Prepared] = []
        while let first = batches.first, first.done {
            released.append(first.prepared)
            batches.removeFirst()
        }
        return released
    }
}
