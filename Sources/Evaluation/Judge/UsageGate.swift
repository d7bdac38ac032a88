/// What the evaluation runner asks before running an evaluator with I/O (LLM judges and custom
/// evaluators) and tells after a judge call: the backend's tiered rate limits (evaluations, judge
/// tokens, judge cost per project). Set with `EvaluationSettings.usageGate`; nil: no limits.
public protocol EvaluationUsageGate: Sendable {
    /// Nil when one evaluation of `projectID` may run now (it is counted); else why not, naming the
    /// tier, the limit and when it resets.
    func admitEvaluation(projectID: String) async -> String?
    /// Counts a finished judge call's tokens and cost (after the fact: they may overshoot the
    /// limit once; later evaluations are refused until the window resets).
    func recordJudgeUsage(projectID: String, tokens: Int64, costUSD: Double) async
}

/// An evaluator counted by the usage gate: refused evaluations become results with the error
/// `overloaded: rate limit …` (recorded and visible, like any evaluator error), never skipped.
struct GatedEvaluator: Evaluator {
    let inner: any Evaluator
    let gate: any EvaluationUsageGate
    let projectID: String

    var name: String { inner.name }
    var version: Int { inner.version }
    var isCacheable: Bool { inner.isCacheable }

    func evaluate(_ input: EvaluationInput) async -> EvaluationResult {
        if let refusal = await gate.admitEvaluation(projectID: projectID) {
            return EvaluationResult.failure(inner, .overloaded(refusal))
        }
        let r = await inner.evaluate(input)
        if r.usage.calls > 0 {
            let tokens = r.usage.inputTokens.addingReportingOverflow(r.usage.outputTokens)
            await gate.recordJudgeUsage(projectID: projectID, tokens: tokens.overflow ? .max : tokens.partialValue, costUSD: r.usage.costUSD)
        }
        return r
    }
}
