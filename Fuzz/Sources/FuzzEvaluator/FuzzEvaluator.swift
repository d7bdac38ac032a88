import Foundation
import FuzzBackendSupport
import FuzzSupport

/// The libFuzzer entry point of the `evaluator` surface (scripts/fuzz evaluator): one input is an
/// evaluator spec (JSON, as sent to `POST /api/evaluators`). Through the backend's router it is
/// validated and stored, read back (`GET /api/evaluators`), and evaluated by `POST
/// /api/evaluate` — as an inline spec and, when stored, by name — on sample items (short and long
/// outputs, JSON, numbers at their extremes), then deleted. A 4xx is an expected answer; a trap,
/// hang (a regex without a bound) or 500 is a finding.
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    EvaluatorFuzz.run(Fuzz.bytes(data, size))
    return 0
}

enum EvaluatorFuzz {
    static let fixture = BackendFixture.make(seeded: false)

    /// One spec of each evaluator type, as the docs show them.
    static let seeds: [(String, String)] = [
        ("exact_match", #"{"name":"exact","type":"exact_match","value":"Paris","ignoreCase":true}"#),
        ("contains", #"{"name":"has-paris","type":"contains","value":"Paris"}"#),
        ("regex", #"{"name":"iso-date","type":"regex","pattern":"^\\d{4}-\\d{2}-\\d{2}$","ignoreCase":false}"#),
        ("json_valid", #"{"name":"is-json","type":"json_valid"}"#),
        ("json_schema", #"{"name":"answer-json","type":"json_schema","schema":{"type":"object","required":["answer"],"properties":{"answer":{"type":"string","minLength":1,"maxLength":200,"pattern":"^[A-Z]"},"score":{"type":"number","minimum":0,"maximum":1,"multipleOf":0.5},"tags":{"type":"array","items":{"type":"string","enum":["a","b"]},"minItems":0,"maxItems":3,"uniqueItems":true}},"additionalProperties":false}}"#),
        ("length", #"{"name":"short","type":"length","min":1,"max":500}"#),
        ("latency", #"{"name":"fast","type":"latency","maxMs":2000}"#),
        ("cost", #"{"name":"cheap","type":"cost","maxUSD":0.01}"#),
        ("refusal", #"{"name":"no-refusal","type":"refusal"}"#),
        ("pii", #"{"name":"no-pii","type":"pii"}"#),
        ("secrets", #"{"name":"no-secrets","type":"secrets"}"#),
        ("tool_call", #"{"name":"calls-search","type":"tool_call","value":"search"}"#),
        ("judge", #"{"name":"relevance","type":"judge","rubric":"relevance","provider":"openai","model":"gpt-4o-mini","passThreshold":0.7}"#),
        ("judge-prompt", #"{"name":"polite","type":"judge","prompt":"Rate politeness of {{output}} given {{input}}","provider":"claude"}"#),
    ]

    /// Items every spec is evaluated on.
    static let items: String = {
        let long = String(repeating: "a", count: 5_000) + "!"
        let items: [[String: Any]] = [
            ["input": "What is the capital of France?", "output": "Paris", "expected": "Paris", "context": "France", "latencyMs": 350, "costUSD": 0.0012],
            ["input": "json", "output": #"{"answer":"Yes","score":0.5,"tags":["a"]}"#, "latencyMs": 0, "costUSD": 0],
            ["output": "I'm sorry, I can't help with that. Contact john@example.com or call 555-123-4567; key sk-abcdefghijklmnopqrstuvwx", "latencyMs": 1e300, "costUSD": 1e19],
            ["output": long, "expected": long, "latencyMs": -1, "costUSD": -5],
            ["output": #"{"tool_calls":[{"function":{"name":"search","arguments":"{}"}}]}"#],
            ["output": ""],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: items)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }()

    static func run(_ input: [UInt8]) {
        let spec = String(decoding: input, as: UTF8.self)
        let f = fixture
        _ = Fuzz.blocking { () -> Int in
            let inline = await f.send(.post, "/api/evaluate", body: Array(#"{"specs":["#.utf8) + input + Array("],\"items\":\(items)}".utf8), contentType: "application/json")
            Fuzz.expectNoServerError(inline.status, "POST /api/evaluate (inline spec)", inline.body)
            let put = await f.send(.post, "/api/evaluators", body: input, contentType: "application/json")
            Fuzz.expectNoServerError(put.status, "POST /api/evaluators", put.body)
            guard put.status / 100 == 2 else { return put.status }
            let list = await f.send(.get, "/api/evaluators")
            Fuzz.expectNoServerError(list.status, "GET /api/evaluators", list.body)
            guard let object = try? JSONSerialization.jsonObject(with: Data(spec.utf8)) as? [String: Any], let name = object["name"] as? String,
                  let nameJSON = try? JSONSerialization.data(withJSONObject: [name], options: [.fragmentsAllowed]) else { return put.status }
            let byName = await f.send(.post, "/api/evaluate", body: Array(#"{"evaluators":"#.utf8) + Array(nameJSON) + Array(",\"items\":\(items)}".utf8), contentType: "application/json")
            Fuzz.expectNoServerError(byName.status, "POST /api/evaluate (stored spec)", byName.body)
            let escaped = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
            let del = await f.send(.delete, "/api/evaluators/\(escaped)")
            Fuzz.expectNoServerError(del.status, "DELETE /api/evaluators/…", del.body)
            return put.status
        }
    }
}
