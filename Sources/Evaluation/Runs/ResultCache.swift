import EvalForgeCrypto
import EvalForgeStore

/// Results of cacheable (judge) evaluators keyed by
/// sha256(project, evaluator name, evaluator version, input, output, expected, context, conversation),
/// kept in `eval_cache`: re-evaluating the same answer costs nothing. A result is kept right after
/// its call succeeded (not when the item's result is recorded), so an item evaluated again after its
/// claim was lost (the backend stopped) pays for the calls already made only once. A provider
/// target's answer is kept the same way, per run and item (`targetKey`).
struct ResultCache: Sendable {
    let db: any MetadataDatabase

    static func key(projectID: String, evaluator: any Evaluator, input x: EvaluationInput) -> String {
        var s = projectID + "\u{0}" + evaluator.name + "\u{0}\(evaluator.version)\u{0}" + x.input + "\u{0}" + x.output + "\u{0}" + (x.expected ?? "") + "\u{0}" + (x.context ?? "")
        for m in x.conversation { s += "\u{1}" + m.role + "\u{2}" + m.content }
        return Digest.sha256Hex(s)
    }

    func get(_ key: String) async -> EvaluationResult? {
        guard var r = decodeJSON(EvaluationResult.self, await text(key)) else { return nil }
        r.cached = true
        r.usage = JudgeUsage()
        r.calls = []
        return r
    }

    /// Keeps `result` now, in its own transaction. Best effort: when it fails the result is still
    /// used; only a re-claim of the item would pay for the call again.
    func put(_ key: String, result: EvaluationResult) async {
        _ = try? await db.write { c in try Self.put(c, key: key, result: result) }
    }

    /// A provider target's answer to one dataset item.
    struct TargetAnswer: Sendable, Codable {
        var text: String
        var toolCalls: [EvaluationInput.ToolCall]
        var costUSD: Double?
        var latencyMs: Double?
    }

    /// The key of a provider target's answer to one item of one run: per run (another run of the
    /// same experiment asks the model again), so only a re-claim of the item within the run reuses it.
    static func targetKey(runID: String, itemID: String) -> String {
        Digest.sha256Hex("target\u{0}" + runID + "\u{0}" + itemID)
    }

    /// A kept target answer; a stored row is read back, not trusted (costs and latencies finite, ≥ 0).
    func target(_ key: String) async -> TargetAnswer? {
        guard var a = decodeJSON(TargetAnswer.self, await text(key)) else { return nil }
        a.costUSD = a.costUSD.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
        a.latencyMs = a.latencyMs.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
        return a
    }

    func putTarget(_ key: String, _ answer: TargetAnswer) async {
        var a = answer
        a.costUSD = a.costUSD.flatMap { $0.isFinite ? $0 : nil }  // JSON has no NaN or infinity
        a.latencyMs = a.latencyMs.flatMap { $0.isFinite ? $0 : nil }
        let text = encodeJSON(a)
        _ = try? await db.write { c in try Self.store(c, key: key, text: text) }
    }

    private func text(_ key: String) async -> String? {
        (try? await db.read { c in try c.scalar("SELECT result FROM eval_cache WHERE key = ?", [.text(key)])?.string }) ?? nil
    }

    private static func store(_ c: any MetadataConnection, key: String, text: String) throws {
        try c.run("INSERT INTO eval_cache (key, result, created_unix_ms) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET result = excluded.result, created_unix_ms = excluded.created_unix_ms",
                  [.text(key), .text(text), .integer(nowMs())])
    }

    /// Inside a write transaction.
    static func put(_ c: any MetadataConnection, key: String, result: EvaluationResult) throws {
        var r = result
        r.calls = []
        try store(c, key: key, text: encodeJSON(r))
    }
}
