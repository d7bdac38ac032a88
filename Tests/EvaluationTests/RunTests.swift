import EvalForgeCore
import EvalForgeModel
import EvalForgeStore
import Foundation
import MockLLM
import Testing
@testable import Evaluation

/// Real HTTP on loopback: the mock LLM as judge, SQLite files, the runner's background services.
@Suite(.serialized) struct RunTests {
    let project = "p1"

    func judgeProvider(_ port: Int, name: String = "judge", kind: ProviderConfig.Kind = .openai, headers: [String: String] = [:], maxRetries: Int = 2, timeoutMs: Int = 5000) -> ProviderConfig {
        ProviderConfig(name: name, kind: kind, baseURL: kind == .openai ? "http://127.0.0.1:\(port)/v1" : "http://127.0.0.1:\(port)", apiKey: "test", model: "gpt-4o-mini",
                       timeoutMs: timeoutMs, maxRetries: maxRetries, backoffMs: 20, headers: headers)
    }

    /// Judge calls are priced from the backend's price table (`--price-file`), like the spans: a
    /// model the built-in table does not know gets the file's price.
    @Test func judgeCallsArePricedFromThePriceFile() async throws {
        try await withMockLLM { port in
            let file = #"{"version": "test", "models": [{"model": "house-judge", "input": 1000, "output": 2000}]}"#
            var settings = EvaluationSettings(outbound: .testLoopback)
            settings.priceTable = try PriceFile.parse(Data(file.utf8))
            let r = try await Runner(dir: tempDir(), settings: settings)
            let ev = r.service
            var provider = judgeProvider(port)
            provider.model = "house-judge"
            _ = try await ev.putProvider(projectID: project, provider)
            _ = try await ev.putEvaluator(projectID: project, .init(name: "relevance", type: "judge", rubric: .relevance, provider: "judge"))
            let ds = try await ev.createDataset(projectID: project, name: "priced", items: items(2))
            let exp = try await ev.createExperiment(projectID: project, name: "p", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["relevance"], concurrency: 2)
            let run = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
            #expect(run.status == .completed && run.judge.calls == 2)
            let expected = Double(run.judge.inputTokens) * 1000 / 1e6 + Double(run.judge.outputTokens) * 2000 / 1e6
            #expect(run.judge.inputTokens > 0 && abs(run.judge.costUSD - expected) < 1e-9, "\(run.judge)")
            await r.stop()
        }
    }

    @Test func experimentWithJudgeAndHeuristics() async throws {
        try await withMockLLM { port in
            let dir = tempDir()
            let r = try await Runner(dir: dir)
            let ev = r.service
            _ = try await ev.putProvider(projectID: project, judgeProvider(port))
            _ = try await ev.putProvider(projectID: project, judgeProvider(port, name: "claude", kind: .anthropic))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "relevance", type: "judge", rubric: .relevance, provider: "judge"))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "faithfulness", type: "judge", rubric: .faithfulness, provider: "claude", model: "claude-3-5-haiku-latest"))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "has_answer", type: "contains"))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "no_pii", type: "pii"))
            let ds = try await ev.createDataset(projectID: project, name: "arith", items: items(20))
            let exp = try await ev.createExperiment(projectID: project, name: "e1", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["relevance", "faithfulness", "has_answer", "no_pii"], concurrency: 8)
            let started = try await ev.startRun(projectID: project, experimentID: exp.id)
            let run = try await r.waitForRun(project, started.id)
            #expect(run.status == .completed)
            #expect(run.done == 20 && run.total == 20 && run.errors == 0)
            #expect(run.judge.calls == 40)
            #expect(run.judge.inputTokens > 0 && run.judge.outputTokens > 0 && run.judge.costUSD > 0)
            let full = try await ev.run(projectID: project, id: run.id)
            let aggs = try #require(full.aggregates)
            #expect(Set(aggs.map(\.evaluator)) == ["relevance", "faithfulness", "has_answer", "no_pii"])
            #expect(aggs.first { $0.evaluator == "has_answer" }?.passRate == 1)
            #expect(aggs.first { $0.evaluator == "relevance" }?.scored == 20)
            // Scores and traces in the store.
            let scores = try await r.store.scores(projectID: project, runID: run.id)
            #expect(scores.count == 80)
            let oneTrace = try #require(scores.first?.traceID)
            let spans = try await r.store.trace(projectID: project, traceID: oneTrace)
            #expect(spans.contains { $0.eventsJSON.contains("gen_ai.evaluation.result") })
            #expect(spans.filter { $0.operation == "chat" && $0.costUSD != nil }.count == 2)

            // A second run of the same experiment hits the result cache: no judge calls.
            let again = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
            #expect(again.status == .completed && again.judge.calls == 0 && again.cacheHits == 40)
            let cmp = try await ev.compare(projectID: project, base: run.id, candidate: again.id)
            #expect(cmp.evaluators.first { $0.evaluator == "relevance" }?.meanDelta == 0)
            #expect(cmp.regressions.isEmpty)
            await r.stop()
        }
    }

    @Test func providerTargetAndComparison() async throws {
        try await withMockLLM { port in
            let r = try await Runner(dir: tempDir())
            let ev = r.service
            _ = try await ev.putProvider(projectID: project, judgeProvider(port))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "short", type: "length", max: 200))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "helpful", type: "judge", rubric: .helpfulness, provider: "judge"))
            let ds = try await ev.createDataset(projectID: project, name: "d", items: items(12))
            let a = try await ev.createExperiment(projectID: project, name: "a", datasetID: ds.id, target: Target(type: "provider", provider: "judge", model: "gpt-4o-mini", system: "Be brief."), evaluators: ["short", "helpful"], concurrency: 4)
            let b = try await ev.createExperiment(projectID: project, name: "b", datasetID: ds.id, target: Target(type: "provider", provider: "judge", model: "gpt-4.1-mini", system: "Be thorough."), evaluators: ["short", "helpful"], concurrency: 4)
            let ra = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: a.id).id)
            let rb = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: b.id).id)
            #expect(ra.status == .completed && rb.status == .completed)
            let itemsA = try await ev.runItems(projectID: project, id: ra.id)
            #expect(itemsA.allSatisfy { $0.output?.isEmpty == false && $0.latencyMs != nil })
            let cmp = try await ev.compare(projectID: project, base: ra.id, candidate: rb.id)
            let helpful = try #require(cmp.evaluators.first { $0.evaluator == "helpful" })
            #expect(helpful.pairs == 12)
            #expect(helpful.improved + helpful.regressed + helpful.unchanged == 12)
            #expect(cmp.regressions.count == helpful.regressed + (cmp.evaluators.first { $0.evaluator == "short" }?.regressed ?? 0))
            await r.stop()
        }
    }

    /// Judge faults injected by the mock LLM end as recorded evaluation errors, never a stuck run.
    @Test func judgeErrorsAreRecorded() async throws {
        try await withMockLLM { port in
            let r = try await Runner(dir: tempDir())
            let ev = r.service
            _ = try await ev.putProvider(projectID: project, judgeProvider(port, name: "malformed", headers: ["x-mock-fault": "malformed"], maxRetries: 1))
            _ = try await ev.putProvider(projectID: project, judgeProvider(port, name: "down", headers: ["x-mock-fault": "500"], maxRetries: 2))
            _ = try await ev.putProvider(projectID: project, judgeProvider(port, name: "limited", kind: .anthropic, headers: ["x-mock-fault": "429"], maxRetries: 1))
            _ = try await ev.putProvider(projectID: project, judgeProvider(port, name: "slow", headers: ["x-mock-latency-ms": "2000"], maxRetries: 0, timeoutMs: 200))
            for (n, p) in [("j_malformed", "malformed"), ("j_down", "down"), ("j_limited", "limited"), ("j_slow", "slow")] {
                _ = try await ev.putEvaluator(projectID: project, .init(name: n, type: "judge", rubric: .relevance, provider: p))
            }
            _ = try await ev.putEvaluator(projectID: project, .init(name: "json", type: "json_valid"))
            let ds = try await ev.createDataset(projectID: project, name: "d", items: items(5))
            let exp = try await ev.createExperiment(projectID: project, name: "faults", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["j_malformed", "j_down", "j_limited", "j_slow", "json"], concurrency: 5)
            let run = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
            #expect(run.status == .completed)  // heuristic results exist, so not every evaluation failed
            #expect(run.done == 5 && run.errors == 5)
            let results = try await ev.runItems(projectID: project, id: run.id)
            for item in results {
                let by = Dictionary(uniqueKeysWithValues: item.results.map { ($0.evaluator, $0) })
                #expect(by["j_malformed"]?.error?.hasPrefix("malformed_answer") == true)
                #expect(by["j_down"]?.error?.contains("answered 500") == true)
                #expect(by["j_limited"]?.error?.contains("answered 429") == true)
                #expect(by["j_slow"]?.error?.hasPrefix("timeout") == true)
                #expect(by["json"]?.error == nil && by["json"]?.score == 0)
            }
            // Errors are stored as scores with their reason, and failed judge calls as error spans.
            let scores = try await r.store.scores(projectID: project, runID: run.id)
            #expect(scores.filter { $0.label == "error" && $0.comment.contains("malformed_answer") }.count == 5)
            await r.stop()
        }
    }

    /// A backend stop in the middle of a run: after the restart the run resumes and completes, each
    /// item evaluated (recorded) exactly once and none skipped.
    @Test func restartMidRun() async throws {
        try await withMockLLM(latency: .fixed(ms: 120)) { port in
            let dir = tempDir()
            var r = try await Runner(dir: dir)
            _ = try await r.service.putProvider(projectID: project, judgeProvider(port))
            _ = try await r.service.putEvaluator(projectID: project, .init(name: "relevance", type: "judge", rubric: .relevance, provider: "judge"))
            _ = try await r.service.putEvaluator(projectID: project, .init(name: "len", type: "length", min: 1))
            let ds = try await r.service.createDataset(projectID: project, name: "d", items: items(60))
            let exp = try await r.service.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["relevance", "len"], concurrency: 4)
            let runID = try await r.service.startRun(projectID: project, experimentID: exp.id).id
            let mid = try await r.waitForRun(project, runID, until: { $0.done >= 8 })
            #expect(mid.status == .running)
            await r.stop()

            // Nothing moves while the backend is down.
            r = try await Runner(dir: dir)
            let resumed = try await r.waitForRun(project, runID)
            #expect(resumed.status == .completed)
            #expect(resumed.total == 60 && resumed.done == 60 && resumed.errors == 0)
            let items = try await r.service.runItems(projectID: project, id: runID)
            #expect(items.count == 60)
            #expect(items.allSatisfy { $0.state == "done" && $0.results.count == 2 })
            #expect(Set(items.map(\.itemID)).count == 60)
            let scores = try await r.store.scores(projectID: project, runID: runID)
            #expect(scores.count == 120)
            // Each item was committed once: claims beyond the first only for items in flight at the stop.
            let claims = try await r.metadata.read { c in try c.query("SELECT claims FROM eval_run_items WHERE run_id = ?", [.text(runID)]).map { $0[0].int64 ?? 0 } }
            #expect(claims.allSatisfy { $0 >= 1 && $0 <= 2 })
            #expect(claims.filter { $0 == 2 }.count <= 4 + 32)
            // One verdict per item: a judge call, or (for an item whose verdict came back before the
            // stop, its result not yet recorded) the verdict kept in the result cache right after
            // the call, not paid again. A graceful stop gives claims back: nothing counts as repeated.
            #expect(resumed.judge.calls + resumed.cacheHits == 60, "\(resumed.judge.calls) calls, \(resumed.cacheHits) cache hits")
            #expect(resumed.judge.callsRepeated == 0)
            await r.stop()
        }
    }

    @Test func webhooksSignedRetriedAndLogged() async throws {
        // Attempt 1 hangs (cut off by the timeout), attempt 2 fails with 500, then success.
        let receiver = Receiver(secret: "whsec_test") { n in n == 1 ? .hang : (n == 2 ? .fail : .ok) }
        try await receiver.run { hookPort in
            let r = try await Runner(dir: tempDir())
            let ev = r.service
            let hook = try await ev.createWebhook(projectID: project, url: "http://127.0.0.1:\(hookPort)/hook", secret: "whsec_test", events: [])
            let first = try await ev.testWebhook(projectID: project, id: hook.id)
            #expect(first.attempts == 1 && first.status == "pending")
            #expect(first.lastError.hasPrefix("timeout"))
            let deadline = ContinuousClock.now + .seconds(10)
            var d = first
            while ContinuousClock.now < deadline {
                d = try #require(try await ev.deliveries(projectID: project, webhookID: hook.id).first)
                if d.status == "delivered" { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(d.status == "delivered" && d.attempts == 3)
            #expect(d.log.arrayValue?.count == 3)
            #expect(d.log.arrayValue?[1]["status"] == .number(500))
            #expect(receiver.snapshot.rejected == 0 && receiver.snapshot.verified == 3)

            // Run events.
            let ds = try await ev.createDataset(projectID: project, name: "d", items: items(3))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "len", type: "length", max: 1000))
            let exp = try await ev.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["len"], concurrency: 2)
            _ = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
            while ContinuousClock.now < deadline, !receiver.snapshot.events.contains("run.completed") { try await Task.sleep(for: .milliseconds(20)) }
            #expect(receiver.snapshot.events.contains("run.started"))
            #expect(receiver.snapshot.events.contains("run.completed"))
            #expect(receiver.snapshot.rejected == 0)
            await r.stop()
        }
    }

    @Test func hangingReceiverFailsAfterSchedule() async throws {
        let receiver = Receiver(secret: "k") { _ in .hang }
        try await receiver.run { hookPort in
            let r = try await Runner(dir: tempDir())
            let hook = try await r.service.createWebhook(projectID: project, url: "http://127.0.0.1:\(hookPort)/hook", secret: "k", events: ["run.completed"])
            _ = try await r.service.testWebhook(projectID: project, id: hook.id)
            let deadline = ContinuousClock.now + .seconds(10)
            var d: Delivery?
            while ContinuousClock.now < deadline {
                d = try await r.service.deliveries(projectID: project, webhookID: hook.id).first
                if d?.status == "failed" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(d?.status == "failed")
            #expect(d?.attempts == 4)  // first + 3 retries of the test schedule
            #expect(d?.log.arrayValue?.allSatisfy { $0["error"]?.stringValue?.hasPrefix("timeout") == true } == true)
            await r.stop()
        }
    }

    @Test func onlineRulesScoreIncomingSpans() async throws {
        let r = try await Runner(dir: tempDir())
        let ev = r.service
        _ = try await ev.putEvaluator(projectID: project, .init(name: "no_pii", type: "pii"))
        _ = try await ev.putEvaluator(projectID: project, .init(name: "not_refusal", type: "refusal"))
        _ = try await ev.createRule(projectID: project, name: "chat checks", filter: RuleFilter(model: "gpt-4o"), samplingRate: 1, evaluators: ["no_pii", "not_refusal"])
        let trace = String(repeating: "ab", count: 16)
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        let input = #"[{"role":"user","parts":[{"type":"text","content":"my contact?"}]}]"#
        let output = #"[{"role":"assistant","parts":[{"type":"text","content":"Write to bob@example.org"}]}]"#
        let spans = [
            SpanRow(projectID: project, traceID: trace, spanID: "00000000000000a1", startUnixNanos: now, durationNanos: 1_000_000, service: "app", name: "chat gpt-4o", kind: .client, operation: "chat", provider: "openai", model: "gpt-4o", input: input, output: output),
            SpanRow(projectID: project, traceID: trace, spanID: "00000000000000a2", startUnixNanos: now, durationNanos: 1_000_000, service: "app", name: "chat other", kind: .client, operation: "chat", provider: "openai", model: "gpt-4.1", input: input, output: output),
        ]
        _ = try await r.store.insert(StoreBatch(projectID: project, batchID: "b1", spans: spans, rollups: []))
        try await ev.spansStored(projectID: project, spans: spans)
        var scores: [ScoreRow] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            scores = try await r.store.scores(projectID: project, traceIDs: [trace])
            if scores.count >= 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(scores.count == 2)
        #expect(scores.allSatisfy { $0.spanID == "00000000000000a1" && $0.source == .online })
        #expect(scores.first { $0.name == "no_pii" }?.value == 0)
        #expect(scores.first { $0.name == "not_refusal" }?.value == 1)
        let stored = try await r.store.trace(projectID: project, traceID: trace)
        let evalSpan = try #require(stored.first { $0.service == "evalforge-evaluation" })
        #expect(evalSpan.parentSpanID == "00000000000000a1")
        #expect(evalSpan.eventsJSON.contains("\"gen_ai.evaluation.result\""))
        #expect(evalSpan.eventsJSON.contains("\"gen_ai.evaluation.name\":\"no_pii\""))
        await r.stop()
    }
}

extension RunTests {
    /// A run whose every item fails ends "failed" with the reason (and fires no stuck state).
    @Test func runFailsWhenNothingUsable() async throws {
        try await withMockLLM { port in
            let r = try await Runner(dir: tempDir())
            let ev = r.service
            _ = try await ev.putProvider(projectID: project, judgeProvider(port, name: "down", headers: ["x-mock-fault": "500"], maxRetries: 0))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "j", type: "judge", rubric: .toxicity, provider: "down"))
            let ds = try await ev.createDataset(projectID: project, name: "d", items: items(4))
            let exp = try await ev.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["j"], concurrency: 2)
            let run = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
            #expect(run.status == .failed)
            #expect(run.error.contains("every item failed") && run.error.contains("500"))
            #expect(run.done == 4 && run.errors == 4)
            await r.stop()
        }
    }
}
