import EvalForgeModel
import EvalForgeStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Online evaluation: stored spans are queued (never blocking ingest: a full queue, or a project
/// holding more than a quarter of it, drops the batch and counts it by reason), matched against the project's enabled rules, sampled by trace id, evaluated, and
/// the results stored as scores on the span (source "online", run id = rule id) plus an evaluation
/// span with `gen_ai.evaluation.result` events in the same trace.
final class OnlineEvaluator: Service, Sendable {
    struct Batch: Sendable {
        var projectID: String
        var spans: [SpanRow]
    }

    private let repo: EvalRepository
    private let store: any SpanStore
    private let providers: ProviderRegistry
    private let cache: ResultCache
    private let logger: Logger
    private let stream: AsyncStream<Batch>
    private let continuation: AsyncStream<Batch>.Continuation
    private let maxConcurrentBatches: Int
    private let rulesCache = Mutex<[String: (at: ContinuousClock.Instant, rules: [OnlineRule], specs: [VersionedSpec])]>([:])
    private let dropped = Counter(label: "evalforge_eval_online_dropped_batches_total", dimensions: [("reason", "queue_full")])
    private let droppedOverShare = Counter(label: "evalforge_eval_online_dropped_batches_total", dimensions: [("reason", "project_share")])
    /// Batches of each project queued or being evaluated; a project may hold at most `perProjectShare`
    /// of the queue, so one busy project cannot starve the others.
    private let queued = Mutex<[String: Int]>([:])
    let perProjectShare: Int
    private let evaluated = Counter(label: "evalforge_eval_online_evaluations_total")

    init(repo: EvalRepository, store: any SpanStore, providers: ProviderRegistry, cache: ResultCache, queueBatches: Int, maxConcurrentBatches: Int, logger: Logger) {
        self.repo = repo
        self.store = store
        self.providers = providers
        self.cache = cache
        self.logger = logger
        self.maxConcurrentBatches = maxConcurrentBatches
        perProjectShare = max(1, queueBatches / 4)
        let (stream, continuation) = AsyncStream.makeStream(of: Batch.self, bufferingPolicy: .bufferingOldest(queueBatches))
        self.stream = stream
        self.continuation = continuation
    }

    /// Queues stored spans; ingest pays for no copy (the array is shared), the filtering happens in
    /// `process`, and only for a project that has rules.
    func enqueue(projectID: String, spans: [SpanRow]) {
        guard !spans.isEmpty else { return }
        let share = perProjectShare
        let admitted = queued.withLock { q -> Bool in
            let n = q[projectID, default: 0]
            guard n < share else { return false }
            q[projectID] = n + 1
            return true
        }
        guard admitted else {
            droppedOverShare.increment()
            return
        }
        if case .dropped = continuation.yield(Batch(projectID: projectID, spans: spans)) {
            dropped.increment()
            release(projectID)
        }
    }

    private func release(_ projectID: String) {
        queued.withLock { q in
            let n = q[projectID, default: 1] - 1
            q[projectID] = n > 0 ? n : nil
        }
    }

    /// Forget cached rules (after an API change).
    func invalidate(projectID: String) { _ = rulesCache.withLock { $0.removeValue(forKey: projectID) } }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                let done = AsyncSemaphore(limit: self.maxConcurrentBatches)
                for await batch in self.stream {
                    guard await done.acquire() else { break }
                    group.addTask {
                        await self.process(batch)
                        self.release(batch.projectID)
                        done.release()
                    }
                }
            }
        }
    }

    private func rules(_ projectID: String) async -> (rules: [OnlineRule], specs: [VersionedSpec]) {
        if let c = rulesCache.withLock({ $0[projectID] }), c.at.duration(to: .now) < .seconds(2) { return (c.rules, c.specs) }
        let rules = ((try? await repo.rules(projectID)) ?? []).filter(\.enabled)
        let specs = rules.isEmpty ? [] : ((try? await repo.evaluators(projectID)) ?? [])
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
        let low = UInt64(traceID.suffix(14), radix: 16) ?? UInt64(truncatingIfNeeded: traceID.hashValue)
        return Double(low) / Double(UInt64(1) << 56) < rate
    }

    private func process(_ batch: Batch) async {
        let (rules, specs) = await rules(batch.projectID)
        guard !rules.isEmpty else { return }
        let now = nowNanos()
        var scores: [ScoreRow] = []
        var spans: [SpanRow] = []
        for rule in rules {
            let chosen = specs.filter { rule.evaluators.contains($0.spec.name) }
            guard !chosen.isEmpty else { continue }
            let evaluators: [any Evaluator]
            do { evaluators = try await providers.build(projectID: batch.projectID, specs: chosen) } catch {
                logger.warning("online rule cannot build its evaluators", metadata: ["rule": "\(rule.id)", "error": "\(error)"])
                continue
            }
            // Evaluation spans (ours) are never evaluated themselves.
            let targets = batch.spans.filter {
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
                            let key = e.isCacheable ? ResultCache.key(projectID: batch.projectID, evaluator: e, input: x) : nil
                            if let key, let hit = await self.cache.get(key) { results.append(hit); continue }
                            let r = await e.evaluate(x)
                            if let key, r.error == nil { try? await self.cache.db.write { c in try ResultCache.put(c, key: key, result: r) } }
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
                let evalSpanID = EvaluationSpans.hex("online:" + rule.id + span.traceID + span.spanID, 16)
                spans.append(SpanRow(projectID: batch.projectID, traceID: span.traceID, spanID: evalSpanID, parentSpanID: span.spanID, startUnixNanos: start, durationNanos: max(0, end - start),
                                     service: EvaluationSpans.service, name: "evaluation \(rule.name)", kind: .internal,
                                     status: results.contains { $0.error != nil } ? .error : .ok,
                                     attributesJSON: JSON.object(["evalforge.rule.id": .string(rule.id), "evalforge.evaluated.span_id": .string(span.spanID)]).text,
                                     eventsJSON: EvaluationSpans.events(results, at: end)))
                for (i, call) in results.flatMap(\.calls).enumerated() {
                    spans.append(EvaluationSpans.callSpan(call, projectID: batch.projectID, traceID: span.traceID, parent: evalSpanID, index: i, providerKind: { kinds[$0] ?? $0 }))
                }
                for r in results {
                    scores.append(EvaluationSpans.score(r, id: EvaluationSpans.hex("online:" + rule.id + ":" + span.traceID + span.spanID + ":" + r.evaluator, 32), projectID: batch.projectID,
                                                        traceID: span.traceID, spanID: span.spanID, source: .online, runID: rule.id, now: now))
                }
            }
        }
        guard !scores.isEmpty || !spans.isEmpty else { return }
        do {
            // Spans first: a visible score means its evaluation span is stored too.
            _ = try await store.insert(StoreBatch(projectID: batch.projectID, batchID: newID("online"), spans: spans, rollups: []))
            try await store.insertScores(scores)
        } catch {
            logger.error("storing online evaluation results failed", metadata: ["project": "\(batch.projectID)", "error": "\(error)"])
        }
    }
}
