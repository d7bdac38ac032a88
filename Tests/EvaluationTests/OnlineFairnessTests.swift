import EvalForgeModel
import EvalForgeStore
import Foundation
import Testing
@testable import Evaluation

/// The durable online queue is shared fairly: a project holds at most `onlineQueuePerProject`
/// queued spans (the rest skipped and counted, visibly), and claims go round-robin over projects,
/// so a flooding project's backlog cannot delay another project's spans behind it. Before, one
/// in-memory queue was FIFO and a project's overflow was dropped without a visible count.
@Suite(.serialized) struct OnlineFairnessTests {
    /// A custom evaluator that logs the project of each evaluation it starts, then holds it until
    /// the gate opens.
    struct Held: Evaluator {
        let gate: Shared<Bool>
        let order: Shared<[String]>
        var name: String { "held" }
        var version: Int { 1 }
        var isCacheable: Bool { false }
        func evaluate(_ x: EvaluationInput) async -> EvaluationResult {
            let project = x.context ?? "?"
            order.withLock { $0.append(project) }
            let end = ContinuousClock.now + .seconds(30)
            while !gate.withLock({ $0 }), ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(10)) }
            return EvaluationResult(evaluator: name, version: version, score: 1, label: "pass")
        }
    }

    static func span(_ p: String, _ i: Int) -> SpanRow {
        SpanRow(projectID: p, traceID: String(format: "%032x", i + (p == "pa" ? 0 : 100_000)), spanID: String(format: "%016x", i + 1), startUnixNanos: nowNanos(), durationNanos: 1_000_000,
                service: "app", name: "chat", kind: .client, operation: "chat", provider: "openai", model: "gpt-4o", attributesJSON: #"{"evalforge.metadata.context":"\#(p)"}"#, input: "[]", output: "[]")
    }

    /// Stores a batch and queues it, as ingest does.
    static func ingest(_ r: Runner, _ p: String, _ spans: [SpanRow], id: String) async throws -> EvaluationService.OnlineEnqueue {
        _ = try await r.store.insert(StoreBatch(projectID: p, batchID: id, spans: spans, rollups: []))
        return try await r.service.spansStored(projectID: p, spans: spans)
    }

    @Test func aFloodingProjectKeepsItsShareAndCannotDelayAnother() async throws {
        let gate = Shared(false)
        let order = Shared<[String]>([])
        let settings = EvaluationSettings(onlineQueuePerProject: 20, onlineConcurrentBatches: 1, onlineClaimSpans: 4)
        let r = try await Runner(dir: tempDir(), settings: settings)
        let ev = r.service
        ev.register(Held(gate: gate, order: order))
        var rules: [String: String] = [:]
        for p in ["pa", "pb"] {
            _ = try await ev.putEvaluator(projectID: p, .init(name: "held", type: "custom"))
            rules[p] = try await ev.createRule(projectID: p, name: "all", filter: RuleFilter(), samplingRate: 1, evaluators: ["held"]).id
        }
        // Project A floods: 50 spans in 5 batches; 20 fit its share, 30 are skipped and counted.
        var queued = 0, skipped = 0
        for b in 0..<5 {
            let o = try await Self.ingest(r, "pa", (0..<10).map { Self.span("pa", b * 10 + $0) }, id: "a\(b)")
            queued += o.queued
            skipped += o.skippedOverShare
        }
        #expect(queued == 20 && skipped == 30)
        // Project B's one span arrives behind the whole flood.
        let b = try await Self.ingest(r, "pb", [Self.span("pb", 0)], id: "b0")
        #expect(b.queued == 1 && b.skippedOverShare == 0)
        let stats = try await ev.onlineQueueStats(projectID: "pa")
        #expect(stats.limit == 20 && stats.skippedOverShare == 30 && stats.enqueued == 20, "\(stats)")
        #expect(stats.lastSkipUnixMs != nil)

        gate.withLock { $0 = true }
        let deadline = ContinuousClock.now + .seconds(30)
        var a: [ScoreRow] = []
        var bScores: [ScoreRow] = []
        while ContinuousClock.now < deadline {
            a = try await r.store.scores(projectID: "pa", runID: rules["pa"] ?? "")
            bScores = try await r.store.scores(projectID: "pb", runID: rules["pb"] ?? "")
            if a.count == 20, bScores.count == 1 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(bScores.count == 1, "project B's span was evaluated")
        #expect(a.count == 20, "project A's share was evaluated: \(a.count)")
        // Round-robin: B's span was claimed right after A's first claim (4 spans), not after A's 20.
        let started = order.withLock { $0 }
        let bAt = started.firstIndex(of: "pb")
        #expect(bAt != nil && (bAt ?? 99) <= 4, "B evaluated at position \(bAt.map(String.init) ?? "never") of \(started)")
        #expect(started.count == 21, "each queued span evaluated once: \(started.count)")
        let after = try await ev.onlineQueueStats(projectID: "pa")
        #expect(after.queued == 0 && after.evaluated == 20 && after.skippedOverShare == 30, "\(after)")
        await r.stop()
    }

    /// The queue keeps one row per span: a batch queued again while its spans wait (a resend
    /// answered "duplicate") adds nothing, and each span is evaluated once.
    @Test func resentBatchIsQueuedOnce() async throws {
        let gate = Shared(false)
        let order = Shared<[String]>([])
        let r = try await Runner(dir: tempDir(), settings: EvaluationSettings(onlineQueuePerProject: 3, onlineConcurrentBatches: 1))
        let ev = r.service
        ev.register(Held(gate: gate, order: order))
        _ = try await ev.putEvaluator(projectID: "pa", .init(name: "held", type: "custom"))
        let rule = try await ev.createRule(projectID: "pa", name: "all", filter: RuleFilter(), samplingRate: 1, evaluators: ["held"])
        let spans = (0..<5).map { Self.span("pa", $0) }
        let first = try await Self.ingest(r, "pa", spans, id: "a")
        #expect(first == .init(queued: 3, alreadyQueued: 0, skippedOverShare: 2))
        let again = try await r.service.spansStored(projectID: "pa", spans: spans)
        #expect(again == .init(queued: 0, alreadyQueued: 3, skippedOverShare: 2))
        let rows = try await r.metadata.read { c in try c.scalar("SELECT COUNT(*) FROM eval_online_queue WHERE project_id = 'pa'")?.int64 }
        #expect(rows == 3)
        gate.withLock { $0 = true }
        let deadline = ContinuousClock.now + .seconds(20)
        var scores: [ScoreRow] = []
        while ContinuousClock.now < deadline {
            scores = try await r.store.scores(projectID: "pa", runID: rule.id)
            if scores.count >= 3, try await ev.onlineQueueStats(projectID: "pa").queued == 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(200))
        scores = try await r.store.scores(projectID: "pa", runID: rule.id)
        #expect(scores.count == 3)
        #expect(order.withLock { $0.count } == 3, "each queued span evaluated once")
        let stats = try await ev.onlineQueueStats(projectID: "pa")
        #expect(stats == OnlineQueueStats(limit: 3, queued: 0, enqueued: 3, evaluated: 3, skippedOverShare: 4, failedAfterClaims: 0, missingSpans: 0, lastSkipUnixMs: stats.lastSkipUnixMs))
        await r.stop()
    }
}
