import EvalForgeCore
import EvalForgeModel
import EvalForgeStore
import Foundation
import Testing
@testable import Evaluation

/// Hostile numbers in evaluator specs, JSON-schema keywords, provider settings, experiment targets
/// and rules, sent through the real HTTP routes of a real backend: each is refused with a 4xx that
/// names the field (nothing poisonous is stored), and the backend keeps answering. Before the
/// fix, `maxMs: 1e300` and `minLength: 1e300` trapped (Double → Int) and ended the process.
@Suite(.serialized) struct HostileInputTests {
    /// The issue's example: `POST /api/evaluate` with a latency spec whose maxMs is 1e300.
    @Test(arguments: TestMetadata.available) func latencyMaxMs1e300IsRefused(_ metadata: TestMetadata) async throws {
        try await LiveBackend.run(metadata: metadata) { port, _ in
            let r = try await call(port, "POST", "/api/evaluate", #"{"specs": [{"name": "fast", "type": "latency", "maxMs": 1e300}], "items": [{"output": "x", "latencyMs": 12}]}"#)
            #expect(r.status == 400)
            #expect(r.error.contains("maxMs"), "\(r.body)")
            // A recorded latency of 1e300 in the item is refused too, naming the item.
            let item = try await call(port, "POST", "/api/evaluate", #"{"specs": [{"name": "fast", "type": "latency", "maxMs": 500}], "items": [{"output": "x"}, {"output": "y", "latencyMs": 1e300}]}"#)
            #expect(item.status == 400 && item.error.contains("items[1].latencyMs"), "\(item.body)")
            // Sane values still evaluate.
            let ok = try await call(port, "POST", "/api/evaluate", #"{"specs": [{"name": "fast", "type": "latency", "maxMs": 500}], "items": [{"output": "x", "latencyMs": 1e9}]}"#)
            #expect(ok.status == 200)
            #expect(ok.json?["results"]?.arrayValue?.first?.arrayValue?.first?["label"] == "fail")
            #expect(try await call(port, "GET", "/healthz").status == 200)
        }
    }

    /// The issue's other example: an evaluator with `minLength: 1e300` in its schema.
    @Test(arguments: TestMetadata.available) func schemaMinLength1e300IsRefusedWhenStored(_ metadata: TestMetadata) async throws {
        try await LiveBackend.run(metadata: metadata) { port, _ in
            let spec = #"{"name": "shape", "type": "json_schema", "schema": {"type": "object", "properties": {"name": {"type": "string", "minLength": 1e300}}}}"#
            let r = try await call(port, "POST", "/api/evaluators", spec)
            #expect(r.status == 400)
            #expect(r.error.contains("evaluator.schema.properties.name.minLength"), "\(r.body)")
            // Nothing was stored.
            let list = try await call(port, "GET", "/api/evaluators")
            #expect(list.status == 200 && list.json?.arrayValue?.isEmpty == true)
            #expect(try await call(port, "GET", "/healthz").status == 200)
        }
    }

    /// Every numeric field of an evaluator spec and every numeric JSON-schema keyword, with values
    /// that trap a careless conversion or make no sense: a 400 naming the field, never a 5xx.
    static func schema(_ keyword: String, _ v: String) -> String {
        #"{"name": "s", "type": "json_schema", "schema": {"type": "object", "properties": {"x": {"\#(keyword)": \#(v)}}}}"#
    }

    @Test(arguments: TestMetadata.available) func everyNumericFieldOfASpecIsChecked(_ metadata: TestMetadata) async throws {
        let schema = Self.schema
        let hostile = ["1e300", "-1e300", "-1", "9223372036854775807", "-9223372036854775808", "1.5", "\"7\"", "1e19"]
        try await LiveBackend.run(metadata: metadata) { port, _ in
            var cases: [(body: String, field: String)] = []
            for v in hostile {
                cases.append((#"{"name": "l", "type": "length", "min": \#(v)}"#, "min"))
                cases.append((#"{"name": "l", "type": "length", "max": \#(v)}"#, "max"))
                for k in ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"] { cases.append((schema(k, v), k)) }
            }
            for v in ["1e300", "-1", "-1e300", "\"5\""] {
                cases.append((#"{"name": "t", "type": "latency", "maxMs": \#(v)}"#, "maxMs"))
                cases.append((#"{"name": "c", "type": "cost", "maxUSD": \#(v)}"#, "maxUSD"))
            }
            for v in ["1.5", "-0.1", "1e300", "\"0.5\""] {
                cases.append((#"{"name": "j", "type": "judge", "rubric": "relevance", "provider": "p", "passThreshold": \#(v)}"#, "passThreshold"))
            }
            for v in ["0", "-1", "\"2\""] { cases.append((schema("multipleOf", v), "multipleOf")) }
            for v in ["\"1\"", "true", "null"] {
                cases.append((schema("minimum", v), "minimum"))
                cases.append((schema("maximum", v), "maximum"))
            }
            cases.append((schema("exclusiveMinimum", "\"1\""), "exclusiveMinimum"))
            cases.append((schema("type", "\"text\""), "type"))
            cases.append((schema("required", "[1]"), "required"))
            cases.append((schema("pattern", "\"(\""), "pattern"))
            cases.append((#"{"name": "r", "type": "regex", "pattern": "a{2,1}"}"#, "pattern"))
            cases.append((#"{"name": "r", "type": "regex", "pattern": "\#(String(repeating: "a", count: 5000))"}"#, "pattern"))
            let deep = String(repeating: #"{"items": "#, count: 40) + "{}" + String(repeating: "}", count: 40)
            cases.append((#"{"name": "s", "type": "json_schema", "schema": \#(deep)}"#, "nested"))
            for (body, field) in cases {
                let r = try await call(port, "POST", "/api/evaluators", body)
                #expect(r.status == 400, "\(body) → \(r.status) \(r.body)")
                #expect(r.error.contains(field), "\(body) → \(r.body)")
            }
            // The same specs inline in /api/evaluate: refused, naming the spec.
            let inline = try await call(port, "POST", "/api/evaluate", #"{"specs": [{"name": "ok", "type": "json_valid"}, \#(schema("minLength", "1e300"))], "items": [{"output": "{}"}]}"#)
            #expect(inline.status == 400 && inline.error.contains("specs[1]") && inline.error.contains("minLength"), "\(inline.body)")
            let list = try await call(port, "GET", "/api/evaluators")
            #expect(list.json?.arrayValue?.isEmpty == true, "nothing stored: \(list.body)")
            #expect(try await call(port, "GET", "/healthz").status == 200)
        }
    }

    /// Provider settings, experiment targets and online rules: the same, 400 naming the field.
    @Test(arguments: TestMetadata.available) func providerTargetAndRuleSettingsAreChecked(_ metadata: TestMetadata) async throws {
        try await LiveBackend.run(metadata: metadata) { port, _ in
            func provider(_ extra: String) -> String {
                #"{"name": "p", "kind": "openai", "baseURL": "http://127.0.0.1:9/v1", "model": "m", \#(extra)}"#
            }
            let providers: [(String, String)] = [
                (provider(#""maxConcurrency": 1e300"#), "maxConcurrency"),
                (provider(#""maxConcurrency": 0"#), "maxConcurrency"),
                (provider(#""requestsPerSecond": 1e-300"#), "requestsPerSecond"),
                (provider(#""requestsPerSecond": -1"#), "requestsPerSecond"),
                (provider(#""requestsPerSecond": 1e300"#), "requestsPerSecond"),
                (provider(#""timeoutMs": 9223372036854775807"#), "timeoutMs"),
                (provider(#""timeoutMs": -5"#), "timeoutMs"),
                (provider(#""maxRetries": 1e9"#), "maxRetries"),
                (provider(#""backoffMs": -1"#), "backoffMs"),
                (provider(#""backoffMs": 9223372036854775807"#), "backoffMs"),
                (provider(#""headers": {"x-a": "b\r\nx-injected: 1"}"#), "headers"),
                (provider(#""headers": {"bad name": "v"}"#), "headers"),
            ]
            for (body, field) in providers {
                let r = try await call(port, "POST", "/api/providers", body)
                #expect(r.status == 400, "\(body) → \(r.status) \(r.body)")
                #expect(r.error.contains(field), "\(body) → \(r.body)")
            }
            #expect(try await call(port, "GET", "/api/providers").json?.arrayValue?.isEmpty == true)

            #expect(try await call(port, "POST", "/api/evaluators", #"{"name": "len", "type": "length", "max": 100}"#).status == 201)
            let ds = try await call(port, "POST", "/api/datasets", #"{"name": "d", "items": [{"input": "q", "output": "a"}]}"#)
            let dsID = try #require(ds.json?["id"]?.stringValue)
            func experiment(_ target: String, _ extra: String = "") -> String {
                #"{"datasetId": "\#(dsID)", "evaluators": ["len"], "target": \#(target)\#(extra)}"#
            }
            let http = #""type": "http", "url": "http://127.0.0.1:9/answer""#
            let experiments: [(String, String)] = [
                (experiment(#"{\#(http), "timeoutMs": 9223372036854775807}"#), "target.timeoutMs"),
                (experiment(#"{\#(http), "timeoutMs": 0}"#), "target.timeoutMs"),
                (experiment(#"{"type": "recorded", "maxTokens": -1}"#), "target.maxTokens"),
                (experiment(#"{"type": "recorded", "temperature": 1e300}"#), "target.temperature"),
                (experiment(#"{"type": "recorded", "temperature": -1}"#), "target.temperature"),
                (experiment(#"{\#(http), "headers": {"a": "b\nc"}}"#), "target.headers"),
                (experiment(#"{"type": "recorded"}"#, #", "concurrency": 1e300"#), "concurrency"),
                (experiment(#"{"type": "recorded"}"#, #", "concurrency": 0"#), "concurrency"),
            ]
            for (body, field) in experiments {
                let r = try await call(port, "POST", "/api/experiments", body)
                #expect(r.status == 400, "\(body) → \(r.status) \(r.body)")
                #expect(r.error.contains(field), "\(body) → \(r.body)")
            }
            #expect(try await call(port, "GET", "/api/experiments").json?.arrayValue?.isEmpty == true)

            let rules: [(String, String)] = [
                (#"{"evaluators": ["len"], "samplingRate": 1e300}"#, "samplingRate"),
                (#"{"evaluators": ["len"], "samplingRate": -0.5}"#, "samplingRate"),
                (#"{"evaluators": ["len"], "filter": {"minCostUSD": -1}}"#, "minCostUSD"),
                (#"{"evaluators": ["len"], "filter": {"minDurationMs": -1e300}}"#, "minDurationMs"),
            ]
            for (body, field) in rules {
                let r = try await call(port, "POST", "/api/online-rules", body)
                #expect(r.status == 400, "\(body) → \(r.status) \(r.body)")
                #expect(r.error.contains(field), "\(body) → \(r.body)")
            }
            #expect(try await call(port, "GET", "/healthz").status == 200)
        }
    }

    /// A spec stored before these checks existed (written straight into the metadata file): the run
    /// using it fails with the reason, once — no trap, no crash loop — and the backend keeps serving.
    @Test func poisonedStoredSpecFailsTheRunNotTheProcess() async throws {
        let dir = tempDir()
        var r = try await Runner(dir: dir)
        _ = try await r.service.putEvaluator(projectID: "p1", .init(name: "shape", type: "json_schema", schema: ["type": "string"]))
        let ds = try await r.service.createDataset(projectID: "p1", name: "d", items: items(3))
        let exp = try await r.service.createExperiment(projectID: "p1", name: "e", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["shape"], concurrency: 2)
        // The stored definition is replaced by a poisonous one, as an older version could store it.
        let poison = #"{"name":"shape","type":"json_schema","schema":{"type":"string","minLength":1e300,"maxLength":-1e300}}"#
        try await r.metadata.write { c in try c.run("UPDATE eval_evaluators SET spec = ? WHERE name = 'shape'", [.text(poison)]) }
        let run = try await r.waitForRun("p1", try await r.service.startRun(projectID: "p1", experimentID: exp.id).id)
        #expect(run.status == .failed)
        #expect(run.error.contains("minLength"), "\(run.error)")
        await r.stop()
        // After a restart the failed run stays failed (it is not resumed).
        r = try await Runner(dir: dir)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await r.service.run(projectID: "p1", id: run.id).status == .failed)
        await r.stop()
    }

    /// The validator itself never traps, whatever schema the evaluated data carries (tool
    /// declarations are not checked when stored): absurd keywords give messages, not crashes.
    @Test func validatorIsSafeOnAnySchema() throws {
        let schema: JSON = [
            "type": "object",
            "properties": [
                "s": ["type": "string", "minLength": 1e300, "maxLength": -1e300],
                "a": ["type": "array", "minItems": .number(.infinity), "maxItems": .number(-.infinity)],
                "n": ["type": "number", "minimum": .number(.nan), "maximum": -1e300, "multipleOf": 1e-300],
                "m": ["multipleOf": 0.1],
            ],
        ]
        let v = try JSONSchemaValidator(schema: schema)
        let errors = try v.validate(["s": "abc", "a": [1], "n": 5, "m": 0.3]).get()
        #expect(errors.contains { $0.contains("shorter than 1e+300") })
        #expect(errors.contains { $0.contains("longer than -1e+300") })
        #expect(errors.contains { $0.contains("fewer than inf items") })
        #expect(errors.contains { $0.contains("above the maximum") })
        #expect(!errors.contains { $0.contains("$.m") }, "0.3 is a multiple of 0.1 within rounding")
        let wrong = try v.validate(["m": 0.35]).get()
        #expect(wrong.contains { $0.contains("not a multiple of 0.1") })
        // Violations are bounded: 100,000 wrong items give at most 50 messages.
        let many = try JSONSchemaValidator(schema: ["items": ["type": "string"]]).validate(.array(Array(repeating: .number(1), count: 100_000))).get()
        #expect(many.count == JSONSchemaValidator.maxViolations)
        // Saturating sums and checked conversions.
        #expect(CheckedNumbers.int64(1e300) == nil && CheckedNumbers.int64(.nan) == nil && CheckedNumbers.int64(-1) == -1)
        #expect(Checked.clamped(1e300, to: 0...10) == 10 && Checked.clamped(.nan, to: 0...10) == 0 && Checked.clamped(-.infinity, to: -5...10) == -5)
        #expect(Int64.max.addingSaturated(1) == .max && Int64.min.addingSaturated(-1) == .min)
        #expect((JudgeUsage.init().with(tokens: .max) + JudgeUsage().with(tokens: 5)).inputTokens == .max)
        // The webhook signature check with a hostile timestamp.
        #expect(!WebhookSignature.verify(header: "t=-9223372036854775808,v1=00", body: "{}", secret: "k"))
        #expect(!WebhookSignature.verify(header: "t=9223372036854775807,v1=00", body: "{}", secret: "k", tolerance: .min))
    }
}

extension JudgeUsage {
    func with(tokens: Int64) -> JudgeUsage {
        var u = self
        u.inputTokens = tokens
        return u
    }
}
