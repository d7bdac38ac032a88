import AsyncHTTPClient
import EvalForgeModel
import EvalForgeStore
import Foundation
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

/// Executes experiment runs durably.
///
/// Every dataset item of a run has a row in `eval_run_items` (pending → claimed → done). Workers
/// claim items in batches inside a write transaction; results are committed in batches: scores and
/// spans go to the store first (score ids are deterministic per run, item and evaluator, so a
/// repeat overwrites), then one transaction moves the items from claimed to done (only if still
/// claimed), adds the run's counters and fills the result cache. When the backend stops, claimed
/// items are returned to pending at the next start and evaluated then: no item is skipped, and each
/// item's result is recorded exactly once (a judge call in flight at the moment of a stop is repeated).
final class RunEngine: Service, Sendable {
    struct Request: Sendable {
        var projectID: String
        var runID: String
    }

    private let db: any MetadataDatabase
    private let repo: EvalRepository
    private let store: any SpanStore
    private let http: OutboundHTTP
    private let providers: ProviderRegistry
    private let webhooks: WebhookDispatcher
    private let cache: ResultCache
    private let logger: Logger
    private let requests: AsyncStream<Request>
    private let continuation: AsyncStream<Request>.Continuation
    private let active = Mutex<Set<String>>([])
    private let itemsDone = Counter(label: "evalforge_eval_run_items_total", dimensions: [("result", "done")])
    private let itemsFailed = Counter(label: "evalforge_eval_run_items_total", dimensions: [("result", "error")])
    /// Results committed per transaction at most.
    let flushSize = 64
    /// Largest value of a run's counters (done, errors, tokens, …).
    static let counterCap: Int64 = 1 << 62

    /// Times an item may be claimed without its result being recorded before it fails.
    let maxClaims: Int

    init(repo: EvalRepository, store: any SpanStore, http: OutboundHTTP, providers: ProviderRegistry, webhooks: WebhookDispatcher, maxClaims: Int, logger: Logger) {
        let db = repo.db
        self.db = db
        self.maxClaims = max(1, maxClaims)
        self.repo = repo
        self.store = store
        self.http = http
        self.providers = providers
        self.webhooks = webhooks
        cache = ResultCache(db: db)
        self.logger = logger
        let (stream, continuation) = AsyncStream.makeStream(of: Request.self)
        requests = stream
        self.continuation = continuation
    }

    /// Queues a run for execution (no-op when it is already executing).
    func start(projectID: String, runID: String) {
        continuation.yield(Request(projectID: projectID, runID: runID))
    }

    func run() async throws {
        // Items claimed by a previous process were not finished: they go back to pending (their
        // claim counts stay: see `claim`). A run resumed more than `maxClaims` times without any
        // progress in between (a crash outside item evaluation) fails instead of looping.
        let limit = Int64(maxClaims)
        let stalled: [(projectID: String, runID: String)] = try await db.write { c in
            try c.run("UPDATE eval_run_items SET state = 'pending' WHERE state = 'claimed' AND run_id IN (SELECT id FROM eval_runs WHERE status IN ('pending', 'running'))")
            try c.run("UPDATE eval_runs SET resumes = MIN(resumes + 1, 1000000) WHERE status = 'running'")
            let rows: [(projectID: String, runID: String)] = try c.query("SELECT project_id, id FROM eval_runs WHERE status = 'running' AND resumes > ?", [.integer(limit)])
                .map { (projectID: $0[0].string ?? "", runID: $0[1].string ?? "") }
            try c.run("UPDATE eval_runs SET status = 'failed', error = ?, finished_unix_ms = ? WHERE status = 'running' AND resumes > ?",
                      [.text("not_finished: the run was resumed \(limit) times without progress (did the backend crash while running it?); it is not resumed again"), .integer(nowMs()), .integer(limit)])
            return rows
        }
        for r in stalled {
            logger.error("evaluation run failed after repeated resumes without progress", metadata: ["run": "\(r.runID)"])
            if let run = try? await repo.run(r.projectID, r.runID) { await webhooks.enqueue(projectID: r.projectID, event: "run.failed", data: runJSON(run)) }
        }
        for r in try await repo.unfinishedRuns() {
            logger.info("resuming evaluation run", metadata: ["run": "\(r.runID)"])
            start(projectID: r.projectID, runID: r.runID)
        }
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await request in self.requests {
                    let fresh = self.active.withLock { $0.insert(request.runID).inserted }
                    guard fresh else { continue }
                    group.addTask {
                        await self.execute(request)
                        _ = self.active.withLock { $0.remove(request.runID) }
                    }
                }
            }
        }
    }

    // MARK: execution

    struct Claimed: Sendable {
        var item: DatasetItem
        var seq: Int
    }

    struct Outcome: Sendable {
        var itemID: String
        var seq: Int
        var item: DatasetItem
        var output: String?
        var latencyMs: Double?
        var error: String?
        var results: [EvaluationResult]
        var calls: [ModelCall]
        var cacheKeys: [String: String]  // evaluator → key (fresh cacheable results)
        var start: Int64
        var end: Int64
    }

    private func execute(_ request: Request) async {
        let (projectID, runID) = (request.projectID, request.runID)
        do {
            guard let config = try await repo.runConfig(runID) else { return }
            let started: Bool = try await db.write { c in
                try c.run("UPDATE eval_runs SET status = 'running', started_unix_ms = ? WHERE id = ? AND status = 'pending'", [.integer(nowMs()), .text(runID)]) == 1
            }
            if started, let r = try await repo.run(projectID, runID) { await webhooks.enqueue(projectID: projectID, event: "run.started", data: runJSON(r)) }
            let evaluators: [any Evaluator]
            let targetClient: ProviderClient?
            do {
                evaluators = try await providers.build(projectID: projectID, specs: config.evaluators)
                if config.target.type == "provider", let p = config.target.provider {
                    guard let client = try await providers.clients(projectID: projectID, names: [p])[p] else { throw EvaluationError.notFound("target provider '\(p)' does not exist") }
                    targetClient = client
                } else { targetClient = nil }
            } catch {
                try await finish(projectID: projectID, runID: runID, failure: "cannot start: \(error)")
                return
            }
            let context = ItemContext(projectID: projectID, runID: runID, config: config, evaluators: evaluators, targetClient: targetClient)
            try await loop(context)
            if Task.isCancelled { return }
            try await finish(projectID: projectID, runID: runID, failure: nil)
        } catch {
            if Task.isCancelled { return }
            logger.error("evaluation run failed", metadata: ["run": "\(runID)", "error": "\(error)"])
            try? await finish(projectID: projectID, runID: runID, failure: "\(error)")
        }
    }

    struct ItemContext: Sendable {
        var projectID: String
        var runID: String
        var config: RunConfig
        var evaluators: [any Evaluator]
        var targetClient: ProviderClient?
    }

    private func loop(_ ctx: ItemContext) async throws {
        let concurrency = min(max(1, ctx.config.concurrency), 4096)  // a stored configuration, re-checked
        // Children are items (an Outcome) and at most one tick (nil): finished results are committed
        // within 250 ms even while another item takes minutes, so a crash then does not repeat them.
        try await withThrowingTaskGroup(of: Outcome?.self) { group in
            var tickScheduled = false
            var buffer: [Claimed] = []
            var next = 0
            var exhausted = false
            /// The buffer is one suspect item (claimed before by a process that stopped): it is
            /// evaluated alone and committed before anything else is claimed, so a crash while
            /// evaluating it counts against it only.
            var isolated = false
            var running = 0
            var pending: [Outcome] = []
            var lastFlush = ContinuousClock.now
            while !Task.isCancelled {
                if next >= buffer.count, !exhausted, !(isolated && running > 0) {
                    if isolated, !pending.isEmpty {
                        try await flush(pending, ctx)
                        pending.removeAll(keepingCapacity: true)
                        lastFlush = .now
                    }
                    let claimed = try await claim(runID: ctx.runID, limit: max(concurrency, 32))
                    buffer = claimed.items
                    isolated = claimed.isolated
                    next = 0
                    if buffer.isEmpty { exhausted = true }
                }
                if next < buffer.count, running < concurrency {
                    let c = buffer[next]
                    next += 1
                    running += 1
                    group.addTask { await self.process(c, ctx) }
                    continue
                }
                if running == 0 { break }
                if !pending.isEmpty, !tickScheduled {
                    tickScheduled = true
                    group.addTask { try? await Task.sleep(for: .milliseconds(250)); return nil }
                }
                guard let child = try await group.next() else { break }
                guard let outcome = child else {
                    tickScheduled = false
                    if !pending.isEmpty, !Task.isCancelled, lastFlush.duration(to: .now) >= .milliseconds(250) {
                        try await flush(pending, ctx)
                        pending.removeAll(keepingCapacity: true)
                        lastFlush = .now
                    }
                    continue
                }
                running -= 1
                pending.append(outcome)
                if pending.count >= flushSize || lastFlush.duration(to: .now) > .milliseconds(250) {
                    if Task.isCancelled { break }
                    try await flush(pending, ctx)
                    pending.removeAll(keepingCapacity: true)
                    lastFlush = .now
                }
            }
            // Results of items cut short by a stop are not recorded: those items are evaluated again
            // after the restart. A graceful stop is not the items' fault: their claims are given back
            // (a crash cannot do this, so a crash counts against every item it interrupted).
            if Task.isCancelled {
                group.cancelAll()
                let runID = ctx.runID
                _ = try? await db.write { c in
                    try c.run("UPDATE eval_run_items SET state = 'pending', claims = MAX(0, claims - 1) WHERE run_id = ? AND state = 'claimed'", [.text(runID)])
                    try c.run("UPDATE eval_runs SET resumes = MAX(0, resumes - 1) WHERE id = ?", [.text(runID)])
                }
                return
            }
            if !pending.isEmpty { try await flush(pending, ctx) }
        }
    }

    struct ClaimedBatch: Sendable {
        var items: [Claimed]
        /// True when `items` is a single suspect item to evaluate alone.
        var isolated: Bool
    }

    /// Claims pending items, in one transaction: first every item already claimed `maxClaims` times
    /// is finished as failed with the reason (a crash loop ends there, the run goes on); then, when
    /// an item was claimed before by a process that stopped without finishing it (a suspect), that
    /// one item alone; else up to `limit` fresh items.
    private func claim(runID: String, limit: Int) async throws -> ClaimedBatch {
        let maxClaims = Int64(self.maxClaims)
        let (batch, failed): (ClaimedBatch, Int) = try await db.write { c in
            // A cancelled run claims nothing more (items in flight finish).
            guard try c.scalar("SELECT status FROM eval_runs WHERE id = ?", [.text(runID)])?.string == "running" else { return (ClaimedBatch(items: [], isolated: false), 0) }
            let reason = "not_finished: the item was claimed \(maxClaims) times and the backend stopped each time before its result was recorded (did evaluating it crash the process?); it is not tried again"
            let failed = try c.run("UPDATE eval_run_items SET state = 'done', error = ?, results = '[]', finished_unix_ms = ? WHERE run_id = ? AND state = 'pending' AND claims >= ?",
                                   [.text(reason), .integer(nowMs()), .text(runID), .integer(maxClaims)])
            if failed > 0 {
                try c.run("UPDATE eval_runs SET done = MIN(done + ?, \(Self.counterCap)), errors = MIN(errors + ?, \(Self.counterCap)), resumes = 0 WHERE id = ?", [.integer(Int64(failed)), .integer(Int64(failed)), .text(runID)])
            }
            let columns = "SELECT ri.item_id, ri.seq, i.input, i.expected, i.output, i.context, i.metadata, i.source_trace_id, i.source_span_id FROM eval_run_items ri LEFT JOIN eval_items i ON i.id = ri.item_id WHERE ri.run_id = ? AND ri.state = 'pending'"
            var rows = try c.query(columns + " AND ri.claims > 0 ORDER BY ri.seq LIMIT 1", [.text(runID)])
            let isolated = !rows.isEmpty
            if !isolated { rows = try c.query(columns + " ORDER BY ri.seq LIMIT ?", [.text(runID), .integer(Int64(limit))]) }
            for r in rows {
                try c.run("UPDATE eval_run_items SET state = 'claimed', claims = claims + 1 WHERE run_id = ? AND item_id = ?", [.text(runID), r[0]])
            }
            let items = rows.map { r in
                var item = DatasetItem(id: r[0].string ?? "", input: JSON.parse(r[2].string ?? "") ?? .string(r[2].string ?? ""), expected: r[3].string, output: r[4].string, context: r[5].string,
                                       metadata: JSON.parse(r[6].string ?? "{}") ?? .object([:]), sourceTraceID: r[7].string ?? "", sourceSpanID: r[8].string ?? "")
                if r[2].isNull { item.input = .null }
                return Claimed(item: item, seq: Int(r[1].int64 ?? 0))
            }
            return (ClaimedBatch(items: items, isolated: isolated), failed)
        }
        if failed > 0 {
            itemsFailed.increment(by: failed)
            logger.error("evaluation items failed after repeated claims", metadata: ["run": "\(runID)", "items": "\(failed)", "maxClaims": "\(maxClaims)"])
        }
        return batch
    }

    private func process(_ c: Claimed, _ ctx: ItemContext) async -> Outcome {
        let start = nowNanos()
        var outcome = Outcome(itemID: c.item.id, seq: c.seq, item: c.item, output: nil, latencyMs: nil, error: nil, results: [], calls: [], cacheKeys: [:], start: start, end: start)
        if c.item.input == .null {
            outcome.error = "invalid_argument: the dataset item was deleted"
            return outcome
        }
        // 1. The target's answer.
        var toolCalls: [EvaluationInput.ToolCall] = []
        var cost: Double?
        switch ctx.config.target.type {
        case "provider":
            guard let client = ctx.targetClient else { outcome.error = "not_found: target provider missing"; return outcome }
            let base = InputConversion.item(c.item, output: "")
            let t = ctx.config.target
            var messages = Array(base.conversation.dropLast())
            if let p = t.prompt, !p.isEmpty { messages = [.init(role: "user", content: p.replacingOccurrences(of: "{{input}}", with: base.input))] }
            if messages.isEmpty { messages = [.init(role: "user", content: base.input)] }
            do {
                let answer = try await client.chat(system: t.system, messages: messages, model: t.model, jsonMode: false, maxTokens: t.clampedMaxTokens, temperature: t.temperature.flatMap { $0.isFinite ? min(max($0, 0), 2) : nil }, purpose: "target")
                outcome.output = answer.text
                outcome.latencyMs = Double(answer.call.durationNanos) / 1e6
                outcome.calls.append(answer.call)
                toolCalls = answer.toolCalls
                cost = answer.call.costUSD
            } catch {
                outcome.calls.append(error.call)
                outcome.error = "target: \(error.error)"
            }
        case "http":
            let t0 = ContinuousClock.now
            switch await callHTTP(ctx.config.target, c.item) {
            case .success(let text):
                outcome.output = text
                let d = t0.duration(to: .now)
                outcome.latencyMs = Checked.milliseconds(d)
            case .failure(let e): outcome.error = "target: \(e)"
            }
        default:
            if let o = c.item.output { outcome.output = o } else { outcome.error = "invalid_argument: the item has no recorded output (the 'recorded' target evaluates items' output)" }
        }
        guard let output = outcome.output, outcome.error == nil else {
            outcome.end = nowNanos()
            return outcome
        }
        let x = InputConversion.item(c.item, output: output, toolCalls: toolCalls, latencyMs: outcome.latencyMs, costUSD: cost)
        // 2. Every evaluator (judges concurrently), through the result cache.
        let results = await withTaskGroup(of: (Int, EvaluationResult, String?).self) { group in
            for (i, e) in ctx.evaluators.enumerated() {
                if let h = e as? any HeuristicEvaluator {
                    group.addTask { (i, h.evaluateNow(x), nil) }
                    continue
                }
                group.addTask {
                    let key = e.isCacheable ? ResultCache.key(projectID: ctx.projectID, evaluator: e, input: x) : nil
                    if let key, let hit = await self.cache.get(key) { return (i, hit, nil) }
                    let r = await e.evaluate(x)
                    return (i, r, r.error == nil ? key : nil)
                }
            }
            var out: [(Int, EvaluationResult, String?)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }
        }
        for (_, r, key) in results {
            outcome.results.append(r)
            outcome.calls += r.calls
            if let key { outcome.cacheKeys[r.evaluator] = key }
        }
        outcome.end = nowNanos()
        return outcome
    }

    private func callHTTP(_ t: Target, _ item: DatasetItem) async -> Result<String, EvaluationError> {
        guard let url = t.url else { return .failure(.invalidArgument("target.url missing")) }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (k, v) in t.headers ?? [:] { request.headers.add(name: k, value: v) }
        let body = JSON.object(["input": item.input, "metadata": item.metadata, "itemId": .string(item.id)]).text
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await http.execute(request, field: "target.url", timeout: .milliseconds(t.clampedTimeoutMs), maxBodyBytes: Self.maxTargetAnswerBytes)
            let text = String(buffer: response.body)
            // Error texts carry a short excerpt at most: the answer of a wrong endpoint is not stored.
            guard (200..<300).contains(response.status) else {
                let note = (300..<400).contains(response.status) ? " (redirects are not followed)" : ""
                return .failure(.provider("endpoint answered \(response.status)\(note): \(excerpt(text))"))
            }
            guard !response.truncated else {
                return .failure(.tooLarge("endpoint answered more than \(Self.maxTargetAnswerBytes >> 20) MiB; answer {\"output\": \"…\"} or plain text within it"))
            }
            // Only the declared output is kept: a JSON object must name it.
            if let j = JSON.parse(text), j.objectValue != nil {
                guard let o = j["output"] else {
                    return .failure(.malformedAnswer("endpoint answered a JSON object without an 'output' field; answer {\"output\": \"…\"} or plain text"))
                }
                return .success(o.stringValue ?? o.text)
            }
            return .success(text)
        } catch let e as OutboundError {
            return .failure(e.isTransient ? .provider(e.message) : .invalidArgument("refused by the outbound policy: \(e.message)"))
        } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout {
            return .failure(.timeout("endpoint did not answer within \(t.clampedTimeoutMs) ms"))
        } catch {
            return .failure(.provider("endpoint: \(excerpt(String(describing: error)))"))
        }
    }

    /// Largest answer of an `http` target.
    static let maxTargetAnswerBytes = 8 << 20

    // MARK: commit

    private func flush(_ outcomes: [Outcome], _ ctx: ItemContext) async throws {
        let (projectID, runID) = (ctx.projectID, ctx.runID)
        let now = nowNanos()
        var scores: [ScoreRow] = []
        var spans: [SpanRow] = []
        var kinds = providerKinds(ctx.evaluators)
        if let t = ctx.targetClient { kinds[t.config.name] = t.config.kind.rawValue }
        for o in outcomes {
            let traceID = EvaluationSpans.hex("run:" + runID + ":" + o.itemID, 32)
            let rootID = EvaluationSpans.hex("root:" + traceID, 16)
            let input = InputConversion.item(o.item, output: o.output ?? "")
            let inputMessages = JSON.array(input.conversation.dropLast().map { ["role": .string($0.role), "parts": [["type": "text", "content": .string($0.content)]]] }).text
            let outputMessages = o.output.map { JSON.array([["role": "assistant", "parts": [["type": "text", "content": .string($0)]]]]).text } ?? ""
            let attrs: JSON = ["evalforge.run.id": .string(runID), "evalforge.dataset.item.id": .string(o.itemID), "evalforge.dataset.item.seq": .number(Double(o.seq)),
                               "evalforge.source.trace_id": .string(o.item.sourceTraceID)]
            spans.append(SpanRow(projectID: projectID, traceID: traceID, spanID: rootID, startUnixNanos: o.start, durationNanos: max(0, o.end - o.start), service: EvaluationSpans.service,
                                 name: "evaluation item \(o.seq)", kind: .internal, status: o.error == nil ? .ok : .error, statusMessage: o.error ?? "", attributesJSON: attrs.text,
                                 input: inputMessages, output: outputMessages, eventsJSON: EvaluationSpans.events(o.results, at: o.end)))
            for (i, call) in o.calls.enumerated() {
                spans.append(EvaluationSpans.callSpan(call, projectID: projectID, traceID: traceID, parent: rootID, index: i, providerKind: { [kinds] in kinds[$0] ?? $0 }))
            }
            for r in o.results {
                scores.append(EvaluationSpans.score(r, id: EvaluationSpans.hex("score:" + runID + ":" + o.itemID + ":" + r.evaluator, 32), projectID: projectID, traceID: traceID, spanID: rootID, source: .experiment, runID: runID, now: now))
            }
        }
        // Store first (idempotent), then commit the items' state.
        var attempt = 0
        while true {
            do {
                if !scores.isEmpty { try await store.insertScores(scores) }
                _ = try await store.insert(StoreBatch(projectID: projectID, batchID: newID("evalbatch"), spans: spans, rollups: []))
                break
            } catch {
                attempt += 1
                logger.warning("storing evaluation results failed; retrying", metadata: ["run": "\(runID)", "error": "\(error)"])
                if attempt >= 5 || Task.isCancelled { throw error }
                try await Task.sleep(for: .milliseconds(200 * (1 << attempt)))
            }
        }
        let finishedMs = nowMs()
        let row: Run? = try await db.write { c in
            var done = 0, errors = 0, hits = 0, calls = 0
            var inTok: Int64 = 0, outTok: Int64 = 0, cost = 0.0, latency = 0.0
            for o in outcomes {
                let changed = try c.run("UPDATE eval_run_items SET state = 'done', output = ?, latency_ms = ?, error = ?, results = ?, finished_unix_ms = ? WHERE run_id = ? AND item_id = ? AND state = 'claimed'",
                                        [o.output.map(SQLiteValue.text) ?? .null, o.latencyMs.map(SQLiteValue.real) ?? .null, o.error.map(SQLiteValue.text) ?? .null, .text(encodeJSON(o.results)), .integer(finishedMs), .text(runID), .text(o.itemID)])
                guard changed == 1 else { continue }
                done += 1
                if o.error != nil || o.results.contains(where: { $0.error != nil }) { errors += 1 }
                for r in o.results {
                    if r.cached { hits += 1 }
                    calls = calls.addingSaturated(max(0, r.usage.calls))
                    inTok = inTok.addingSaturated(max(0, r.usage.inputTokens))
                    outTok = outTok.addingSaturated(max(0, r.usage.outputTokens))
                    cost = Checked.add(cost, max(0, r.usage.costUSD))
                    latency = Checked.add(latency, max(0, r.usage.latencyMs))
                    if let key = o.cacheKeys[r.evaluator] { try ResultCache.put(c, key: key, result: r) }
                }
            }
            // Counters saturate at 2^62 (and each increment is far below it): SQLite would turn an
            // overflowing sum into a REAL that no longer reads back as an integer.
            let cap = Self.counterCap
            try c.run("""
                UPDATE eval_runs SET done = MIN(done + ?, \(cap)), errors = MIN(errors + ?, \(cap)), cache_hits = MIN(cache_hits + ?, \(cap)),
                  judge_calls = MIN(judge_calls + ?, \(cap)), judge_input_tokens = MIN(judge_input_tokens + ?, \(cap)), judge_output_tokens = MIN(judge_output_tokens + ?, \(cap)),
                  judge_cost_usd = MIN(judge_cost_usd + ?, 1e300), judge_latency_ms = MIN(judge_latency_ms + ?, 1e300), resumes = 0 WHERE id = ?
                """,
                      [.integer(Int64(done)), .integer(Int64(errors)), .integer(Int64(hits)), .integer(Int64(min(calls, Int(cap)))), .integer(min(inTok, cap)), .integer(min(outTok, cap)), .real(cost), .real(latency), .text(runID)])
            // Progress webhooks at every 10 %.
            guard let r = try c.query("SELECT \(EvalRepository.runColumns), progress_notified FROM eval_runs WHERE id = ?", [.text(runID)]).first else { return nil }
            let run = EvalRepository.runRow(r)
            let decile: Int64 = run.total > 0 ? Int64(min(10, max(0, Double(run.done) * 10 / Double(run.total))).rounded(.down)) : 10
            if decile > (r[19].int64 ?? 0), decile < 10 {
                try c.run("UPDATE eval_runs SET progress_notified = ? WHERE id = ?", [.integer(decile), .text(runID)])
                return run
            }
            return nil
        }
        let failedCount = outcomes.filter { $0.error != nil || $0.results.contains(where: { $0.error != nil }) }.count
        itemsDone.increment(by: outcomes.count - failedCount)
        itemsFailed.increment(by: failedCount)
        if let row { await webhooks.enqueue(projectID: projectID, event: "run.progress", data: runJSON(row)) }
    }

    /// Marks the run completed (or failed) once no item is left; emits the final webhook.
    private func finish(projectID: String, runID: String, failure: String?) async throws {
        let updated: Bool = try await db.write { c in
            if let failure {
                return try c.run("UPDATE eval_runs SET status = 'failed', error = ?, finished_unix_ms = ? WHERE id = ? AND status IN ('pending', 'running')", [.text(failure), .integer(nowMs()), .text(runID)]) == 1
            }
            let left = try c.scalar("SELECT COUNT(*) FROM eval_run_items WHERE run_id = ? AND state != 'done'", [.text(runID)])?.int64 ?? 0
            guard left == 0 else { return false }
            // Failed when no item produced a usable result (target errors, or every evaluator errored).
            var total = 0, unusable = 0
            var firstReason = ""
            try c.forEach("SELECT error, results FROM eval_run_items WHERE run_id = ? ORDER BY seq", [.text(runID)]) { row in
                total += 1
                let results = decodeJSON([EvaluationResult].self, row[1].string) ?? []
                let reason = row[0].string ?? (results.allSatisfy { $0.error != nil } ? results.first?.error : nil)
                if let reason {
                    unusable += 1
                    if firstReason.isEmpty { firstReason = reason }
                }
            }
            if total > 0 && unusable == total {
                return try c.run("UPDATE eval_runs SET status = 'failed', error = ?, finished_unix_ms = ? WHERE id = ? AND status = 'running'", [.text("every item failed; first: \(firstReason.prefix(300))"), .integer(nowMs()), .text(runID)]) == 1
            }
            return try c.run("UPDATE eval_runs SET status = 'completed', finished_unix_ms = ? WHERE id = ? AND status = 'running'", [.integer(nowMs()), .text(runID)]) == 1
        }
        guard updated, let run = try await repo.run(projectID, runID) else { return }
        logger.info("evaluation run finished", metadata: ["run": "\(runID)", "status": "\(run.status.rawValue)", "done": "\(run.done)", "errors": "\(run.errors)"])
        await webhooks.enqueue(projectID: projectID, event: run.status == .completed ? "run.completed" : "run.failed", data: runJSON(run))
    }

    func runJSON(_ r: Run) -> JSON {
        JSON.parse(encodeJSON(r)) ?? .object(["id": .string(r.id)])
    }
}
