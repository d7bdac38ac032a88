import EvalForgeCrypto
import EvalForgeStore

/// Results of cacheable (judge) evaluators keyed by
/// sha256(project, evaluator name, evaluator version, input, output, expected, context, conversation),
/// kept in `eval_cache`: re-evaluating the same answer costs nothing.
struct ResultCache: Sendable {
    let db: any MetadataDatabase

    static func key(projectID: String, evaluator: any Evaluator, input x: EvaluationInput) -> String {
        var s = projectID + "\u{0}" + evaluator.name + "\u{0}\(evaluator.version)\u{0}" + x.input + "\u{0}" + x.output + "\u{0}" + (x.expected ?? "") + "\u{0}" + (x.context ?? "")
        for m in x.conversation { s += "\u{1}" + m.role + "\u{2}" + m.content }
        return Digest.sha256Hex(s)
    }

    func get(_ key: String) async -> EvaluationResult? {
        let text = try? await db.read { c in try c.scalar("SELECT result FROM eval_cache WHERE key = ?", [.text(key)])?.string }
        guard var r = decodeJSON(EvaluationResult.self, text ?? nil) else { return nil }
        r.cached = true
        r.usage = JudgeUsage()
        r.calls = []
        return r
    }

    /// Inside a write transaction.
    static func put(_ c: any MetadataConnection, key: String, result: EvaluationResult) throws {
        var r = result
        r.calls = []
        try c.run("INSERT INTO eval_cache (key, result, created_unix_ms) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET result = excluded.result, created_unix_ms = excluded.created_unix_ms", [.text(key), .text(encodeJSON(r)), .integer(nowMs())])
    }
}
