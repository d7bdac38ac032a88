import AsyncHTTPClient
import EvalForgeCrypto
import EvalForgeModel
import EvalForgeStore
import EvalForgeCore
import Foundation
import Logging
import Metrics
import NIOCore
import ServiceLifecycle

/// Settings of the evaluation runner.
public struct EvaluationSettings: Sendable {
    public var webhooks: WebhookSettings
    /// Spans one project may have queued for online evaluation (in the metadata file); spans of its
    /// batches beyond it are skipped and counted (`GET /api/online-queue`, metric
    /// `evalforge_eval_online_skipped_spans_total{reason="project_share"}`), so one project's flood
    /// cannot hold back another's evaluations. Default 10,000.
    public var onlineQueuePerProject: Int
    /// Claims (each up to `onlineClaimSpans` spans of one project) evaluated online at once. Default 8.
    public var onlineConcurrentBatches: Int
    /// Spans of one project claimed together. Default 64.
    public var onlineClaimSpans: Int
    /// Leases on run items, webhook deliveries and queued online spans, which every backend on the
    /// metadata database shares (`WorkLeaseSettings`: `EVALFORGE_WORK_LEASE_S`, default 30 s).
    public var leases: WorkLeaseSettings
    /// Items in flight per run when an experiment does not say. Default 256.
    public var defaultConcurrency: Int
    /// Times a run item may be claimed without its result being recorded (each time the backend
    /// evaluating it stopped, e.g. crashed) before it fails with that reason and the rest goes on;
    /// at most 2 for an item whose evaluation pays for model calls (a judge or a provider target)
    /// and for queued online spans, so a paid call is paid at most twice. Default 3.
    public var maxItemClaims: Int
    /// Which addresses webhooks, `http` targets and providers may reach. Default: public
    /// addresses only (docs/backend-configuration.md, "Outbound calls").
    public var outbound: OutboundPolicy
    /// The keys provider API keys and headers, `http` target headers and webhook secrets are sealed
    /// with at rest. nil: the key file `secrets.key` beside the metadata file, created (0600) when
    /// missing. docs/security.md, "Secrets at rest".
    public var secrets: SecretKeyring?
    /// Prices of judge calls (their cost in runs, scores and evaluation spans): the backend's
    /// `--price-file` table, so a judge's cost agrees with the spans' costs. Default: built-in.
    public var priceTable: PriceTable = .builtIn
    /// Tiered rate limits on judge and custom evaluations, judge tokens and cost (the backend's
    /// `RateLimiter`). Default nil: none.
    public var usageGate: (any EvaluationUsageGate)? = nil

    public init(webhooks: WebhookSettings = WebhookSettings(), onlineQueuePerProject: Int = 10_000, onlineConcurrentBatches: Int = 8, onlineClaimSpans: Int = 64,
                leases: WorkLeaseSettings = .default, defaultConcurrency: Int = 256, maxItemClaims: Int = 3, outbound: OutboundPolicy = .publicOnly) {
        self.outbound = outbound
        self.webhooks = webhooks
        self.onlineQueuePerProject = onlineQueuePerProject
        self.onlineConcurrentBatches = onlineConcurrentBatches
        self.onlineClaimSpans = onlineClaimSpans
        self.leases = leases
        self.defaultConcurrency = defaultConcurrency
        self.maxItemClaims = maxItemClaims
    }

    public static let `default` = EvaluationSettings()
}

/// The evaluation runner hosted by the backend: evaluators, online evaluation, datasets,
/// experiments, run comparison and webhooks (docs/evaluation.md).
public final class EvaluationService: Sendable {
    public let store: any SpanStore
    public let metadata: any MetadataDatabase
    public let logger: Logger
    public let settings: EvaluationSettings
    let repo: EvalRepository
    let providers: ProviderRegistry
    let engine: RunEngine
    let webhooks: WebhookDispatcher
    let online: OnlineEvaluator

    /// `metadata` is the backend's metadata database (datasets, runs and webhooks live there);
    /// `store` holds spans and scores.
    public init(store: any SpanStore, metadata: any MetadataDatabase, logger: Logger, settings: EvaluationSettings = .default) async throws {
        self.store = store
        self.metadata = metadata
        self.logger = logger
        self.settings = settings
        try await EvalSchema.migrator.apply(to: metadata)
        guard let secrets = try settings.secrets ?? metadata.localDirectory.map({ try SecretKeyring(current: SecretKeyring.loadOrCreateKeyFile($0 + "/secrets.key").key) }) else {
            throw EvaluationError.invalidArgument("the metadata database \(metadata.location) has no local folder for the secrets key: configure one (--secrets-key-file or EVALFORGE_SECRETS_KEY)")
        }
        // Seals plain-text secrets of older versions and re-seals those of an old key; a secret
        // that does not open with the configured keys stops the start with what to do.
        let resealed = try await SecretsAtRest.resealAll(metadata, secrets)
        if resealed > 0 { logger.notice("sealed secrets at rest with the current secrets key", metadata: ["values": "\(resealed)", "key_id": "\(secrets.current.id)"]) }
        repo = EvalRepository(db: metadata, secrets: secrets)
        let http = OutboundHTTP(policy: settings.outbound)
        providers = ProviderRegistry(repo: repo, http: http, priceTable: settings.priceTable, usageGate: settings.usageGate, logger: logger)
        // One worker id for this process: the owner of every claim it takes.
        let lease = WorkLease(settings.leases)
        webhooks = WebhookDispatcher(repo: repo, http: http, settings: settings.webhooks, lease: lease, logger: logger)
        engine = RunEngine(repo: repo, store: store, http: http, providers: providers, webhooks: webhooks, maxClaims: settings.maxItemClaims, lease: lease,
                           pollInterval: settings.leases.runPollInterval, logger: logger)
        online = OnlineEvaluator(repo: repo, store: store, providers: providers, cache: ResultCache(db: metadata), perProjectLimit: settings.onlineQueuePerProject,
                                 maxClaims: min(settings.maxItemClaims, 2), maxConcurrentBatches: settings.onlineConcurrentBatches, claimSpans: settings.onlineClaimSpans,
                                 lease: lease, logger: logger)
    }

    /// What ingest did with a batch's spans for online evaluation.
    public struct OnlineEnqueue: Sendable, Equatable {
        /// Spans newly queued.
        public var queued: Int
        /// Spans queued already (a resent batch).
        public var alreadyQueued: Int
        /// Spans beyond the project's share of the queue, not queued (counted).
        public var skippedOverShare: Int
    }

    /// Called by ingest after a batch is stored, and again when it is a duplicate (the first
    /// attempt may have stopped between storing and enqueueing): durably queues the spans that
    /// match an enabled online rule, once per span. Ingest acknowledges the batch only after this
    /// returns; a throw means the batch must not be acknowledged (the resend enqueues again).
    @discardableResult
    public func spansStored(projectID: String, spans: [SpanRow]) async throws -> OnlineEnqueue {
        let o = try await online.enqueue(projectID: projectID, spans: spans)
        return OnlineEnqueue(queued: o.queued, alreadyQueued: o.alreadyQueued, skippedOverShare: o.skippedOverShare)
    }

    /// The project's online-evaluation queue: its share, what is queued, and what was skipped and why.
    public func onlineQueueStats(projectID: String) async throws -> OnlineQueueStats {
        try await online.queue.stats(projectID: projectID)
    }

    /// Background services (run workers, webhook delivery, online evaluation) the backend runs.
    public var services: [any Service] { [engine, webhooks, online] }

    /// Registers a Swift evaluator; reference it by name after creating `{"name": …, "type": "custom"}`.
    public func register(_ evaluator: any Evaluator) {
        providers.custom.withLock { $0[evaluator.name] = evaluator }
    }

    // MARK: providers

    /// Refuses, as a 400 naming `field`, a URL the outbound policy would refuse at call time. A
    /// name that does not resolve now is accepted: every call checks again (DNS can change).
    func checkOutbound(_ url: String, field: String) async throws(EvaluationError) {
        do throws(OutboundError) {
            _ = try await settings.outbound.check(url: url, field: field)
        } catch where error.isTransient {
            logger.info("outbound URL does not resolve yet; it is checked again at each call", metadata: ["field": "\(field)", "reason": "\(error.message)"])
        } catch {
            throw .invalidArgument(error.message)
        }
    }

    public func putProvider(projectID: String, _ config: ProviderConfig) async throws -> ProviderConfig {
        try config.validate()
        try await checkOutbound(config.baseURL, field: "provider.baseURL")
        try await repo.putProvider(projectID, config)
        return config.redacted
    }

    public func listProviders(projectID: String) async throws -> [ProviderConfig] { try await repo.providers(projectID).map(\.redacted) }

    public func deleteProvider(projectID: String, name: String) async throws {
        guard try await repo.deleteProvider(projectID, name) else { throw EvaluationError.notFound("provider '\(name)' does not exist") }
    }

    // MARK: evaluators

    public struct StoredEvaluator: Sendable, Codable {
        public var spec: EvaluatorSpec
        public var version: Int
    }

    public func putEvaluator(projectID: String, _ spec: EvaluatorSpec) async throws -> StoredEvaluator {
        try spec.validate()
        if spec.type == "custom" {
            guard providers.custom.withLock({ $0[spec.name] }) != nil else { throw EvaluationError.notFound("custom evaluator '\(spec.name)' is not registered in this process") }
        } else {
            // Build once to check schemas, patterns and the provider.
            _ = try await providers.build(projectID: projectID, specs: [VersionedSpec(spec: spec, version: 1)])
        }
        let version = try await repo.putEvaluator(projectID, spec)
        online.invalidate(projectID: projectID)
        return StoredEvaluator(spec: spec, version: version)
    }

    public func listEvaluators(projectID: String) async throws -> [StoredEvaluator] {
        try await repo.evaluators(projectID).map { StoredEvaluator(spec: $0.spec, version: $0.version) }
    }

    public func deleteEvaluator(projectID: String, name: String) async throws {
        guard try await repo.deleteEvaluator(projectID, name) else { throw EvaluationError.notFound("evaluator '\(name)' does not exist") }
        online.invalidate(projectID: projectID)
    }

    private func specs(projectID: String, names: [String]) async throws -> [VersionedSpec] {
        guard !names.isEmpty else { throw EvaluationError.invalidArgument("evaluators: at least one evaluator name is required") }
        let all = try await repo.evaluators(projectID)
        return try names.map { n in
            guard let s = all.first(where: { $0.spec.name == n }) else { throw EvaluationError.notFound("evaluator '\(n)' does not exist; create it with POST /api/evaluators") }
            return s
        }
    }

    /// Bounds of one synchronous evaluation: evaluators, and items × evaluators.
    public static let maxEvaluators = 64
    public static let maxEvaluations = 1_000_000

    /// Evaluates answers synchronously (nothing stored): `elapsedNs` covers the evaluation only.
    /// Inline heuristics yield to other tasks every 1,000 items; evaluators with I/O or user regexes
    /// run at most 64 items at once.
    public func evaluate(projectID: String, evaluators names: [String], specs inline: [EvaluatorSpec], inputs: [EvaluationInput]) async throws -> (results: [[EvaluationResult]], elapsedNs: Int64) {
        guard names.count + inline.count <= Self.maxEvaluators else {
            throw EvaluationError.tooLarge("evaluators + specs: at most \(Self.maxEvaluators) evaluators per request, got \(names.count + inline.count)")
        }
        guard inputs.count.multipliedReportingOverflow(by: max(1, names.count + inline.count)).partialValue <= Self.maxEvaluations, inputs.count <= Self.maxEvaluations else {
            throw EvaluationError.tooLarge("items × evaluators: at most \(Self.maxEvaluations) evaluations per request, got \(inputs.count) items × \(names.count + inline.count) evaluators; split the items over several requests")
        }
        for (i, x) in inputs.enumerated() {
            if let v = x.latencyMs, !(v.isFinite && v >= 0 && v <= EvaluatorSpec.maxLatencyMs) {
                throw EvaluationError.invalidArgument("items[\(i)].latencyMs: expected milliseconds in 0…\(Checked.text(EvaluatorSpec.maxLatencyMs)), got \(Checked.text(v))")
            }
            if let v = x.costUSD, !(v.isFinite && v >= 0 && v <= EvaluatorSpec.maxCostUSD) {
                throw EvaluationError.invalidArgument("items[\(i)].costUSD: expected dollars in 0…\(Checked.text(EvaluatorSpec.maxCostUSD)), got \(Checked.text(v))")
            }
        }
        for (i, spec) in inline.enumerated() {
            do { try spec.validate() } catch { throw EvaluationError.invalidArgument("specs[\(i)]: \(error.message)") }
        }
        var specs = inline.map { VersionedSpec(spec: $0, version: 0) }
        if !names.isEmpty { specs += try await self.specs(projectID: projectID, names: names) }
        guard !specs.isEmpty else { throw EvaluationError.invalidArgument("evaluators or specs: at least one evaluator is required") }
        let evaluators = try await providers.build(projectID: projectID, specs: specs)
        let heuristics = evaluators.compactMap { $0 as? any HeuristicEvaluator }
        let start = ContinuousClock.now
        var out: [[EvaluationResult]] = []
        out.reserveCapacity(inputs.count)
        if heuristics.count == evaluators.count {
            for (i, x) in inputs.enumerated() {
                if i % 1000 == 999 { await Task.yield() }
                out.append(heuristics.map { $0.evaluateNow(x) })
            }
        } else {
            out = await withTaskGroup(of: (Int, [EvaluationResult]).self) { group in
                var all = [[EvaluationResult]](repeating: [], count: inputs.count)
                var running = 0
                for (i, x) in inputs.enumerated() {
                    if running >= 64, let (j, rs) = await group.next() {
                        all[j] = rs
                        running -= 1
                    }
                    group.addTask {
                        var rs: [EvaluationResult] = []
                        for e in evaluators { rs.append(await e.evaluate(x)) }
                        return (i, rs)
                    }
                    running += 1
                }
                for await (i, rs) in group { all[i] = rs }
                return all
            }
        }
        return (out, Checked.nanoseconds(start.duration(to: .now)))
    }

    // MARK: online rules

    public func createRule(projectID: String, name: String, filter: RuleFilter, samplingRate: Double, evaluators: [String], enabled: Bool = true) async throws -> OnlineRule {
        guard samplingRate.isFinite, (0...1).contains(samplingRate) else { throw EvaluationError.invalidArgument("samplingRate: expected 0…1, got \(Checked.text(samplingRate))") }
        guard name.count <= 200 else { throw EvaluationError.invalidArgument("name: at most 200 characters") }
        try filter.validate()
        _ = try await specs(projectID: projectID, names: evaluators)
        let rule = OnlineRule(id: newID("rule"), name: name.isEmpty ? "rule" : name, filter: filter, samplingRate: samplingRate, evaluators: evaluators, enabled: enabled, createdUnixMs: nowMs())
        try await repo.insertRule(projectID, rule)
        online.invalidate(projectID: projectID)
        return rule
    }

    public func listRules(projectID: String) async throws -> [OnlineRule] { try await repo.rules(projectID) }

    public func deleteRule(projectID: String, id: String) async throws {
        guard try await repo.deleteRule(projectID, id) else { throw EvaluationError.notFound("rule '\(id)' does not exist") }
        online.invalidate(projectID: projectID)
    }

    // MARK: datasets

    public func createDataset(projectID: String, name: String, description: String = "", items: [DatasetItem] = []) async throws -> Dataset {
        guard !name.isEmpty else { throw EvaluationError.invalidArgument("name: a dataset needs a name") }
        var d = try await repo.createDataset(projectID, name: name, description: description)
        if !items.isEmpty { d.itemCount = try await repo.addItems(projectID, datasetID: d.id, items).count }
        return d
    }

    public func listDatasets(projectID: String) async throws -> [Dataset] { try await repo.datasets(projectID) }

    public func dataset(projectID: String, id: String) async throws -> Dataset {
        guard let d = try await repo.dataset(projectID, id) else { throw EvaluationError.notFound("dataset '\(id)' does not exist") }
        return d
    }

    public func deleteDataset(projectID: String, id: String) async throws {
        guard try await repo.deleteDataset(projectID, id) else { throw EvaluationError.notFound("dataset '\(id)' does not exist") }
    }

    public func addItems(projectID: String, datasetID: String, items: [DatasetItem]) async throws -> [DatasetItem] {
        guard !items.isEmpty else { throw EvaluationError.invalidArgument("items: at least one item is required") }
        return try await repo.addItems(projectID, datasetID: datasetID, items)
    }

    public func items(projectID: String, datasetID: String, limit: Int, offset: Int) async throws -> [DatasetItem] {
        _ = try await dataset(projectID: projectID, id: datasetID)
        return try await repo.items(projectID, datasetID: datasetID, limit: limit, offset: offset)
    }

    /// Adds one item per model call (span with recorded output) of the given traces.
    public func addItemsFromTraces(projectID: String, datasetID: String, traceIDs: [String]) async throws -> [DatasetItem] {
        _ = try await dataset(projectID: projectID, id: datasetID)
        var items: [DatasetItem] = []
        for t in traceIDs {
            for span in try await store.trace(projectID: projectID, traceID: t) where span.isLLMCall && !span.output.isEmpty && span.service != EvaluationSpans.service {
                items.append(InputConversion.datasetItem(from: span))
            }
        }
        guard !items.isEmpty else { throw EvaluationError.notFound("no model calls with recorded output in the given traces") }
        return try await repo.addItems(projectID, datasetID: datasetID, items)
    }

    // MARK: experiments and runs

    public func createExperiment(projectID: String, name: String, datasetID: String, target: Target, evaluators: [String], concurrency: Int?) async throws -> Experiment {
        try target.validate()
        if target.type == "http", let url = target.url { try await checkOutbound(url, field: "target.url") }
        guard name.count <= 200 else { throw EvaluationError.invalidArgument("name: at most 200 characters") }
        _ = try await dataset(projectID: projectID, id: datasetID)
        _ = try await specs(projectID: projectID, names: evaluators)
        if target.type == "provider", let p = target.provider, try await repo.providers(projectID).first(where: { $0.name == p }) == nil {
            throw EvaluationError.notFound("target provider '\(p)' does not exist; create it with POST /api/providers")
        }
        let c = concurrency ?? settings.defaultConcurrency
        guard (1...4096).contains(c) else { throw EvaluationError.invalidArgument("concurrency: expected 1…4096, got \(c)") }
        let e = Experiment(id: newID("exp"), name: name.isEmpty ? "experiment" : name, datasetID: datasetID, target: target, evaluators: evaluators, concurrency: c, createdUnixMs: nowMs())
        try await repo.insertExperiment(projectID, e)
        return e.redacted
    }

    public func listExperiments(projectID: String) async throws -> [Experiment] { try await repo.experiments(projectID).map(\.redacted) }

    /// Starts a run of the experiment over its dataset's current items.
    public func startRun(projectID: String, experimentID: String) async throws -> Run {
        guard let e = try await repo.experiments(projectID).first(where: { $0.id == experimentID }) else { throw EvaluationError.notFound("experiment '\(experimentID)' does not exist") }
        let config = RunConfig(target: e.target, evaluators: try await specs(projectID: projectID, names: e.evaluators), concurrency: e.concurrency)
        let id = try await repo.createRun(projectID, experiment: e, config: config)
        engine.start(projectID: projectID, runID: id)
        return try await run(projectID: projectID, id: id, withAggregates: false)
    }

    public func listRuns(projectID: String, limit: Int = 100) async throws -> [Run] { try await repo.runs(projectID, limit: limit) }

    public func run(projectID: String, id: String, withAggregates: Bool = true) async throws -> Run {
        guard var r = try await repo.run(projectID, id) else { throw EvaluationError.notFound("run '\(id)' does not exist") }
        if withAggregates { r.aggregates = Run.aggregates(try await repo.runItems(projectID, runID: id)) }
        return r
    }

    public func runItems(projectID: String, id: String) async throws -> [RunItemResult] {
        _ = try await run(projectID: projectID, id: id, withAggregates: false)
        return try await repo.runItems(projectID, runID: id)
    }

    public func cancelRun(projectID: String, id: String) async throws -> Run {
        let changed = try await metadata.write { c in
            try c.run("UPDATE eval_runs SET status = 'cancelled', finished_unix_ms = ? WHERE id = ? AND project_id = ? AND status IN ('pending', 'running')", [.integer(nowMs()), .text(id), .text(projectID)])
        }
        let r = try await run(projectID: projectID, id: id)
        if changed == 0, !r.status.isFinal { throw EvaluationError.conflict("run '\(id)' could not be cancelled") }
        return r
    }

    public func compare(projectID: String, base: String, candidate: String) async throws -> RunComparison {
        let a = try await runItems(projectID: projectID, id: base)
        let b = try await runItems(projectID: projectID, id: candidate)
        return RunComparison(base: base, candidate: candidate, baseItems: a, candidateItems: b)
    }

    // MARK: scores (feedback)

    public func addScores(projectID: String, _ scores: [ScoreRow]) async throws -> [ScoreRow] {
        var out: [ScoreRow] = []
        for var s in scores {
            s.projectID = projectID
            guard !s.name.isEmpty else { throw EvaluationError.invalidArgument("name: a score needs a name") }
            guard !s.traceID.isEmpty || !s.sessionID.isEmpty else { throw EvaluationError.invalidArgument("a score needs a traceId (optionally with a spanId) or a sessionId") }
            if !s.spanID.isEmpty, s.traceID.isEmpty { throw EvaluationError.invalidArgument("spanId needs its traceId") }
            switch s.dataType {
            case .numeric: guard let v = s.value, v.isFinite else { throw EvaluationError.invalidArgument("value: a numeric score needs a finite number") }
            case .boolean:
                guard let v = s.value, v == 0 || v == 1 else { throw EvaluationError.invalidArgument("value: a boolean score is 0 or 1 (or true/false)") }
                if s.label.isEmpty { s.label = v == 1 ? "true" : "false" }
            case .categorical: guard !s.label.isEmpty else { throw EvaluationError.invalidArgument("label: a categorical score needs a label") }
            }
            if s.id.isEmpty { s.id = newID("score") }
            if s.createdUnixNanos == 0 { s.createdUnixNanos = nowNanos() }
            out.append(s)
        }
        try await store.insertScores(out)
        return out
    }

    // MARK: webhooks

    public func createWebhook(projectID: String, url: String, secret: String?, events: [String]) async throws -> Webhook {
        guard url.utf8.count <= 2048, let u = URL(string: url), u.scheme == "http" || u.scheme == "https", u.host != nil else { throw EvaluationError.invalidArgument("url: an http(s) URL of at most 2048 bytes is required") }
        try await checkOutbound(url, field: "url")
        let known: Set<String> = ["run.started", "run.progress", "run.completed", "run.failed"]
        for e in events where !known.contains(e) { throw EvaluationError.invalidArgument("events: '\(e)' is not one of \(known.sorted().joined(separator: ", "))") }
        let w = Webhook(id: newID("wh"), url: url, secret: secret.flatMap { $0.isEmpty ? nil : $0 } ?? ("whsec_" + newID("").dropFirst()), events: events, enabled: true, createdUnixMs: nowMs())
        try await repo.insertWebhook(projectID, w)
        return w
    }

    public func listWebhooks(projectID: String) async throws -> [Webhook] {
        try await repo.webhooks(projectID).map { var w = $0; w.secret = ProviderConfig.hint(w.secret); return w }
    }

    public func deleteWebhook(projectID: String, id: String) async throws {
        guard try await repo.deleteWebhook(projectID, id) else { throw EvaluationError.notFound("webhook '\(id)' does not exist") }
    }

    public func testWebhook(projectID: String, id: String) async throws -> Delivery { try await webhooks.test(projectID: projectID, webhookID: id) }

    public func deliveries(projectID: String, webhookID: String, limit: Int = 100) async throws -> [Delivery] {
        guard try await repo.webhooks(projectID).contains(where: { $0.id == webhookID }) else { throw EvaluationError.notFound("webhook '\(webhookID)' does not exist") }
        return try await repo.deliveries(projectID, webhookID: webhookID, limit: limit)
    }
}
