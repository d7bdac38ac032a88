@testable import Backend
import Foundation
import MockLLM
import Synchronization
import Testing
@testable import Evaluation

/// `POST /api/evaluate` is bounded: its body (413 naming the bound), its work (items × evaluators)
/// and the requests in flight (503 with Retry-After, at most half of them per project).
@Suite(.serialized) struct EvaluateBoundsTests {
    @Test func oversizedBodyAndWorkAreRefused() async throws {
        try await LiveBackend.run { port, _ in
            let big = String(repeating: "x", count: EvaluationRoutes.maxEvaluateBody + 1)
            let tooLarge = try await call(port, "POST", "/api/evaluate", #"{"specs": [{"name": "j", "type": "json_valid"}], "items": [{"output": "\#(big)"}]}"#)
            #expect(tooLarge.status == 413)
            #expect(tooLarge.error.contains("\(EvaluationRoutes.maxEvaluateBody) bytes"), "\(tooLarge.body.prefix(300))")
            // Small items, but more evaluations than one request may ask for.
            let items = Array(repeating: #"{"output": "a"}"#, count: EvaluationService.maxEvaluations / 2 + 1).joined(separator: ",")
            let work = try await call(port, "POST", "/api/evaluate", #"{"specs": [{"name": "j", "type": "json_valid"}, {"name": "k", "type": "refusal"}], "items": [\#(items)]}"#)
            #expect(work.status == 413)
            #expect(work.error.contains("items × evaluators"), "\(work.body.prefix(300))")
            let specs = (0...EvaluationService.maxEvaluators).map { #"{"name": "j\#($0)", "type": "json_valid"}"# }.joined(separator: ",")
            let many = try await call(port, "POST", "/api/evaluate", #"{"specs": [\#(specs)], "items": [{"output": "a"}]}"#)
            #expect(many.status == 413 && many.error.contains("at most \(EvaluationService.maxEvaluators) evaluators"), "\(many.body.prefix(300))")
            #expect(try await call(port, "GET", "/healthz").status == 200)
        }
    }

    /// Judge evaluations against a slow provider hold their slot: beyond the per-project share the
    /// backend answers 503 with Retry-After at once instead of queueing without bound.
    @Test func concurrentEvaluationsAreBounded() async throws {
        try await withMockLLM(latency: .fixed(ms: 1500)) { llm in
            try await LiveBackend.run { port, _ in
                let provider = #"{"name": "judge", "kind": "openai", "baseURL": "http://127.0.0.1:\#(llm)/v1", "apiKey": "k", "model": "gpt-4o-mini"}"#
                #expect(try await call(port, "POST", "/api/providers", provider).status == 201)
                let body = #"{"specs": [{"name": "j", "type": "judge", "rubric": "relevance", "provider": "judge"}], "items": [{"input": "q", "output": "a"}]}"#
                let share = EvaluationRoutes.EvaluateGate(limit: EvaluationRoutes.EvaluateGate.defaultLimit).perProject
                let answers = Shared<[HTTPAnswer]>([])
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<(share + 2) {
                        group.addTask {
                            let a = try await call(port, "POST", "/api/evaluate", body)
                            answers.withLock { $0.append(a) }
                        }
                    }
                    try await group.waitForAll()
                }
                let all = answers.withLock { $0 }
                #expect(all.filter { $0.status == 200 }.count == share, "\(all.map(\.status))")
                let refused = all.filter { $0.status == 503 }
                #expect(refused.count == 2)
                #expect(refused.allSatisfy { $0.retryAfter == "1" && $0.error.contains("in flight") && $0.error.contains("per project") })
                // Once they are done, the next one is served.
                #expect(try await call(port, "POST", "/api/evaluate", body).status == 200)
            }
        }
    }

    @Test func gateSharesSlotsBetweenProjects() {
        let gate = EvaluationRoutes.EvaluateGate(limit: 4)
        #expect(gate.enter("a") && gate.enter("a"))
        #expect(!gate.enter("a"), "a project gets half")
        #expect(gate.enter("b") && gate.enter("b"))
        #expect(!gate.enter("c"), "the total is bounded")
        gate.leave("a")
        #expect(gate.enter("c"))
        #expect(!gate.enter("a"))
    }
}
