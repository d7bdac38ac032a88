import AsyncHTTPClient
import EvalForgeModel
import EvalForgeStore
import Foundation
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

/// Executes experiment runs durably, shared by every backend on the metadata database.
///
/// Every dataset item of a run has a row in `eval_run_items` (pending → claimed → done). Workers
/// claim items in batches under a lease (`RunItemClaims`: owner, expiry, a heartbeat every third of
/// the lease); results are committed in batches: scores and spans go to the store first (score
/// ids are deterministic per run, item and evaluator, so a repeat overwrites), then one transaction
/// moves the items from claimed to done (only while this process still holds their claim) and adds
/// the run's counters. Any worker takes up a run with claimable items (it polls for them, and is
/// woken by a start in this process): items of a backend that stopped are claimed again once
/// their leases ran out, each item's result is recorded exactly once, and the model calls of an
/// item (judges, a provider target) are paid at most twice — their results are kept in the result
/// cache right after each call, and an item that pays for calls is claimed at most twice.
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
    private let claims: RunItemClaims
    private let pollInterval: Duration
    private let requests: AsyncStream<Request>
    private let continuation: AsyncStream<Request>.Continuation
    private let active = Mutex<Set<String>>([])
    private let itemsDone = Counter(label: "evalforge_eval_run_items_total", dimensions: [("result", "done")])
    private let itemsFailed = Counter(label: "evalforge_eval_run_items_total", dimensions: [("result", "error")])
    private let callsRepeated = Counter(label: "evalforge_eval_judge_calls_repeated_total", dimensions: [("work", "run")])
    /// Results committed per transaction at most.
    let flushSize = 64
    /// Largest value of a run's counters (done, errors, tokens, …).
    static let counterCap: Int64 = 1 << 62

    /// Times an item may be claimed without its result being recorded before it fails (at most
    /// twice when its evaluation pays for model calls).
    let maxClaims: Int

    init(repo: EvalRepository, store: any SpanStore, http: OutboundHTTP, providers: ProviderRegistry, webhooks: WebhookDispatcher, maxClaims: Int, lease: WorkLease,
         pollInterval: Duration, logger: Logger) {
        let db = repo.db
        self.db = db
        self.maxClaims = max(1, maxClaims)
        self.repo = repo
        self.store = store
        self.http = http
        self.providers = providers
        self.webhooks = webhooks
        cache = ResultCache(db: db)
        claims = RunItemClaims(db: db, lease: lease)
        self.pollInterval = max(.milliseconds(20), pollInterval)
        self.logger = logger
        // Bounded: on a backend without the worker role nothing reads it, and a request dropped
        // here is found by the poll of some worker within `pollInterval` anyway.
        let (stream, continuation) = AsyncStream.makeStream(of: Request.self, bufferingPolicy: .bufferingNewest(1024))
        requests = stream
        self.continuation = continuation
    }

    /// Queues a run for execution in this process (no-op when it is already executing here).
    func start(projectID: String, runID: String) {
        continuation.yield(Request(projectID: projectID, runID: runID))
    }

    /// Most resumes of a running run without progress (a crash outside item evaluation) before it fails.
    private var resumeLimit: Int64 { Int64(maxClaims) }

    func run() async throws {
        // No reset at start: items a stopped process had claimed are claimed again when their
        // leases run out, by whichever backend comes first.
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.claims.lease.heartbeat("run items", logger: self.logger) { try await self.claims.extend() } }
                group.addTask { await self.poll() }
                for await request in self.requests {
                    let fresh = self.active.withLock { $0.insert(request.runID).inserted }
                    guard fresh else { continue }
                    group.addTask {
                        await self.execute(request)
                        _ = self.active.withLock { $0.remove(request.runID) }
                    }
                }
                group.cancelAll()
            }
        }
    }

    /// Every `pollInterval`: runs with claimable items, started anywhere, are taken up here too.
    private func poll() async {
        while !Task.isCancelled {
            do {
                for r in try await claims.claimableRuns() where !active.withLock({ $0.contains(r.runID) }) {
                    start(projectID: r.projectID, runID: r.runID)
                }
            } catch {
                logger.warning("looking for evaluation runs to work on failed; retrying", metadata: ["error": "\(error)"])
            }
            do { try await Task.sleep(for: pollInterval) } catch { return }
        }
    }

    // MARK: execution

    typealias Claimed = RunItemClaims.Claimed

    struct Outcome: Sendable {
        var itemID: String
        var seq: Int
        /// The claim number the result is recorded under (`RunItemClaims.markDone`).
        var claim: Int64
        var item: DatasetItem
        var output: String?
        var latencyMs: Double?
        var error: String?
        var results: [EvaluationResult]
        var calls: [ModelCall]
        /// Model calls this evaluation made although the item was claimed before (a re-claim).
        var callsRepeated: Int
        var start: Int64
        var end: Int64
    }

    private func execute(_ request: Request) async {
        let (projectID, runID) = (request.projectID, request.runID)
        do {
            guard let config = try await repo.runConfig(runID) else { return }
            let now = nowMs()
            let limit = resumeLimit
            let claims = self.claims
            // Started here (pending → running: run.started once across backends), or taken up while
            // running: then, when it started more than a lease ago and no backend holds a live
            // claim on it, whoever ran it stopped — a resume, counted; a run resumed more than
            // `maxClaims` times without progress in between (a crash outside item evaluation)
            // fails instead of looping.
            let leaseMs = claims.lease.durationMs
            let (started, resumed, stalled): (Bool, Bool, Bool) = try await db.write { c in
                if try c.run("UPDATE eval_runs SET status = 'running', started_unix_ms = ? WHERE id = ? AND status = 'pending'", [.integer(now), .text(runID)]) == 1 {
                    try Self.enqueueEvent(c, projectID: projectID, runID: runID, event: "run.started")
                    return (true, false, false)
                }
                guard let r = try c.query("SELECT status, started_unix_ms FROM eval_runs WHERE id = ?", [.text(runID)]).first, r[0].string == "running",
                      (r[1].int64 ?? 0) <= now.addingSaturated(-leaseMs), try !claims.hasLiveClaims(c, runID: runID, now: now) else { return (false, false, false) }
                try c.run("UPDATE eval_runs SET resumes = MIN(resumes + 1, 1000000) WHERE id = ?", [.text(runID)])
                let stalled = try c.run("UPDATE eval_runs SET status = 'failed', error = ?, finished_unix_ms = ? WHERE id = ? AND status = 'running' AND resumes > ?",
                                        [.text("not_finished: the run was resumed \(limit) times without progress (did the backend crash while running it?); it is not resumed again"), .integer(now), .text(runID), .integer(limit)]) == 1
                if stalled { try Self.enqueueEvent(c, projectID: projectID, runID: runID, event: "run.failed") }
                return (false, true, stalled)
            }
            if started || stalled { webhooks.wake() }
            if stalled {
                logger.error("evaluation run failed after repeated resumes without progress", metadata: ["run": "\(runID)"])
                return
            }
            if resumed { logger.info("resuming evaluation run", metadata: ["run": "\(runID)"]) }
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
            // Judges and a provider target cost money: such an item is claimed at most twice.
            let paid = targetClient != nil || evaluators.contains { $0.isCacheable }
            let context = ItemContext(projectID: projectID, runID: runID, config: config, evaluators: evaluators, targetClient: targetClient,
                                      maxClaims: paid ? min(maxClaims, 2) : maxClaims, paid: paid, resumed: resumed)
            do { try await loop(context) } catch where Task.isCancelled {
                await giveBack(runID: runID, resumed: resumed)
                return
            }
            if Task.isCancelled {
                await giveBack(runID: runID, resumed: resumed)
                return
            }
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
        /// Claims an item may take (`maxClaims`, at most 2 when `paid`).
        var maxClaims: Int
        /// The evaluation makes paid model calls (a judge or a provider target).
        var paid: Bool
        /// This execution counted a resume of the run (given back at a graceful stop).
        var resumed: Bool
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
                    let claimed = try await claim(ctx, limit: max(concurrency, 32))
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
            // Results of items cut short by a stop are not recorded: those items are evaluated again.
            // A graceful stop is not the items' fault: their claims are given back (`giveBack`; a
            // crash cannot do this, so a crash counts against every item it interrupted).
            if Task.isCancelled {
                group.cancelAll()
                return  // `execute` gives the claims back
            }
            if !pending.isEmpty { try await flush(pending, ctx) }
        }
    }

    /// A graceful stop: this process's claims on the run go back to pending, uncounted, so another
    /// backend (or this one after its restart) takes them at once; a resume this execution counted
    /// is given back too. In a task of its own: the stopping task is cancelled, and a cancelled
    /// task's metadata writes are dropped before they run.
    private func giveBack(runID: String, resumed: Bool) async {
        let (claims, db, logger) = (self.claims, self.db, self.logger)
        await Task {
            do { try await claims.release(runID: runID) } catch {
                logger.warning("giving claimed run items back at the stop failed; they are claimed again when their leases run out", metadata: ["run": "\(runID)", "error": "\(error)"])
            }
            if resumed { _ = try? await db.write { c in try c.run("UPDATE eval_runs SET resumes = MAX(0, resumes - 1) WHERE id = ?", [.text(runID)]) } }
        }.value
    }

    /// Claims the next items of the run (`RunItemClaims.claim`); logs and counts the items it
    /// failed because they were claimed `ctx.maxClaims` times.
    private func claim(_ ctx: ItemContext, limit: Int) async throws -> RunItemClaims.Batch {
        let batch = try await claims.claim(runID: ctx.runID, limit: limit, maxClaims: ctx.maxClaims, paid: ctx.paid)
        if batch.failed > 0 {
            itemsFailed.increment(by: batch.failed)
            logger.error("evaluation items failed after repeated claims", metadata: ["run": "\(ctx.runID)", "items": "\(batch.failed)", "maxClaims": "\(ctx.maxClaims)"])
        }
        return batch
    }

    private func process(_ c: Claimed, _ ctx: ItemContext) async -> Outcome {
        let start = nowNanos()
        var outcome = Outcome(itemID: c.item.id, seq: c.seq, claim: c.claim, item: c.item, output: nil, latencyMs: nil, error: nil, results: [], calls: [], callsRepeated: 0, start: start, end: start)
        let reclaim = c.claim > 1
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
            // The answer is kept right after the call: a re-claim of the item reuses it (paid once).
            // Only a re-claim can find one (the key is per run and item): a first claim reads nothing.
            let key = ResultCache.targetKey(runID: ctx.runID, itemID: c.item.id)
            if c.claim > 1, let kept = await cache.target(key) {
                outcome.output = kept.text
                outcome.latencyMs = kept.latencyMs
                toolCalls = kept.toolCalls
                cost = kept.costUSD
                break
            }
            do {
                let answer = try await client.chat(system: t.system, messages: messages, model: t.model, jsonMode: false, maxTokens: t.clampedMaxTokens, temperature: t.temperature.flatMap { $0.isFinite ? min(max($0, 0), 2) : nil }, purpose: "target")
                outcome.output = answer.text
                outcome.latencyMs = Double(answer.call.durationNanos) / 1e6
                outcome.calls.append(answer.call)
                toolCalls = answer.toolCalls
                cost = answer.call.costUSD
                await cache.putTarget(key, ResultCache.TargetAnswer(text: answer.text, toolCalls: answer.toolCalls, costUSD: answer.call.costUSD, latencyMs: outcome.latencyMs))
            } catch {
                outcome.calls.append(error.call)
                outcome.error = "target: \(error.error)"
            }
            if reclaim { outcome.callsRepeated = outcome.calls.count }
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
        // 2. Every evaluator (judges concurrently), through the result cache: a judge's result is
        // kept right after its call, so a re-claim of the item (its claim was lost) reuses it.
        let results = await withTaskGroup(of: (Int, EvaluationResult).self) { group in
            for (i, e) in ctx.evaluators.enumerated() {
                if let h = e as? any HeuristicEvaluator {
                    group.addTask { (i, h.evaluateNow(x)) }
                    continue
                }
                group.addTask {
                    let key = e.isCacheable ? ResultCache.key(projectID: ctx.projectID, evaluator: e, input: x) : nil
                    if let key, let hit = await self.cache.get(key) { return (i, hit) }
                    let r = await e.evaluate(x)
                    if let key, r.error == nil { await self.cache.put(key, result: r) }
                    return (i, r)
                }
            }
            var out: [(Int, EvaluationResult)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }
        }
        for (_, r) in results {
            outcome.results.append(r)
            outcome.calls += r.calls
            if reclaim, !r.cached { outcome.callsRepeated = outcome.callsRepeated.addingSaturated(max(0, r.usage.calls)) }
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
        let owner = claims.lease.owner
        let (row, recorded, recordedErrors, repeated): (Run?, Int, Int, Int) = try await db.write { c in
            var done = 0, errors = 0, hits = 0, calls = 0, repeated = 0
            var inTok: Int64 = 0, outTok: Int64 = 0, cost = 0.0, latency = 0.0
            for o in outcomes {
                // Only while this process still holds the item's claim: each result is recorded once.
                let changed = try RunItemClaims.markDone(c, runID: runID, itemID: o.itemID, owner: owner, claim: o.claim, output: o.output, latencyMs: o.latencyMs, error: o.error,
                                                         results: encodeJSON(o.results), finishedMs: finishedMs)
                guard changed == 1 else { continue }
                done += 1
                if o.error != nil || o.results.contains(where: { $0.error != nil }) { errors += 1 }
                repeated = repeated.addingSaturated(max(0, o.callsRepeated))
                for r in o.results {
                    if r.cached { hits += 1 }
                    calls = calls.addingSaturated(max(0, r.usage.calls))
                    inTok = inTok.addingSaturated(max(0, r.usage.inputTokens))
                    outTok = outTok.addingSaturated(max(0, r.usage.outputTokens))
                    cost = Checked.add(cost, max(0, r.usage.costUSD))
                    latency = Checked.add(latency, max(0, r.usage.latencyMs))
                }
            }
            guard done > 0 else { return (nil, 0, 0, 0) }
            // Counters saturate at 2^62 (and each increment is far below it): SQLite would turn an
            // overflowing sum into a REAL that no longer reads back as an integer.
            let cap = Self.counterCap
            try c.run("""
                UPDATE eval_runs SET done = MIN(done + ?, \(cap)), errors = MIN(errors + ?, \(cap)), cache_hits = MIN(cache_hits + ?, \(cap)),
                  judge_calls = MIN(judge_calls + ?, \(cap)), judge_input_tokens = MIN(judge_input_tokens + ?, \(cap)), judge_output_tokens = MIN(judge_output_tokens + ?, \(cap)),
                  judge_cost_usd = MIN(judge_cost_usd + ?, 1e300), judge_latency_ms = MIN(judge_latency_ms + ?, 1e300),
                  judge_calls_repeated = MIN(judge_calls_repeated + ?, \(cap)), resumes = 0 WHERE id = ?
                """,
                      [.integer(Int64(done)), .integer(Int64(errors)), .integer(Int64(hits)), .integer(Int64(min(calls, Int(cap)))), .integer(min(inTok, cap)), .integer(min(outTok, cap)), .real(cost), .real(latency),
                       .integer(Int64(min(repeated, Int(cap)))), .text(runID)])
            // Progress webhooks at every 10 %: the decile is moved and the event recorded in the same
            // transaction, so each is recorded once whichever backend records the results.
            guard let r = try c.query("SELECT \(EvalRepository.runColumns), progress_notified FROM eval_runs WHERE id = ?", [.text(runID)]).first else { return (nil, done, errors, repeated) }
            let run = EvalRepository.runRow(r)
            let decile: Int64 = run.total > 0 ? Int64(min(10, max(0, Double(run.done) * 10 / Double(run.total))).rounded(.down)) : 10
            if decile > (r[EvalRepository.runColumnCount].int64 ?? 0), decile < 10 {
                try c.run("UPDATE eval_runs SET progress_notified = ? WHERE id = ?", [.integer(decile), .text(runID)])
                try WebhookDispatcher.enqueue(c, projectID: projectID, event: "run.progress", data: Self.runJSON(run))
                return (run, done, errors, repeated)
            }
            return (nil, done, errors, repeated)
        }
        itemsDone.increment(by: recorded - recordedErrors)
        itemsFailed.increment(by: recordedErrors)
        if repeated > 0 { callsRepeated.increment(by: repeated) }
        if recorded < outcomes.count {
            logger.info("results not recorded: another claim took the items after this process's lease ran out", metadata: ["run": "\(runID)", "items": "\(outcomes.count - recorded)"])
        }
        if row != nil { webhooks.wake() }
    }

    /// Marks the run completed (or failed) once no item is left (the status guard: once across
    /// backends), recording the final webhook event in the same transaction.
    private func finish(projectID: String, runID: String, failure: String?) async throws {
        let finished: Run? = try await db.write { c in
            guard try Self.finishRow(c, runID: runID, failure: failure) else { return nil }
            return try Self.enqueueEvent(c, projectID: projectID, runID: runID, event: nil)
        }
        guard let run = finished else { return }
        webhooks.wake()
        logger.info("evaluation run finished", metadata: ["run": "\(runID)", "status": "\(run.status.rawValue)", "done": "\(run.done)", "errors": "\(run.errors)"])
    }

    /// Enqueues a webhook event with the run as it is now, inside the caller's transaction (nil
    /// `event`: run.completed or run.failed by the run's status). Returns the run.
    @discardableResult
    static func enqueueEvent(_ c: any MetadataConnection, projectID: String, runID: String, event: String?) throws -> Run? {
        guard let r = try c.query("SELECT \(EvalRepository.runColumns) FROM eval_runs WHERE id = ?", [.text(runID)]).first else { return nil }
        let run = EvalRepository.runRow(r)
        try WebhookDispatcher.enqueue(c, projectID: projectID, event: event ?? (run.status == .completed ? "run.completed" : "run.failed"), data: runJSON(run))
        return run
    }

    /// The status change of `finish`: true when this call finished the run.
    private static func finishRow(_ c: any MetadataConnection, runID: String, failure: String?) throws -> Bool {
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

    static func runJSON(_ r: Run) -> JSON {
        JSON.parse(encodeJSON(r)) ?? .object(["id": .string(r.id)])
    }
}
