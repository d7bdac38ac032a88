import EvalForgeCore
import Evaluation

/// The evaluation runner's view of the rate limits: evaluations counted one by one against the
/// project's tier, judge tokens and cost counted after each call (and, while either has nothing
/// left, further evaluations refused). Runs for the project, whichever key started them.
struct RateLimitEvaluationGate: EvaluationUsageGate {
    let limiter: RateLimiter

    func admitEvaluation(projectID: String) async -> String? {
        guard let subject = await limiter.projectSubject(projectID) else { return nil }
        for d in [RateLimitDimension.judgeTokens, .judgeCost] {
            let left = await limiter.hasBudget(subject, d)
            if !left.allowed { return Self.refusal(left) }
        }
        let d = await limiter.consume(subject, .evaluations, 1)
        return d.allowed ? nil : Self.refusal(d)
    }

    func recordJudgeUsage(projectID: String, tokens: Int64, costUSD: Double) async {
        guard let subject = await limiter.projectSubject(projectID) else { return }
        if tokens > 0 { _ = await limiter.consume(subject, .judgeTokens, tokens, force: true) }
        // Micro-USD, clamped: a provider's cost is outside data.
        if costUSD.isFinite, costUSD > 0, let micro = (costUSD * 1e6).clampedInteger(Int64.self), micro > 0 {
            _ = await limiter.consume(subject, .judgeCost, micro, force: true)
        }
    }

    static func refusal(_ d: RateLimitDecision) -> String {
        let what = d.dimension == .judgeCost ? "judge cost (micro-USD)" : d.dimension.rawValue.replacingOccurrences(of: "_", with: " ")
        return "rate limit: tier '\(d.tier)' allows \(d.limit) \(what) per \(d.window); retry after \(d.resetSeconds) s"
    }
}
