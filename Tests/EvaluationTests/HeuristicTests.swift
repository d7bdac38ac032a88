import Foundation
import Testing
@testable import Evaluation

@Suite struct HeuristicTests {
    func run(_ spec: EvaluatorSpec, _ x: EvaluationInput) throws -> EvaluationResult {
        let e = try spec.build(version: 1, providers: { _ in nil })
        // Heuristics that match user regexes are built to run off the cooperative pool.
        if let off = e as? OffPoolHeuristic { return off.heuristic.evaluateNow(x) }
        let h = try #require(e as? any HeuristicEvaluator)
        return h.evaluateNow(x)
    }

    @Test func matchers() throws {
        let x = EvaluationInput(input: "capital of France?", output: "  Paris ", expected: "paris")
        #expect(try run(.init(name: "m", type: "exact_match"), x).score == 0)
        #expect(try run(.init(name: "m", type: "exact_match", ignoreCase: true), x).score == 1)
        #expect(try run(.init(name: "c", type: "contains", value: "Par"), x).label == "pass")
        #expect(try run(.init(name: "c", type: "contains", value: "Lyon"), x).label == "fail")
        #expect(try run(.init(name: "r", type: "regex", pattern: "^\\s*P[a-z]+\\s*$"), x).score == 1)
        #expect(throws: EvaluationError.self) { try EvaluatorSpec(name: "r", type: "regex", pattern: "(").build(version: 1, providers: { _ in nil }) }
        let noExpected = EvaluationInput(input: "", output: "a")
        #expect(try run(.init(name: "m", type: "exact_match"), noExpected).error?.hasPrefix("invalid_argument") == true)
    }

    @Test func jsonAndSchema() throws {
        #expect(JSON.parse("{\"a\": [1, 2.5e3, true, null, \"x\\u00e9\\n\"]}") != nil)
        #expect(JSON.parse("{\"a\": 1,}") == nil)
        #expect(JSON.parse("[1, 2") == nil)
        #expect(JSON.parse("01") == nil)
        #expect(JSON.parse("\"\\ud83d\\ude00\"")?.stringValue == "😀")
        #expect(try run(.init(name: "j", type: "json_valid"), .init(input: "", output: "{\"ok\": true}")).score == 1)
        #expect(try run(.init(name: "j", type: "json_valid"), .init(input: "", output: "{ok: true}")).score == 0)

        let schema: JSON = [
            "type": "object", "required": ["name", "age", "tags"], "additionalProperties": false,
            "properties": [
                "name": ["type": "string", "minLength": 2, "maxLength": 10, "pattern": "^[A-Z]"],
                "age": ["type": "integer", "minimum": 0, "maximum": 150],
                "tags": ["type": "array", "items": ["type": "string", "enum": ["a", "b"]]],
            ],
        ]
        let spec = EvaluatorSpec(name: "s", type: "json_schema", schema: schema)
        #expect(try run(spec, .init(input: "", output: "{\"name\": \"Ada\", \"age\": 36, \"tags\": [\"a\"]}")).score == 1)
        let bad = try run(spec, .init(input: "", output: "{\"name\": \"ada\", \"age\": 3.5, \"tags\": [\"c\"], \"x\": 1}"))
        #expect(bad.score == 0)
        #expect(bad.explanation.contains("pattern"))
        #expect(bad.explanation.contains("expected integer"))
        #expect(bad.explanation.contains("not one of"))
        #expect(bad.explanation.contains("unexpected property 'x'"))
        let missing = try run(spec, .init(input: "", output: "{\"name\": \"Ada\", \"age\": 200}"))
        #expect(missing.explanation.contains("missing required property 'tags'"))
        #expect(missing.explanation.contains("above the maximum"))
    }

    @Test func boundsAndThresholds() throws {
        let x = EvaluationInput(input: "", output: "twelve chars", latencyMs: 800, costUSD: 0.002)
        #expect(try run(.init(name: "l", type: "length", min: 5, max: 12), x).score == 1)
        #expect(try run(.init(name: "l", type: "length", max: 5), x).score == 0)
        #expect(try run(.init(name: "t", type: "latency", maxMs: 500), x).score == 0)
        #expect(try run(.init(name: "t", type: "latency", maxMs: 1000), x).score == 1)
        #expect(try run(.init(name: "c", type: "cost", maxUSD: 0.01), x).score == 1)
        #expect(try run(.init(name: "c", type: "cost", maxUSD: 0.001), x).score == 0)
        #expect(try run(.init(name: "c", type: "cost", maxUSD: 0.001), .init(input: "", output: "")).error != nil)
    }

    @Test func refusalPIIAndSecrets() throws {
        #expect(try run(.init(name: "r", type: "refusal"), .init(input: "", output: "I’m sorry, but I can’t help with that.")).score == 0)
        #expect(try run(.init(name: "r", type: "refusal"), .init(input: "", output: "Sure, here is the recipe.")).score == 1)
        #expect(try run(.init(name: "r", type: "refusal"), .init(input: "", output: "AS AN AI model I prefer tea.")).score == 0)  // case folded
        #expect(try run(.init(name: "r", type: "refusal"), .init(input: "", output: "Héllo! I’m unable to share that.")).score == 0)  // after non-ASCII
        #expect(try run(.init(name: "r", type: "refusal"), .init(input: "", output: String(repeating: "é", count: 170) + " i cannot help")).score == 1)  // past 160 characters
        #expect(try run(.init(name: "l", type: "length", min: 3, max: 3), .init(input: "", output: "ééé")).score == 1)  // characters, not bytes
        let pii = try run(.init(name: "p", type: "pii"), .init(input: "", output: "Mail jane.doe@example.com or call +1 415 555 0100; card 4111 1111 1111 1111; ssn 123-45-6789"))
        #expect(pii.score == 0)
        #expect(pii.explanation.contains("email") && pii.explanation.contains("card number") && pii.explanation.contains("phone number") && pii.explanation.contains("ssn"))
        #expect(try run(.init(name: "p", type: "pii"), .init(input: "", output: "The year 2024 had 366 days; order #12345.")).score == 1)
        #expect(try run(.init(name: "p", type: "pii"), .init(input: "", output: "card 4111 1111 1111 1112")).score == 1)  // fails Luhn
        let secrets = try run(.init(name: "s", type: "secrets"), .init(input: "", output: "use sk-proj-abcdefghijklmnopqrstuvwx and AKIAABCDEFGHIJKLMNOP\n-----BEGIN RSA PRIVATE KEY-----"))
        #expect(secrets.score == 0)
        #expect(secrets.explanation.contains("openai-style key") && secrets.explanation.contains("aws access key") && secrets.explanation.contains("private key"))
        #expect(try run(.init(name: "s", type: "secrets"), .init(input: "", output: "ask-me anything, sk-short")).score == 1)
    }

    @Test func toolCalls() throws {
        let tools: [String: JSON] = ["get_weather": ["type": "object", "required": ["city"], "properties": ["city": ["type": "string"], "unit": ["enum": ["c", "f"]]]]]
        let spec = EvaluatorSpec(name: "t", type: "tool_call")
        #expect(try run(spec, .init(input: "", output: "", toolCalls: [.init(name: "get_weather", arguments: "{\"city\": \"Oslo\"}")], tools: tools)).score == 1)
        let r = try run(spec, .init(input: "", output: "", toolCalls: [.init(name: "get_weather", arguments: "{\"unit\": \"k\"}"), .init(name: "launch", arguments: "{}")], tools: tools))
        #expect(r.score == 0)
        #expect(r.explanation.contains("missing required property 'city'") && r.explanation.contains("'launch' is not a declared tool"))
        #expect(try run(spec, .init(input: "", output: "", toolCalls: [.init(name: "get_weather", arguments: "{\"city\": ")], tools: tools)).explanation.contains("not valid JSON"))
    }

    @Test func toolsFromDatasetItem() {
        let item = DatasetItem(input: ["messages": [["role": "user", "content": "weather?"]], "tools": [["type": "function", "function": ["name": "get_weather", "parameters": ["type": "object"]]]]])
        let x = InputConversion.item(item, output: "ok")
        #expect(x.input == "weather?")
        #expect(x.tools["get_weather"] != nil)
        #expect(x.conversation.count == 2)
    }

    @Test func judgeVerdicts() {
        let ok = JudgeEvaluator.parseVerdict("```json\n{\"score\": 0.8, \"label\": \"pass\", \"explanation\": \"good\"}\n```", passThreshold: 0.7)
        #expect((try? ok.get()) == JudgeEvaluator.Verdict(score: 0.8, label: "pass", explanation: "good"))
        #expect((try? JudgeEvaluator.parseVerdict("{\"score\": 0.2}", passThreshold: 0.7).get())?.label == "fail")
        for bad in ["I think it is fine", "{\"score\": \"high\"}", "{\"rating\": 3}", "{\"score\": 7}", "{\"score\": 0.5"] {
            guard case .failure(let e) = JudgeEvaluator.parseVerdict(bad, passThreshold: 0.7) else { Issue.record("accepted \(bad)"); continue }
            #expect(e.kind == "malformed_answer")
        }
    }

    @Test func comparisonStatistics() {
        // Candidate better on 30 of 40 items by 0.2.
        let deltas = (0..<40).map { $0 < 30 ? 0.2 : -0.05 }
        let p = RunComparison.wilcoxon(deltas)
        #expect(p != nil && p! < 0.01)
        let ci = RunComparison.bootstrapCI(deltas)
        #expect(ci != nil && ci![0] > 0)
        let noise = (0..<40).map { $0 % 2 == 0 ? 0.1 : -0.1 }
        #expect((RunComparison.wilcoxon(noise) ?? 0) > 0.5)
    }

    @Test func samplingIsPerTrace() {
        let ids = (0..<2000).map { i in String(format: "%016llx%016llx", UInt64(i) &* 0x9E3779B97F4A7C15, UInt64(i) &* 0xBF58476D1CE4E5B9) }
        let kept = ids.filter { OnlineEvaluator.sampled(traceID: $0, rate: 0.25) }.count
        #expect(kept > 400 && kept < 600)
        #expect(ids.allSatisfy { OnlineEvaluator.sampled(traceID: $0, rate: 1) })
        #expect(ids.allSatisfy { OnlineEvaluator.sampled(traceID: $0, rate: 0.3) == OnlineEvaluator.sampled(traceID: $0, rate: 0.3) })
    }

    @Test func webhookSignature() {
        let sig = WebhookSignature.sign(body: "{\"a\":1}", secret: "s3cret", timestamp: 1_700_000_000)
        #expect(WebhookSignature.verify(header: sig, body: "{\"a\":1}", secret: "s3cret", now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: sig, body: "{\"a\":2}", secret: "s3cret", now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: sig, body: "{\"a\":1}", secret: "other", now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: sig, body: "{\"a\":1}", secret: "s3cret", now: 1_700_001_000))  // replay
    }
}
