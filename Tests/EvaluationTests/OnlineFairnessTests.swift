import EvalForgeModel
import EvalForgeStore
import Foundation
import Testing
@testable import Evaluation

/// The online queue is shared: one project flooding it keeps at most a quarter of it, so another
/// project's spans are still evaluated. Before, a full queue dropped every project's batches.
@Suite(.serialized) struct OnlineFairnessTests {
    /// A custom evaluator that holds every evaluation until released.
    struct Held: Evaluator {
        let gate: Shared<Bool>
        var name: String { "held" }
        var version: Int { 1 }
        var isCacheable: Bool { false }
        func evaluate(_ x: EvaluationInput) async -> EvaluationResult {
            let end = ContinuousClock.now + .seconds(30)
            while !gate.withLock({ $0 }), ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(10)) }
            return EvaluationResult(evaluator: name, version: version, score: 1, label: "pass")
        }
    }

    @Test func oneProjectCannotFillTheQueue() async throws {
        let gate = Shared(false)
        let settings = EvaluationSettings(onlineQueueBatches: 8, onlineConcurrentBatches: 1)
        let r = try await Runner(dir: tempDir(), settings: settings)
        let ev = r.service
        ev.register(Held(gate: gate))
        for p in ["pa", "pb"] {
            _ = try await ev.putEvaluator(projectID: p, .init(name: "held", type: "custom"))
            _ = try await ev.createRule(projectID: p, name: "all", filter: RuleFilter(), samplingRate: 1, evaluators: ["held"])
        }
        func span(_ p: String, _ i: Int) -> SpanRow {
            SpanRow(projectID: p, traceID: String(format: "%032x", i + (p == "pa" ? 0 : 1000)), spanID: String(format: "%016x", i + 1), startUnixNanos: nowNanos(), durationNanos: 1_000_000,
                    service: "app", name: "chat", kind: .client, operation: "chat", provider: "openai", model: "gpt-4o", input: "[]", output: "[]")
        }
        // Project A: one batch in evaluation, then a flood.
        ev.spansStored(projectID: "pa", spans: [span("pa", 0)])
        try await Task.sleep(for: .milliseconds(200))
        for i in 1..<12 { ev.spansStored(projectID: "pa", spans: [span("pa", i)]) }
        // Project B still gets in.
        ev.spansStored(projectID: "pb", spans: [span("pb", 0)])
        gate.withLock { $0 = true }
        let deadline = ContinuousClock.now + .seconds(20)
        var b: [ScoreRow] = []
        while ContinuousClock.now < deadline {
            b = try await r.store.scores(projectID: "pb", runID: try await ev.listRules(projectID: "pb")[0].id)
            if !b.isEmpty { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(b.count == 1, "project B's span was evaluated")
        try await Task.sleep(for: .milliseconds(300))
        let a = try await r.store.scores(projectID: "pa", runID: try await ev.listRules(projectID: "pa")[0].id)
        #expect(a.count == 2, "project A kept its share (8 / 4 = 2 batches): \(a.count)")
        await r.stop()
    }
}
