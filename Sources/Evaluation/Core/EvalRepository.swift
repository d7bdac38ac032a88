import EvalForgeCrypto
import EvalForgeStore
import Foundation

func nowMs() -> Int64 { Checked.clamped(Date().timeIntervalSince1970 * 1000, to: 0...Int64.max) }
/// Unix nanoseconds of `date` (clamped: a wrong system clock must not trap).
func unixNanos(_ date: Date) -> Int64 { Checked.clamped(date.timeIntervalSince1970 * 1e9, to: 0...Int64.max) }
func nowNanos() -> Int64 { unixNanos(Date()) }
func newID(_ prefix: String) -> String { prefix + "_" + Digest.hex(Digest.randomBytes(8)) }

private let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return e
}()

func encodeJSON<T: Encodable>(_ v: T) -> String {
    (try? encoder.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
}

func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
    guard let text else { return nil }
    return try? JSONDecoder().decode(T.self, from: Data(text.utf8))
}

/// CRUD over the evaluation tables (all project-scoped). Provider API keys and header values,
/// `http` target header values and webhook secrets are sealed with `secrets` on the way in and
/// opened on the way out (`SecretsAtRest`); nothing else sees the ciphertext.
struct EvalRepository: Sendable {
    let db: any MetadataDatabase
    let secrets: SecretKeyring

    // MARK: providers

    func putProvider(_ projectID: String, _ p: ProviderConfig) async throws {
        let sealed = encodeJSON(try SecretsAtRest.seal(p, secrets))
        try await db.write { c in
            try c.run("INSERT INTO eval_providers (project_id, name, config, created_unix_ms) VALUES (?, ?, ?, ?) ON CONFLICT (project_id, name) DO UPDATE SET config = excluded.config",
                      [.text(projectID), .text(p.name), .text(sealed), .integer(nowMs())])
        }
    }

    func providers(_ projectID: String) async throws -> [ProviderConfig] {
        try await db.read { c in
            try c.query("SELECT config FROM eval_providers WHERE project_id = ? ORDER BY name", [.text(projectID)]).compactMap { decodeJSON(ProviderConfig.self, $0[0].string) }
        }.map { (p: ProviderConfig) throws -> ProviderConfig in try SecretsAtRest.open(p, secrets) }
    }

    func deleteProvider(_ projectID: String, _ name: String) async throws -> Bool {
        try await db.write { c in try c.run("DELETE FROM eval_providers WHERE project_id = ? AND name = ?", [.text(projectID), .text(name)]) > 0 }
    }

    // MARK: evaluators

    /// Creates or replaces; the version increases when the definition changes.
    func putEvaluator(_ projectID: String, _ spec: EvaluatorSpec) async throws -> Int {
        let text = encodeJSON(spec)
        return try await db.write { c in
            let old = try c.query("SELECT version, spec FROM eval_evaluators WHERE project_id = ? AND name = ?", [.text(projectID), .text(spec.name)]).first
            let version: Int
            if let old {
                let v = Int(old[0].int64 ?? 1)
                version = old[1].string == text ? v : v.addingSaturated(1)
                try c.run("UPDATE eval_evaluators SET version = ?, spec = ? WHERE project_id = ? AND name = ?", [.integer(Int64(version)), .text(text), .text(projectID), .text(spec.name)])
            } else {
                version = 1
                try c.run("INSERT INTO eval_evaluators (project_id, name, version, spec, created_unix_ms) VALUES (?, ?, 1, ?, ?)", [.text(projectID), .text(spec.name), .text(text), .integer(nowMs())])
            }
            return version
        }
    }

    func evaluators(_ projectID: String) async throws -> [VersionedSpec] {
        try await db.read { c in
            try c.query("SELECT version, spec FROM eval_evaluators WHERE project_id = ? ORDER BY name", [.text(projectID)]).compactMap { r in
                decodeJSON(EvaluatorSpec.self, r[1].string).map { VersionedSpec(spec: $0, version: Int(r[0].int64 ?? 1)) }
            }
        }
    }

    func deleteEvaluator(_ projectID: String, _ name: String) async throws -> Bool {
        try await db.write { c in try c.run("DELETE FROM eval_evaluators WHERE project_id = ? AND name = ?", [.text(projectID), .text(name)]) > 0 }
    }

    // MARK: rules

    func insertRule(_ projectID: String, _ r: OnlineRule) async throws {
        try await db.write { c in
            try c.run("INSERT INTO eval_rules (id, project_id, name, filter, sampling_rate, evaluators, enabled, created_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      [.text(r.id), .text(projectID), .text(r.name), .text(encodeJSON(r.filter)), .real(r.samplingRate), .text(encodeJSON(r.evaluators)), .integer(r.enabled ? 1 : 0), .integer(r.createdUnixMs)])
        }
    }

    func rules(_ projectID: String) async throws -> [OnlineRule] {
        try await db.read { c in
            try c.query("SELECT id, name, filter, sampling_rate, evaluators, enabled, created_unix_ms FROM eval_rules WHERE project_id = ? ORDER BY created_unix_ms", [.text(projectID)]).map { r in
                OnlineRule(id: r[0].string ?? "", name: r[1].string ?? "", filter: decodeJSON(RuleFilter.self, r[2].string) ?? RuleFilter(), samplingRate: r[3].double ?? 0, evaluators: decodeJSON([String].self, r[4].string) ?? [], enabled: r[5].int64 == 1, createdUnixMs: r[6].int64 ?? 0)
            }
        }
    }

    func deleteRule(_ projectID: String, _ id: String) async throws -> Bool {
        try await db.write { c in try c.run("DELETE FROM eval_rules WHERE project_id = ? AND id = ?", [.text(projectID), .text(id)]) > 0 }
    }

    // MARK: datasets

    func createDataset(_ projectID: String, name: String, description: String) async throws -> Dataset {
        let d = Dataset(id: newID("ds"), name: name, description: description, itemCount: 0, createdUnixMs: nowMs())
        try await db.write { c in
            try c.run("INSERT INTO eval_datasets (id, project_id, name, description, created_unix_ms) VALUES (?, ?, ?, ?, ?)", [.text(d.id), .text(projectID), .text(name), .text(description), .integer(d.createdUnixMs)])
        }
        return d
    }

    func datasets(_ projectID: String) async throws -> [Dataset] {
        try await db.read { c in
            try c.query("SELECT d.id, d.name, d.description, d.created_unix_ms, (SELECT COUNT(*) FROM eval_items i WHERE i.dataset_id = d.id) FROM eval_datasets d WHERE d.project_id = ? ORDER BY d.created_unix_ms DESC", [.text(projectID)]).map { r in
                Dataset(id: r[0].string ?? "", name: r[1].string ?? "", description: r[2].string ?? "", itemCount: Int(r[4].int64 ?? 0), createdUnixMs: r[3].int64 ?? 0)
            }
        }
    }

    func dataset(_ projectID: String, _ id: String) async throws -> Dataset? {
        try await datasets(projectID).first { $0.id == id }
    }

    func deleteDataset(_ projectID: String, _ id: String) async throws -> Bool {
        try await db.write { c in try c.run("DELETE FROM eval_datasets WHERE project_id = ? AND id = ?", [.text(projectID), .text(id)]) > 0 }
    }

    func addItems(_ projectID: String, datasetID: String, _ items: [DatasetItem]) async throws -> [DatasetItem] {
        let now = nowMs()
        return try await db.write { c in
            guard try c.scalar("SELECT 1 FROM eval_datasets WHERE id = ? AND project_id = ?", [.text(datasetID), .text(projectID)]) != nil else {
                throw EvaluationError.notFound("dataset '\(datasetID)' does not exist in this project")
            }
            var seq = try c.scalar("SELECT COALESCE(MAX(seq), 0) FROM eval_items WHERE dataset_id = ?", [.text(datasetID)])?.int64 ?? 0
            var out: [DatasetItem] = []
            for var item in items {
                seq += 1
                if item.id.isEmpty { item.id = newID("item") }
                try c.run("INSERT INTO eval_items (id, dataset_id, seq, input, expected, output, context, metadata, source_trace_id, source_span_id, created_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [.text(item.id), .text(datasetID), .integer(seq), .text(item.input.text), item.expected.map(SQLiteValue.text) ?? .null, item.output.map(SQLiteValue.text) ?? .null,
                           item.context.map(SQLiteValue.text) ?? .null, .text(item.metadata.text), .text(item.sourceTraceID), .text(item.sourceSpanID), .integer(now)])
                out.append(item)
            }
            return out
        }
    }

    func items(_ projectID: String, datasetID: String, limit: Int = 10_000, offset: Int = 0) async throws -> [DatasetItem] {
        try await db.read { c in
            try c.query("SELECT i.id, i.input, i.expected, i.output, i.context, i.metadata, i.source_trace_id, i.source_span_id FROM eval_items i JOIN eval_datasets d ON d.id = i.dataset_id WHERE d.project_id = ? AND i.dataset_id = ? ORDER BY i.seq LIMIT ? OFFSET ?",
                        [.text(projectID), .text(datasetID), .integer(Int64(limit)), .integer(Int64(offset))]).map(Self.item)
        }
    }

    static func item(_ r: MetadataRow) -> DatasetItem {
        DatasetItem(id: r[0].string ?? "", input: JSON.parse(r[1].string ?? "") ?? .string(r[1].string ?? ""), expected: r[2].string, output: r[3].string, context: r[4].string,
                    metadata: JSON.parse(r[5].string ?? "{}") ?? .object([:]), sourceTraceID: r[6].string ?? "", sourceSpanID: r[7].string ?? "")
    }

    // MARK: experiments

    func insertExperiment(_ projectID: String, _ e: Experiment) async throws {
        let target = encodeJSON(try SecretsAtRest.seal(e.target, secrets))
        try await db.write { c in
            try c.run("INSERT INTO eval_experiments (id, project_id, name, dataset_id, target, evaluators, concurrency, created_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      [.text(e.id), .text(projectID), .text(e.name), .text(e.datasetID), .text(target), .text(encodeJSON(e.evaluators)), .integer(Int64(e.concurrency)), .integer(e.createdUnixMs)])
        }
    }

    func experiments(_ projectID: String) async throws -> [Experiment] {
        try await db.read { c in
            try c.query("SELECT id, name, dataset_id, target, evaluators, concurrency, created_unix_ms FROM eval_experiments WHERE project_id = ? ORDER BY created_unix_ms DESC", [.text(projectID)]).compactMap { r in
                guard let t = decodeJSON(Target.self, r[3].string) else { return nil }
                return Experiment(id: r[0].string ?? "", name: r[1].string ?? "", datasetID: r[2].string ?? "", target: t, evaluators: decodeJSON([String].self, r[4].string) ?? [], concurrency: Int(r[5].int64 ?? 1), createdUnixMs: r[6].int64 ?? 0)
            }
        }.map { (e: Experiment) throws -> Experiment in
            var e = e
            e.target = try SecretsAtRest.open(e.target, secrets)
            return e
        }
    }

    // MARK: runs

    /// Creates a run and its run items (one per dataset item, all pending) in one transaction.
    func createRun(_ projectID: String, experiment: Experiment, config: RunConfig) async throws -> String {
        let id = newID("run")
        let now = nowMs()
        var sealedConfig = config
        sealedConfig.target = try SecretsAtRest.seal(config.target, secrets)
        let configText = encodeJSON(sealedConfig)
        try await db.write { c in
            let items = try c.query("SELECT id, seq FROM eval_items WHERE dataset_id = ? ORDER BY seq", [.text(experiment.datasetID)])
            try c.run("INSERT INTO eval_runs (id, project_id, experiment_id, dataset_id, name, status, config, total, created_unix_ms) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                      [.text(id), .text(projectID), .text(experiment.id), .text(experiment.datasetID), .text(experiment.name), .text(configText), .integer(Int64(items.count)), .integer(now)])
            for r in items {
                try c.run("INSERT INTO eval_run_items (run_id, item_id, seq, state) VALUES (?, ?, ?, 'pending')", [.text(id), r[0], r[1]])
            }
        }
        return id
    }

    static let runColumns = "id, experiment_id, dataset_id, name, status, total, done, errors, judge_calls, judge_input_tokens, judge_output_tokens, judge_cost_usd, judge_latency_ms, cache_hits, error, created_unix_ms, started_unix_ms, finished_unix_ms, project_id, judge_calls_repeated"
    /// Columns in `runColumns` (the index of a column selected after them).
    static let runColumnCount = 20

    static func runRow(_ r: MetadataRow) -> Run {
        let calls = Int(r[8].int64 ?? 0)
        return Run(id: r[0].string ?? "", experimentID: r[1].string ?? "", datasetID: r[2].string ?? "", name: r[3].string ?? "", status: RunStatus(rawValue: r[4].string ?? "") ?? .failed,
                   total: Int(r[5].int64 ?? 0), done: Int(r[6].int64 ?? 0), errors: Int(r[7].int64 ?? 0),
                   judge: .init(calls: calls, inputTokens: r[9].int64 ?? 0, outputTokens: r[10].int64 ?? 0, costUSD: r[11].double ?? 0, meanLatencyMs: calls > 0 ? (r[12].double ?? 0) / Double(calls) : 0,
                                callsRepeated: Int(r[19].int64 ?? 0)),
                   cacheHits: Int(r[13].int64 ?? 0), error: r[14].string ?? "", createdUnixMs: r[15].int64 ?? 0, startedUnixMs: r[16].int64, finishedUnixMs: r[17].int64, aggregates: nil)
    }

    func runs(_ projectID: String, limit: Int = 100) async throws -> [Run] {
        try await db.read { c in
            try c.query("SELECT \(Self.runColumns) FROM eval_runs WHERE project_id = ? ORDER BY created_unix_ms DESC LIMIT ?", [.text(projectID), .integer(Int64(limit))]).map(Self.runRow)
        }
    }

    func run(_ projectID: String, _ id: String) async throws -> Run? {
        try await db.read { c in
            try c.query("SELECT \(Self.runColumns) FROM eval_runs WHERE project_id = ? AND id = ?", [.text(projectID), .text(id)]).first.map(Self.runRow)
        }
    }

    func runConfig(_ runID: String) async throws -> RunConfig? {
        guard var config = try await db.read({ c in decodeJSON(RunConfig.self, try c.scalar("SELECT config FROM eval_runs WHERE id = ?", [.text(runID)])?.string) }) else { return nil }
        config.target = try SecretsAtRest.open(config.target, secrets)
        return config
    }

    func runItems(_ projectID: String, runID: String) async throws -> [RunItemResult] {
        try await db.read { c in
            try c.query("SELECT ri.item_id, ri.seq, ri.state, ri.output, ri.latency_ms, ri.error, ri.results FROM eval_run_items ri JOIN eval_runs r ON r.id = ri.run_id WHERE r.project_id = ? AND ri.run_id = ? ORDER BY ri.seq",
                        [.text(projectID), .text(runID)]).map { r in
                RunItemResult(itemID: r[0].string ?? "", seq: Int(r[1].int64 ?? 0), state: r[2].string ?? "", output: r[3].string, latencyMs: r[4].double, error: r[5].string,
                              results: decodeJSON([EvaluationResult].self, r[6].string) ?? [])
            }
        }
    }

    // MARK: webhooks

    func insertWebhook(_ projectID: String, _ w: Webhook) async throws {
        let secret = try secrets.seal(w.secret)
        try await db.write { c in
            try c.run("INSERT INTO eval_webhooks (id, project_id, url, secret, events, enabled, created_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      [.text(w.id), .text(projectID), .text(w.url), .text(secret), .text(encodeJSON(w.events)), .integer(w.enabled ? 1 : 0), .integer(w.createdUnixMs)])
        }
    }

    /// Webhooks with their secrets (for delivery).
    func webhooks(_ projectID: String) async throws -> [Webhook] {
        try await db.read { c in
            try c.query("SELECT id, url, secret, events, enabled, created_unix_ms FROM eval_webhooks WHERE project_id = ? ORDER BY created_unix_ms", [.text(projectID)]).map { r in
                Webhook(id: r[0].string ?? "", url: r[1].string ?? "", secret: r[2].string ?? "", events: decodeJSON([String].self, r[3].string) ?? [], enabled: r[4].int64 == 1, createdUnixMs: r[5].int64 ?? 0)
            }
        }.map { (w: Webhook) throws -> Webhook in
            var w = w
            w.secret = try secrets.open(w.secret)
            return w
        }
    }

    func deleteWebhook(_ projectID: String, _ id: String) async throws -> Bool {
        try await db.write { c in try c.run("DELETE FROM eval_webhooks WHERE project_id = ? AND id = ?", [.text(projectID), .text(id)]) > 0 }
    }

    func deliveries(_ projectID: String, webhookID: String, limit: Int = 100) async throws -> [Delivery] {
        try await db.read { c in
            try c.query("SELECT id, webhook_id, event, status, attempts, last_status_code, last_error, log, payload, created_unix_ms, updated_unix_ms FROM eval_deliveries WHERE project_id = ? AND webhook_id = ? ORDER BY created_unix_ms DESC, id LIMIT ?",
                        [.text(projectID), .text(webhookID), .integer(Int64(limit))]).map(Self.delivery)
        }
    }

    static func delivery(_ r: MetadataRow) -> Delivery {
        Delivery(id: r[0].string ?? "", webhookID: r[1].string ?? "", event: r[2].string ?? "", status: r[3].string ?? "", attempts: Int(r[4].int64 ?? 0), lastStatusCode: r[5].int64.map { Int($0) },
                 lastError: r[6].string ?? "", log: JSON.parse(r[7].string ?? "[]") ?? .array([]), payload: r[8].string ?? "", createdUnixMs: r[9].int64 ?? 0, updatedUnixMs: r[10].int64 ?? 0)
    }
}
