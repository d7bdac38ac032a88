import EvalForgeModel
import EvalForgeStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Online evaluation: ingest enqueues the stored spans that match an enabled rule (the rules are
/// cached per project for 2 s, so a project without rules costs ingest one dictionary lookup) into
/// the durable `OnlineQueue` before it acknowledges the batch. Workers claim queued spans one
/// project at a time in round-robin order, read them back from the store, evaluate them against
/// the project's current rules (sampled by trace id), store the results — scores on the span
/// (source "online", run id = rule id) and an evaluation span with `gen_ai.evaluation.result`
/// events in the same trace, all with deterministic ids, so evaluating a span again after a crash
/// overwrites rather than duplicates — and only then delete the queue rows.
final class OnlineEvaluator: Service, Sendable {
    private let repo: EvalRepository
    private let store: any SpanStore
    private let providers: ProviderRegistry
    private let cache: ResultCache
    private let logger: Logger
    let queue: OnlineQueue
    private let maxConcurrentBatches: Int
    private let claimSpans: Int
    private let rulesCache = Mutex<[String: (at: ContinuousClock.Instant, rules: [OnlineRule], specs: [VersionedSpec])]>([:])
    /// The project claimed last: the next claim starts after it (round-robin).
    private let cursor = Mutex<String?>(nil)
    private let woken = Mutex(false)
    private let lastSkipLog = Mutex<[String: ContinuousClock.Instant]>([:])
    private let enqueued = Counter(label: "evalforge_eval_online_enqueued_spans_total")
    private let skippedOverShare = Counter(label: "evalforge_eval_online_skipped_spans_total", dimensions: [("reason", "project_share")])
    private let failedAfterClaims = Counter(label: "evalforge_eval_online_skipped_spans_total", dimensions: [("reason", "claims_exhausted")])
    private let missingSpans = Counter(label: "evalforge_eval_online_skipped_spans_total", dimensions: [("reason", "span_missing")])
    private let retries = Counter(label: "evalforge_eval_online_retries_total")
    private let evaluated = Counter(label: "evalforge_eval_online_evaluations_total")
    private let callsRepeated = Counter(label: "evalforge_eval_judge_calls_repeated_total", dimensions: [("work", "online")])

    init(repo: EvalRepository, store: any SpanStore, providers: ProviderRegistry, cache: ResultCache, perProjectLimit: Int, maxClaims: Int, maxConcurrentBatches: Int,
         claimSpans: Int, lease: WorkLease, logger: Logger) {
        self.repo = repo
        self.store = store
        self.providers = providers
        self.cache = cache
        self.logger = logger
        queue = OnlineQueue(db: repo.db, perProjectLimit: max(1, perProjectLimit), maxClaims: max(1, maxClaims), lease: lease)
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
        self.claimSpans = min(1000, max(1, claimSpans))
    }

    /// Enqueues the spans of a stored (or duplicate) batch that match an enabled rule, durably, in
    /// one transaction. Throws when the rules or the queue cannot be read or written: the caller
    /// must then not acknowledge the batch (its resend enqueues again; the queue keeps one row per
    /// span). Spans beyond the project's share are skipped, counted and logged.
    func enqueue(projectID: String, spans: [SpanRow]) async throws -> OnlineQueue.EnqueueOutcome {
        guard !spans.isEmpty else { return .init() }
        let (rules, specs) = try await rules(projectID)
        guard !rules.isEmpty else { return .init() }
        let names = Set(specs.map(\.spec.name))
        let active = rules.filter { $0.evaluators.contains(where: names.contains) }
        guard !active.isEmpty else { return .init() }
        var refs: [OnlineQueue.Ref] = []
        for s in spans where s.service != EvaluationSpans.service {
            guard active.contains(where: { Self.matches($0.filter, s) && Self.sampled(traceID: s.traceID, rate: $0.samplingRate) }) else { continue }
            refs.append(OnlineQueue.Ref(traceID: s.traceID, spanID: s.spanID, startUnixNanos: s.startUnixNanos))
        }
        guard !refs.isEmpty else { return .init() }
        let out = try await queue.enqueue(projectID: projectID, refs: refs)
        if out.queued > 0 {
            enqueued.increment(by: out.queued)
            wakeUp()
        }
        if out.skippedOverShare > 0 {
            skippedOverShare.increment(by: out.skippedOverShare)
            let log = lastSkipLog.withLock { m -> Bool in
                if let t = m[projectID], t.duration(to: .now) < .seconds(10) { return false }
                m[projectID] = .now
                return true
            }
            if log {
                logger.warning("online evaluation: the project's queue is full, spans skipped (counted in GET /api/online-queue; logged at most every 10 s)",
                               metadata: ["project": "\(projectID)", "skipped": "\(out.skippedOverShare)", "limit": "\(queue.perProjectLimit)"])
            }
        }
        return out
    }

    private func wakeUp() { woken.withLock { $0 = true } }

    /// Forget cached rules (after an API change).
    func invalidate(projectID: String) { _ = rulesCache.withLock { $0.removeValue(forKey: projectID) } }

    func run() async throws {
        let queued = try await queue.recover()
        if queued > 0 { logger.info("online evaluation resumes queued spans", metadata: ["spans": "\(queued)"]) }
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.queue.lease.heartbeat("online queue", logger: self.logger) { try await self.queue.extend() } }
                let slots = AsyncSemaphore(limit: self.maxConcurrentBatches)
                while !Task.isCancelled {
                    guard await slots.acquire() else { break }
                    guard let claim = await self.claimNext() else {
                        slots.release()
                        await self.idle()
                        continue
                    }
                    group.addTask {
                        await self.process(claim)
                        slots.release()
                        self.wakeUp()
                    }
                }
            }
        }
    }

    /// Sleeps in short slices until work is enqueued or finished, a released row is due, or 1 s passed.
    private func idle() async {
        let next = (try? await queue.nextDueMs()) ?? nil
        let deadline = min((nowMs()).addingSaturated(1000), next ?? Int64.max)
        while nowMs() < deadline, !Task.isCancelled {
            if woken.withLock({ w in defer { w = false }; return w }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func claimNext() async -> OnlineQueue.Claim? {
        let after = cursor.withLock { $0 }
        do {
            let (claim, exhausted) = try await queue.claim(after: after, limit: claimSpans)
            for e in exhausted {
                failedAfterClaims.increment(by: e.count)
                logger.error("online evaluation: spans dropped after repeated claims (the backend stopped each time while evaluating them; did evaluating them crash it?)",
                             metadata: ["project": "\(e.projectID)", "spans": "\(e.count)", "maxClaims": "\(queue.maxClaims)"])
            }
            if let claim { cursor.withLock { $0 = claim.projectID } }
            return claim
        } catch {
            logger.warning("online evaluation: claiming queued spans failed; retrying", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func rules(_ projectID: String) async throws -> (rules: [OnlineRule], specs: [VersionedSpec]) {
        if let c = rulesCache.withLock({ $0[projectID] }), c.at.duration(to: .now) < .seconds(2) { return (c.rules, c.specs) }
        let rules = try await repo.rules(projectID).filter(\.enabled)
        let specs = rules.isEmpty ? [] : try await repo.evaluators(projectID)
        rulesCache.withLock { $0[projectID] = (.now, rules, specs) }
        return (rules, specs)
    }

    static func matches(_ f: RuleFilter, _ s: SpanRow) -> Bool {
        if f.llmOnly ?? true, !s.isLLMCall { return false }
        if let v = f.service, v != s.service { return false }
        if let v = f.model, v != s.model { return false }
        if let v = f.provider, v != s.provider { return false }
        if let v = f.operation, v != s.operation { return false }
        if let v = f.nameContains, !s.name.contains(v) { return false }
        if let v = f.tag, !s.tags.contains(v) { return false }
        if let v = f.status, v != s.status.name { return false }
        if let v = f.minCostUSD, (s.costUSD ?? 0) < v { return false }
        if let v = f.minDurationMs, Double(s.durationNanos) / 1e6 < v { return false }
        return true
    }

    /// Deterministic per trace: the same decision for every span of a trace.
    static func sampled(traceID: String, rate: Double) -> Bool {
        if rate >= 1 { return true }
        if rate <= 0 { return false }
        // A trace id that is not hex is hashed with SHA-256 (not `hashValue`, which changes with every
        // process: the decision at enqueue and after a restart must agree).
        let low = UInt64(traceID.suffix(14), radix: 16) ?? UInt64(EvaluationSpans.hex(traceID, 14), radix: 16) ?? 0
        return Double(low) / Double(UInt64(1) << 56) < rate
    }

    /// Evaluates one claim; deletes its rows once the results are stored. A failure that is not the
    /// spans' (rules or store unavailable, a graceful stop) gives the rows back uncounted.
    private func process(_ claim: OnlineQueue.Claim) async {
        let ids = claim.rows.map(\.id)
        do {
            let (rules, specs) = try await rules(claim.projectID)
            let stored = try await storedSpans(claim.projectID, claim.rows.map(\.ref))
            let (done, calls) = try await evaluate(claim.projectID, stored, rules: rules, specs: specs)
            try Task.checkCancellation()
            let missing = claim.rows.count - stored.count
            // A suspect claim is a re-claim (the rows were claimed before, their results never
            // recorded): the judge calls it made are counted as repeated.
            let repeated = claim.suspect ? calls : 0
            let marked = try await queue.complete(projectID: claim.projectID, ids: ids, evaluated: done, missing: missing, callsRepeated: repeated)
            if marked > 0, repeated > 0 { callsRepeated.increment(by: repeated) }
            if missing > 0 {
                missingSpans.increment(by: missing)
                logger.warning("online evaluation: queued spans are no longer stored (skipped; counted in GET /api/online-queue)", metadata: ["project": "\(claim.projectID)", "spans": "\(missing)"])
            }
        } catch {
            let stopping = Task.isCancelled || error is CancellationError
            if !stopping {
                retries.increment()
                logger.warning("online evaluation failed; the spans stay queued and are retried in 5 s", metadata: ["project": "\(claim.projectID)", "spans": "\(ids.count)", "error": "\(error)"])
            }
            // In a task of its own: at a stop this task is cancelled, and a cancelled task's
            // metadata writes are dropped before they run.
            let queue = self.queue
            let release = Task { try await queue.release(ids: ids, dueMs: stopping ? 0 : (nowMs()).addingSaturated(5000)) }
            do { try await release.value } catch {
                logger.warning("online evaluation: giving claimed spans back failed; any backend claims them again when their lease runs out", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The queued spans as stored: one `listSpans` query over their traces and time range (paged).
    private func storedSpans(_ projectID: String, _ refs: [OnlineQueue.Ref]) async throws -> [SpanRow] {
        guard let first = refs.first else { return [] }
        var lo = first.startUnixNanos, hi = first.startUnixNanos
        for r in refs {
            lo = min(lo, r.startUnixNanos)
            hi = max(hi, r.startUnixNanos)
        }
        let wanted = Set(refs.map { $0.traceID + "/" + $0.spanID })
        let traces = Array(Set(refs.map(\.traceID))).sorted()
        let filter = SpanFilter(trace: TraceFilter(projectID: projectID, from: lo.addingSaturated(-1_000_000_000), to: hi.addingSaturated(1_000_000_000)), traceIDs: traces)
        var found: [String: SpanRow] = [:]
        var cursor: String?
        var pages = 0
        repeat {
            let page = try await store.listSpans(filter, limit: 1000, cursor: cursor)
            for s in page.items {
                let key = s.traceID + "/" + s.spanID
                if wanted.contains(key), found[key] == nil { found[key] = s }
            }
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && found.count < wanted.count && pages < 100
        return refs.compactMap { found[$0.traceID + "/" + $0.spanID] }
    }

    /// Evaluates `stored` against the rules and stores the results; returns the spans evaluated and
    /// the judge calls made (not served from the result cache).
    private func evaluate(_ projectID: String, _ stored: [SpanRow], rules: [OnlineRule], specs: [VersionedSpec]) async throws -> (spans: Int, calls: Int) {
        guard !rules.isEmpty, !stored.isEmpty else { return (0, 0) }
        var calls = 0
        var evaluatedKeys: [String] = []
        var evaluatedSpans = Set<String>()
        let now = nowNanos()
        var scores: [ScoreRow] = []
        var spans: [SpanRow] = []
        for rule in rules {
            let chosen = specs.filter { rule.evaluators.contains($0.spec.name) }
            guard !chosen.isEmpty else { continue }
            let evaluators: [any Evaluator]
            do { evaluators = try await providers.build(projectID: projectID, specs: chosen) } catch {
                logger.warning("online rule cannot build its evaluators", metadata: ["rule": "\(rule.id)", "error": "\(error)"])
                continue
            }
            // Evaluation spans (ours) are never evaluated themselves.
            let targets = stored.filter {
                $0.service != EvaluationSpans.service && Self.matches(rule.filter, $0) && Self.sampled(traceID: $0.traceID, rate: rule.samplingRate)
            }
            guard !targets.isEmpty else { continue }
            let kinds = providerKinds(evaluators)
            let outcomes = await withTaskGroup(of: (SpanRow, [EvaluationResult], Int64).self) { group in
                for span in targets {
                    group.addTask {
                        let start = nowNanos()
                        let x = InputConversion.span(span)
                        var results: [EvaluationResult] = []
                        for e in evaluators {
                            let key = e.isCacheable ? ResultCache.key(projectID: projectID, evaluator: e, input: x) : nil
                            if let key, let hit = await self.cache.get(key) { results.append(hit); continue }
                            let r = await e.evaluate(x)
                            // Kept right after the call: a re-claim of the span reuses it.
                            if let key, r.error == nil { await self.cache.put(key, result: r) }
                            results.append(r)
                        }
                        return (span, results, start)
                    }
                }
                var out: [(SpanRow, [EvaluationResult], Int64)] = []
                for await o in group { out.append(o) }
                return out
            }
            let end = nowNanos()
            for (span, results, start) in outcomes {
                evaluated.increment(by: results.count)
                for r in results where !r.cached { calls = calls.addingSaturated(max(0, r.usage.calls)) }
                evaluatedKeys.append(rule.id + ":" + span.traceID + "/" + span.spanID)
                evaluatedSpans.insert(span.traceID + "/" + span.spanID)
                let evalSpanID = EvaluationSpans.hex("online:" + rule.id + span.traceID + span.spanID, 16)
                spans.append(SpanRow(projectID: projectID, traceID: span.traceID, spanID: evalSpanID, parentSpanID: span.spanID, startUnixNanos: start, durationNanos: max(0, end - start),
                                     service: EvaluationSpans.service, name: "evaluation \(rule.name)", kind: .internal,
                                     status: results.contains { $0.error != nil } ? .error : .ok,
                                     attributesJSON: JSON.object(["evalforge.rule.id": .string(rule.id), "evalforge.evaluated.span_id": .string(span.spanID)]).text,
                                     eventsJSON: EvaluationSpans.events(results, at: end)))
                for (i, call) in results.flatMap(\.calls).enumerated() {
                    spans.append(EvaluationSpans.callSpan(call, projectID: projectID, traceID: span.traceID, parent: evalSpanID, index: i, providerKind: { kinds[$0] ?? $0 }))
                }
                for r in results {
                    scores.append(EvaluationSpans.score(r, id: EvaluationSpans.hex("online:" + rule.id + ":" + span.traceID + span.spanID + ":" + r.evaluator, 32), projectID: projectID,
                                                        traceID: span.traceID, spanID: span.spanID, source: .online, runID: rule.id, now: now))
                }
            }
        }
        try Task.checkCancellation()
        guard !scores.isEmpty || !spans.isEmpty else { return (0, calls) }
        // The same work stores under the same batch id (the evaluation spans' ids are deterministic
        // too), so a repeat after a crash between these two inserts adds nothing twice.
        let batchID = "online-" + EvaluationSpans.hex(projectID + "\n" + evaluatedKeys.sorted().joined(separator: ","), 32)
        // Spans first: a visible score means its evaluation span is stored too.
        if !spans.isEmpty { _ = try await store.insert(StoreBatch(projectID: projectID, batchID: batchID, spans: spans, rollups: [])) }
        try await store.insertScores(scores)
        return (evaluatedSpans.count, calls)
    }
}
