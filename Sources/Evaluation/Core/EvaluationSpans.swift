import EvalForgeCrypto
import EvalForgeModel
import EvalForgeStore

/// How evaluations appear in the telemetry store: an INTERNAL span "evaluation …" in the service
/// `evalforge-evaluation` carrying one `gen_ai.evaluation.result` span event per evaluator (the OTel
/// GenAI evaluation event: `gen_ai.evaluation.name`, `gen_ai.evaluation.score.value`,
/// `gen_ai.evaluation.score.label`, `gen_ai.evaluation.explanation`, `error.type`), with one CLIENT
/// child span per model call (judge or target) carrying tokens and cost.
enum EvaluationSpans {
    static let service = "evalforge-evaluation"

    static func hex(_ s: String, _ n: Int) -> String { String(Digest.sha256Hex(s).prefix(n)) }

    static func events(_ results: [EvaluationResult], at t: Int64) -> String {
        JSON.array(results.map { r in
            var a: [String: JSON] = ["gen_ai.evaluation.name": .string(r.evaluator), "gen_ai.evaluation.score.label": .string(r.label)]
            if let s = r.score { a["gen_ai.evaluation.score.value"] = .number(s) }
            if !r.explanation.isEmpty { a["gen_ai.evaluation.explanation"] = .string(r.explanation) }
            if let e = r.error { a["error.type"] = .string(String(e.prefix(while: { $0 != ":" }))); a["evalforge.evaluation.error"] = .string(e) }
            if r.cached { a["evalforge.evaluation.cached"] = .bool(true) }
            return .object(["name": "gen_ai.evaluation.result", "timeUnixNano": .number(Double(t)), "attributes": .object(a)])
        }).text
    }

    static func callSpan(_ call: ModelCall, projectID: String, traceID: String, parent: String, index: Int, providerKind: (String) -> String) -> SpanRow {
        SpanRow(projectID: projectID, traceID: traceID, spanID: hex(traceID + parent + "\(index)" + call.purpose, 16), parentSpanID: parent,
                startUnixNanos: call.startUnixNanos, durationNanos: call.durationNanos, service: service, name: "chat \(call.model)", kind: .client,
                status: call.error == nil ? .ok : .error, statusMessage: call.error ?? "", operation: "chat", provider: providerKind(call.provider), model: call.model,
                inputTokens: call.inputTokens, outputTokens: call.outputTokens, costUSD: call.costUSD,
                attributesJSON: JSON.object(["evalforge.evaluation.purpose": .string(call.purpose), "evalforge.provider.name": .string(call.provider), "evalforge.attempts": .number(Double(call.attempts))]).text)
    }

    static func score(_ r: EvaluationResult, id: String, projectID: String, traceID: String, spanID: String, source: ScoreSource, runID: String, now: Int64) -> ScoreRow {
        let dataType: ScoreDataType = r.score == nil ? .categorical : (r.label == "pass" || r.label == "fail") && (r.score == 0 || r.score == 1) ? .boolean : .numeric
        return ScoreRow(id: id, projectID: projectID, traceID: traceID, spanID: spanID, name: r.evaluator, value: r.score, label: r.label, dataType: dataType, source: source,
                        comment: r.error ?? r.explanation, evaluator: "\(r.evaluator)@v\(r.version)", runID: runID, createdUnixNanos: now)
    }
}

/// Provider name → kind ("openai", "anthropic") of the judges among `evaluators`.
func providerKinds(_ evaluators: [any Evaluator]) -> [String: String] {
    var out: [String: String] = [:]
    for e in evaluators {
        if let j = ((e as? GatedEvaluator)?.inner ?? e) as? JudgeEvaluator { out[j.provider.config.name] = j.provider.config.kind.rawValue }
    }
    return out
}
