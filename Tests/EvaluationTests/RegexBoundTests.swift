import Foundation
import Synchronization
import Testing
@testable import Evaluation

/// User regexes run on PCRE2 with match, depth and heap limits, off the cooperative pool with a
/// deadline. Before: ICU without limits on the cooperative pool, and `^(a+)+$` against a long
/// non-matching output stalled the backend.
@Suite(.serialized) struct RegexBoundTests {
    static let evil = String(repeating: "a", count: 100_000) + "!"

    @Test func catastrophicBacktrackingEndsWithAnErrorResult() throws {
        let re = try BoundedRegex("^(a+)+$")
        let start = ContinuousClock.now
        let r = re.matches(Self.evil)
        let took = start.duration(to: .now)
        guard case .failure(let e) = r else { Issue.record("expected a limit error, got \(r)"); return }
        #expect(e.kind == "limit_exceeded")
        #expect(e.message.contains("backtracking"))
        #expect(took < .seconds(2), "the match limit stops it: \(took)")
        // Ordinary patterns on the same input are unaffected; UTF mode and Unicode classes.
        #expect(try BoundedRegex("a+!$").matches(Self.evil) == .success(true))
        #expect(try BoundedRegex("^\\w+$").matches("déjà") == .success(true))
        #expect(try BoundedRegex("^.$").matches("😀") == .success(true))
        #expect(try BoundedRegex("x").matches("") == .success(false))
        #expect(throws: EvaluationError.self) { try BoundedRegex("(") }
        #expect(throws: EvaluationError.self) { try BoundedRegex("") }
        // A deadline that has passed stops matching before it starts.
        let late = try BoundedRegex("a").matches("a", deadline: .now - .seconds(1))
        #expect((try? late.get()) == nil)
    }

    /// Through the real route: the evil regex (as an evaluator and as a schema pattern) against the
    /// long output ends quickly with an evaluation error carrying the reason, and while several
    /// such requests run the backend keeps answering other requests promptly.
    @Test func evilRegexThroughTheAPIDoesNotStallTheBackend() async throws {
        try await LiveBackend.run { port, _ in
            let output = JSON.quote(Self.evil)
            let body = #"{"specs": [{"name": "re", "type": "regex", "pattern": "^(a+)+$"}, {"name": "shape", "type": "json_schema", "schema": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}}, {"name": "len", "type": "length", "max": 10}], "items": [{"output": \#(output)}, {"output": \#(JSON.quote("{\"s\": " + output + "}"))}]}"#
            let start = ContinuousClock.now
            let first = try await call(port, "POST", "/api/evaluate", body)
            let took = start.duration(to: .now)
            #expect(first.status == 200, "\(first.body.prefix(300))")
            #expect(took < .seconds(10), "\(took)")
            let results = try #require(first.json?["results"]?.arrayValue)
            let re = try #require(results[0].arrayValue?.first { $0["evaluator"] == "re" })
            #expect(re["label"] == "error")
            #expect(re["error"]?.stringValue?.hasPrefix("limit_exceeded") == true, "\(re)")
            let shape = try #require(results[1].arrayValue?.first { $0["evaluator"] == "shape" })
            #expect(shape["error"]?.stringValue?.hasPrefix("limit_exceeded") == true, "\(shape)")
            // Other evaluators of the same request still give their verdict.
            #expect(results[0].arrayValue?.first { $0["evaluator"] == "len" }?["label"] == "fail")

            // Several evil evaluations at once (more than the regex slots), from a second project's
            // view the backend answers within a fraction of a second meanwhile.
            let evilOnly = #"{"specs": [{"name": "re", "type": "regex", "pattern": "^(a+)+$"}], "items": [\#(Array(repeating: "{\"output\": \(output)}", count: 8).joined(separator: ","))]}"#
            let worst = Shared(Duration.zero)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 { group.addTask { _ = try await call(port, "POST", "/api/evaluate", evilOnly, timeout: .seconds(120)) } }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(50))
                    for _ in 0..<10 {
                        let t0 = ContinuousClock.now
                        #expect(try await call(port, "GET", "/healthz").status == 200)
                        let ok = try await call(port, "POST", "/api/evaluate", #"{"specs": [{"name": "j", "type": "json_valid"}], "items": [{"output": "{}"}]}"#)
                        #expect(ok.status == 200 || ok.status == 503, "\(ok.body)")
                        let d = t0.duration(to: .now)
                        worst.withLock { $0 = max($0, d) }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                try await group.waitForAll()
            }
            // Unbounded, `^(a+)+$` on 100,000 characters runs for hours; with the whole test process
            // sharing two cores with the process-spawning suites the health checks can wait several
            // times the 2 s regex deadline (5.1 s seen): 15 s still tells a bound from a stall.
            #expect(worst.withLock { $0 } < .seconds(15), "the backend kept answering: worst \(worst.withLock { $0 })")
        }
    }

    /// A regex evaluator stored with a pattern PCRE2 cannot compile: 400 naming the field.
    @Test func invalidPatternIsRefusedWhenStored() async throws {
        try await LiveBackend.run { port, _ in
            let r = try await call(port, "POST", "/api/evaluators", #"{"name": "re", "type": "regex", "pattern": "(unclosed"}"#)
            #expect(r.status == 400 && r.error.contains("evaluator.pattern"), "\(r.body)")
            let ok = try await call(port, "POST", "/api/evaluators", #"{"name": "re", "type": "regex", "pattern": "^[A-Z]\\w+$"}"#)
            #expect(ok.status == 201, "\(ok.body)")
        }
    }
}
