import EvalForgeCore
import Logging
import ServiceLifecycle
import Synchronization
import Tracing

extension EvalForge {
    /// Records spans into a bounded buffer and exports them to the collector in the background.
    ///
    /// Recording (`startLLMCall`, `LLMSpan.end()`) never blocks on the network: a span costs one short
    /// critical section. The pipeline is a swift-service-lifecycle `Service`: `run()` is the export
    /// loop; run it in the application's `ServiceGroup` (graceful shutdown flushes within
    /// `buffer.shutdownTimeout`). The SDK starts no task of its own: without a running loop, spans
    /// wait in the buffer until `forceFlush()` or `shutdown()` (enough for a short script).
    public final class Pipeline: Service, Sendable {
        public let configuration: Configuration
        let logger: Logger
        let buffer: SpanBuffer
        let sampler: Sampler
        let counters = PipelineCounters()
        let metrics = MetricsPublisher()
        let signal = WakeSignal()
        let transport: OTLPHTTPTransport
        /// Holds unsampled spans until their trace's fate is known; nil when there is no local rule.
        let traceKeeper: TraceKeeper?
        let capturesContent: Bool
        private let enabled: Bool
        private let lifecycle = Mutex(Lifecycle())
        private let breaker: CircuitBreaker
        /// Wall clock minus monotonic clock (wrapping), in ns: span starts read only the monotonic
        /// clock. Set at creation, refreshed by the export loop (`refreshWallClockOffset()`).
        private let wallClockOffset = Atomic<UInt64>(Clocks.wallClockOffset())

        private struct Lifecycle {
            var running = false
            var shutdownRequested = false
            var finished = false
            var finishWaiters: [CheckedContinuation<Void, Never>] = []
        }

        /// A pipeline with `configuration` (numbers pinned into their documented bounds, see
        /// `Configuration.bounded()`); nothing is exported until `run()` is running.
        public convenience init(configuration: Configuration = .default, logger: Logger = Logger(label: "evalforge.sdk")) {
            self.init(configuration: configuration, logger: logger, enabled: true)
        }

        init(configuration: Configuration, logger: Logger, enabled: Bool) {
            let configuration = configuration.bounded()
            self.configuration = configuration
            self.logger = logger
            self.enabled = enabled
            buffer = SpanBuffer(capacity: configuration.buffer.maxSpans, batchSize: configuration.buffer.maxBatchSpans)
            sampler = Sampler(configuration.sampling)
            traceKeeper = sampler.holdsUnsampled ? TraceKeeper(capacity: configuration.buffer.maxSpans, holdFor: TraceKeeper.holdTime(flushInterval: configuration.buffer.flushInterval)) : nil
            transport = OTLPHTTPTransport(configuration: configuration.exporter)
            capturesContent = configuration.content.capture
            breaker = CircuitBreaker(threshold: configuration.exporter.breakerThreshold, cooldown: configuration.exporter.breakerCooldown)
        }

        /// A pipeline that records nothing: what `EvalForge` uses before `bootstrap`.
        static let disabled = Pipeline(configuration: .default, logger: Logger(label: "evalforge.sdk"), enabled: false)

        // MARK: Recording

        /// Starts recording an LLM call as a CLIENT span. Its parent is `parent`, else the current
        /// EvalForge step, else the current span of the service's tracer (swift-distributed-tracing),
        /// else it starts a new trace.
        public func startLLMCall(_ request: LLMRequest, parent: TraceParent? = nil) -> LLMSpan {
            start(request, name: nil, kind: .client, parent: parent)
        }

        /// Starts recording an agent step, tool execution or retrieval as an INTERNAL span named
        /// "{operation} {name}".
        public func startStep(_ operation: GenAIOperation, name: String, parent: TraceParent? = nil) -> LLMSpan {
            let request = LLMRequest(operation: operation, provider: "", model: "")
            var span = start(request, name: "\(operation.name) \(name)", kind: .internal, parent: parent)
            switch operation {
            case .invokeAgent, .createAgent: span.setAttribute(GenAIKeys.agentName, .string(name))
            case .executeTool: span.setAttribute(GenAIKeys.toolName, .string(name))
            case .retrieval: span.setAttribute(GenAIKeys.dataSourceID, .string(name))
            default: break
            }
            return span
        }

        @inline(__always)
        private func start(_ request: LLMRequest, name: String?, kind: SpanRecord.Kind, parent: TraceParent?) -> LLMSpan {
            let parent = parent ?? EvalForge.currentParent(resolver: configuration.parentResolver)
            var request = request
            if let context = LLMCallContext.currentIfAny { context.apply(to: &request) }
            // One clock read: the wall-clock start is derived from it (see `wallClockOffset`).
            let now = Clocks.monotonicNanos()
            let traceID: TraceID
            let spanID: UInt64
            if let parent {
                traceID = parent.traceID
                spanID = IDGenerator.spanID()
            } else {
                (traceID, spanID) = IDGenerator.rootIDs()
            }
            // Through the memberwise init (see `SpanRecord`), with the parent's `sampled=0` decided up
            // front: the record is built in place, not copied.
            return LLMSpan(
                record: SpanRecord(
                    plain: SpanRecord.Plain(
                        traceID: traceID,
                        spanID: spanID,
                        parentSpanID: parent?.spanID.value ?? 0,
                        kind: kind,
                        startUnixNanos: unixNanos(atMonotonic: now),
                        parentDeclined: parent.map { !$0.sampled && sampler.respectParent } ?? false),
                    name: name,
                    request: request),
                startMonotonic: now, pipeline: self)
        }

        /// The wall-clock time of a monotonic reading: one clock read per span start instead of two.
        @inline(__always)
        func unixNanos(atMonotonic monotonic: UInt64) -> UInt64 {
            monotonic &+ wallClockOffset.load(ordering: .relaxed)
        }

        /// Re-reads the wall clock's offset from the monotonic clock, so a stepped system clock is
        /// followed within one flush interval (the export loop calls it at every wake-up).
        func refreshWallClockOffset() {
            wallClockOffset.store(Clocks.wallClockOffset(), ordering: .relaxed)
        }

        /// Hands an ended span's record (its `sampling` decided by `LLMSpan.end()`) to the buffer,
        /// moving it out of the span, which keeps only its plain fields. An unsampled span is dropped
        /// here unless a local rule may still keep its trace (`TraceKeeper`).
        @inline(__always)
        func submit(from record: inout SpanRecord) {
            guard enabled else { return record = SpanRecord(keeping: record.plain) }
            // `recorded` is not counted here: it is the sum of the three outcomes below (the buffer
            // counts what it accepts under its lock), one atomic read-modify-write fewer per span.
            if record.sampling == .notSampled, traceKeeper == nil {
                counters.sampledOut.add(1, ordering: .relaxed)
                counters.sampledOutAtEnd.add(1, ordering: .relaxed)
                return record = SpanRecord(keeping: record.plain)
            }
            switch buffer.append(from: &record) {
            case .accepted: break
            case .acceptedBatchReady: signal.signal()
            case .full:
                counters.droppedBufferFull.add(1, ordering: .relaxed)
                record = SpanRecord(keeping: record.plain)
            }
        }

        /// Counters since start.
        public var statistics: Statistics {
            let droppedBufferFull = counters.droppedBufferFull.load(ordering: .relaxed)
            return Statistics(
                recorded: buffer.accepted &+ counters.sampledOutAtEnd.load(ordering: .relaxed) &+ droppedBufferFull,
                sampledOut: counters.sampledOut.load(ordering: .relaxed),
                droppedBufferFull: droppedBufferFull,
                exported: counters.exported.load(ordering: .relaxed),
                exportFailed: counters.exportFailed.load(ordering: .relaxed),
                exportRequests: counters.exportRequests.load(ordering: .relaxed),
                exportRetries: counters.exportRetries.load(ordering: .relaxed),
                buffered: buffer.count + (traceKeeper?.heldCount ?? 0))
        }

        // MARK: Export loop

        /// The export loop (`Service.run()`): exports until graceful shutdown (of the `ServiceGroup`),
        /// task cancellation or `shutdown()`, then flushes what is buffered within
        /// `buffer.shutdownTimeout` and returns. A pipeline runs once; a second `run()` throws.
        public func run() async throws {
            let start = lifecycle.withLock { l -> Bool in
                guard !l.running, !l.finished else { return false }
                l.running = true
                return true
            }
            guard start else { throw EvalForgeError.alreadyRunning }
            logger.debug("evalforge export loop started", metadata: ["endpoint": "\(transport.endpointDescription)"])
            await withGracefulShutdownHandler {
                await withTaskCancellationHandler {
                    var batch: [SpanRecord] = []
                    var encoder = OTLPSpanEncoder(configuration: configuration)
                    while !shutdownRequested {
                        await signal.wait(timeout: configuration.buffer.flushInterval)
                        refreshWallClockOffset()
                        if shutdownRequested { break }
                        await exportBuffered(&batch, encoder: &encoder, deadline: nil, final: false)
                        metrics.publish(statistics)
                    }
                    let deadline = ContinuousClock.now + configuration.buffer.shutdownTimeout
                    await exportBuffered(&batch, encoder: &encoder, deadline: deadline, final: true)
                    metrics.publish(statistics)
                } onCancel: {
                    self.requestShutdown()
                }
            } onGracefulShutdown: {
                self.requestShutdown()
            }
            let waiters = lifecycle.withLock { l -> [CheckedContinuation<Void, Never>] in
                l.finished = true
                l.running = false
                defer { l.finishWaiters = [] }
                return l.finishWaiters
            }
            for w in waiters { w.resume() }
            logger.debug("evalforge export loop stopped", metadata: ["exported": "\(counters.exported.load(ordering: .relaxed))"])
        }

        private var shutdownRequested: Bool { lifecycle.withLock { $0.shutdownRequested } }

        private func requestShutdown() {
            lifecycle.withLock { $0.shutdownRequested = true }
            signal.signal()
        }

        /// Stops the export loop after a final flush (bounded by `buffer.shutdownTimeout`) and waits
        /// for it. Without a running loop it flushes directly.
        public func shutdown() async {
            let wasRunning = lifecycle.withLock { l -> Bool in
                l.shutdownRequested = true
                return l.running
            }
            signal.signal()
            if wasRunning {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let done = lifecycle.withLock { l -> Bool in
                        if l.finished { return true }
                        l.finishWaiters.append(c)
                        return false
                    }
                    if done { c.resume() }
                }
            } else {
                var batch: [SpanRecord] = []
                var encoder = OTLPSpanEncoder(configuration: configuration)
                await exportBuffered(&batch, encoder: &encoder, deadline: ContinuousClock.now + configuration.buffer.shutdownTimeout, final: true)
            }
        }

        /// Exports everything buffered now and waits until it and any export in flight are done
        /// (or `timeout` passes).
        public func forceFlush(timeout: Duration = .seconds(10)) async {
            let deadline = ContinuousClock.now + timeout.clamped(to: .zero ... Configuration.maxDuration)
            var batch: [SpanRecord] = []
            var encoder = OTLPSpanEncoder(configuration: configuration)
            await exportBuffered(&batch, encoder: &encoder, deadline: deadline, final: false)
            while counters.inFlight.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(2))
            }
        }

        /// Drains the buffer and exports it in batches of at most `maxBatchSpans`, up to
        /// `exporter.maxConcurrentExports` requests in flight. `final` (shutdown) decides every span
        /// still waiting for its trace's fate.
        private func exportBuffered(_ batch: inout [SpanRecord], encoder: inout OTLPSpanEncoder, deadline: ContinuousClock.Instant?, final: Bool) async {
            let concurrency = max(1, configuration.exporter.maxConcurrentExports)
            repeat {
                counters.inFlight.add(1, ordering: .releasing)
                buffer.drain(into: &batch)
                if let traceKeeper {
                    let dropped = traceKeeper.filter(&batch, now: Clocks.monotonicNanos(), final: final)
                    if dropped > 0 { counters.sampledOut.add(dropped, ordering: .relaxed) }
                }
                if batch.isEmpty {
                    counters.inFlight.subtract(1, ordering: .releasing)
                    return
                }
                // Encoding stays on this task (one encoder, reused); up to `concurrency` requests overlap.
                var start = batch.startIndex
                await withTaskGroup(of: Void.self) { group in
                    var running = 0
                    while start < batch.endIndex {
                        if running == concurrency {
                            await group.next()
                            running -= 1
                        }
                        let end = start + min(configuration.buffer.maxBatchSpans, batch.endIndex - start)
                        let body = encoder.encode(batch[start..<end])
                        let spans = end - start
                        group.addTask { await self.send(body, spans: spans, deadline: deadline) }
                        running += 1
                        start = end
                    }
                }
                batch.removeAll(keepingCapacity: true)
                counters.inFlight.subtract(1, ordering: .releasing)
            } while buffer.count >= configuration.buffer.maxBatchSpans || (buffer.count > 0 && deadline.map { ContinuousClock.now < $0 } == true)
        }

        /// Sends one batch with retries, backoff and the circuit breaker.
        private func send(_ body: [UInt8], spans: Int, deadline: ContinuousClock.Instant?) async {
            var attempt = 0
            let c = configuration.exporter
            while true {
                if let wait = breaker.waitBeforeNextAttempt() {
                    guard await sleep(wait, deadline: deadline) else { return fail(spans, "circuit breaker open until the deadline") }
                }
                attempt += 1
                counters.exportRequests.add(1, ordering: .relaxed)
                if attempt > 1 { counters.exportRetries.add(1, ordering: .relaxed) }
                var timeout = c.timeout
                if let deadline { timeout = min(timeout, max(.milliseconds(50), deadline - ContinuousClock.now)) }
                switch await transport.send(body, timeout: timeout) {
                case .accepted(let rejected):
                    breaker.recordSuccess()
                    let rejected = min(max(0, rejected), spans)
                    counters.exported.add(spans - rejected, ordering: .relaxed)
                    if rejected > 0 {
                        counters.exportFailed.add(rejected, ordering: .relaxed)
                        logger.warning("collector rejected spans", metadata: ["rejected": "\(rejected)"])
                    }
                    return
                case .rejected(let reason):
                    breaker.recordSuccess()
                    return fail(spans, reason)
                case .retryable(let reason, let retryAfter):
                    breaker.recordFailure()
                    guard attempt < c.maxAttempts else { return fail(spans, "gave up after \(attempt) attempts: \(reason)") }
                    let backoff = retryAfter.map { min($0, .seconds(60)) } ?? Backoff.delay(attempt: attempt, initial: c.initialBackoff, max: c.maxBackoff)
                    logger.debug("export retry", metadata: ["attempt": "\(attempt)", "reason": "\(reason)"])
                    guard await sleep(backoff, deadline: deadline) else { return fail(spans, "shutdown deadline passed: \(reason)") }
                }
            }
        }

        private func fail(_ spans: Int, _ reason: String) {
            counters.exportFailed.add(spans, ordering: .relaxed)
            logger.warning("evalforge export failed; spans dropped", metadata: ["spans": "\(spans)", "reason": "\(reason)"])
        }

        /// Sleeps unless that would pass `deadline`; false when it would.
        private func sleep(_ d: Duration, deadline: ContinuousClock.Instant?) async -> Bool {
            if let deadline, ContinuousClock.now + d > deadline { return false }
            do { try await Task.sleep(for: d) } catch {
                // Cancelled: the run loop is shutting down; keep trying within the deadline.
                return deadline != nil
            }
            return true
        }
    }
}

/// Opens after `threshold` consecutive failures; while open, the next attempt waits out the cooldown
/// (then one probe decides).
final class CircuitBreaker: Sendable {
    private struct State {
        var consecutiveFailures = 0
        var openUntil: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    let threshold: Int
    let cooldown: Duration

    init(threshold: Int, cooldown: Duration) {
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
    }

    func waitBeforeNextAttempt() -> Duration? {
        state.withLock { s in
            guard let until = s.openUntil else { return nil }
            let now = ContinuousClock.now
            return until > now ? until - now : nil
        }
    }

    func recordSuccess() {
        state.withLock { s in
            s.consecutiveFailures = 0
            s.openUntil = nil
        }
    }

    func recordFailure() {
        state.withLock { s in
            s.consecutiveFailures = min(s.consecutiveFailures, threshold) + 1
            if s.consecutiveFailures >= threshold { s.openUntil = ContinuousClock.now + cooldown }
        }
    }
}
