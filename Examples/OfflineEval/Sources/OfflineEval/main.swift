import EvalForgeSDK
import Foundation

// Runs a prompt over every item of a JSONL dataset through EvalForgeSDK (each item one trace, the
// whole run one session), scores the answers with simple checks and prints a summary table. With
// --backend and --api-key it also posts the scores to the EvalForge backend (POST /api/scores).
// `swift run OfflineEval --help` for the options.

let usage = """
    usage: OfflineEval [--dataset FILE] [--llm URL] [--model NAME] [--backend URL --api-key KEY] [--fail-under RATE]

      --dataset FILE     JSONL dataset (default: dataset.jsonl next to this package)
      --llm URL          OpenAI-compatible base URL (env LLM_BASE_URL; default http://127.0.0.1:8080/v1, `evalforge mock-llm`)
      --model NAME       model (env LLM_MODEL; default gpt-4o-mini)
      --backend URL      EvalForge backend to post scores to (env EVALFORGE_BACKEND_URL; optional), e.g. http://127.0.0.1:3000
      --api-key KEY      project API key for --backend (env EVALFORGE_API_KEY; `evalforge dev` prints one)
      --fail-under RATE  exit 1 when the share of passed checks is below RATE (0…1)
    Spans go to the collector at EVALFORGE_COLLECTOR_URL (default http://127.0.0.1:4318).
    """

struct Options {
    var dataset = Options.defaultDataset
    var llm = ProcessInfo.processInfo.environment["LLM_BASE_URL"] ?? "http://127.0.0.1:8080/v1"
    var model = ProcessInfo.processInfo.environment["LLM_MODEL"] ?? "gpt-4o-mini"
    var backend = ProcessInfo.processInfo.environment["EVALFORGE_BACKEND_URL"]
    var apiKey = ProcessInfo.processInfo.environment["EVALFORGE_API_KEY"]
    var failUnder: Double?

    /// dataset.jsonl in the current directory, else the one committed next to this package.
    static var defaultDataset: String {
        if FileManager.default.fileExists(atPath: "dataset.jsonl") { return "dataset.jsonl" }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("dataset.jsonl").path
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var o = Options()
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let v = rest.popFirst(), !v.hasPrefix("--") else { throw EvalError("\(flag): expected a value\n\n\(usage)") }
            return v
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--dataset": o.dataset = try value(flag)
            case "--llm": o.llm = try value(flag)
            case "--model": o.model = try value(flag)
            case "--backend": o.backend = try value(flag)
            case "--api-key": o.apiKey = try value(flag)
            case "--fail-under":
                let v = try value(flag)
                guard let r = Double(v), (0...1).contains(r) else { throw EvalError("--fail-under \(v): expected a number from 0 to 1") }
                o.failUnder = r
            case "-h", "--help": print(usage); exit(0)
            default: throw EvalError("unknown argument \(flag)\n\n\(usage)")
            }
        }
        if o.backend?.isEmpty == true { o.backend = nil }
        if o.backend != nil && (o.apiKey ?? "").isEmpty {
            throw EvalError("--backend needs --api-key (or EVALFORGE_API_KEY): the scores API is per project")
        }
        return o
    }
}

/// The outcome of one item.
struct ItemResult {
    var item: DatasetItem
    var answer: String
    var error: String?
    var traceID: String
    var latencyMs: Int
    var tokens: (input: Int, output: Int)
    var checks: [(Check, Bool)]
}

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("OfflineEval: \(error)\n".utf8))
    exit(2)
}

var configuration = EvalForge.Configuration.fromEnvironment()
configuration.serviceName = "offline-eval"
let pipeline = try EvalForge.bootstrap(configuration)

let items: [DatasetItem]
do {
    items = try DatasetItem.load(path: options.dataset)
} catch {
    FileHandle.standardError.write(Data("OfflineEval: \(error)\n".utf8))
    exit(2)
}
let datasetName = URL(fileURLWithPath: options.dataset).deletingPathExtension().lastPathComponent
let runID = "run-\(Int(Date().timeIntervalSince1970))-\(UInt16.random(in: 1000...9999))"
let llm: LLMHTTPClient
do {
    llm = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: options.llm, apiKey: ProcessInfo.processInfo.environment["OPENAI_API_KEY"] ?? "mock")
} catch {
    FileHandle.standardError.write(Data("OfflineEval: --llm \(options.llm): \(error)\n".utf8))
    exit(2)
}
print("evaluating \(items.count) items of \(options.dataset) with \(options.model) at \(options.llm) (run \(runID))")

var results: [ItemResult] = []
for item in items {
    let started = ContinuousClock.now
    // One trace per item: an evaluation step with the LLM call inside it.
    let result = await EvalForge.withStep(.step, name: "evaluate \(item.id)") { step -> ItemResult in
        step.request.sessionID = runID
        step.setAttribute("evalforge.metadata.dataset", .string(datasetName))
        step.setAttribute("evalforge.metadata.dataset_item", .string(item.id))
        var body: [String: Any] = [
            "model": options.model, "temperature": 0, "max_tokens": 200,
            "messages": [["role": "system", "content": "Answer the question briefly."], ["role": "user", "content": item.input]],
        ]
        if item.format == "json" { body["response_format"] = ["type": "json_object"] }
        let context = LLMHTTPClient.CallContext(sessionID: runID, tags: ["offline-eval"], metadata: ["dataset": datasetName, "item": item.id, "run": runID])
        var answer = "", failure: String?, tokens = (input: 0, output: 0)
        do {
            let data = try await llm.send(try JSONSerialization.data(withJSONObject: body), context: context)
            let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            let message = ((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any]) ?? [:]
            answer = message["content"] as? String ?? ""
            let u = o["usage"] as? [String: Any] ?? [:]
            tokens = ((u["prompt_tokens"] as? Int) ?? 0, (u["completion_tokens"] as? Int) ?? 0)
        } catch {
            failure = "\(error)"    // the SDK marked the LLM span failed; the checks fail on an empty answer
            step.recordError(type: "llm_error", message: failure)
        }
        let checks = item.checks.map { ($0, failure == nil && $0.passes(answer: answer, expected: item.expected)) }
        for (check, passed) in checks { step.setAttribute("eval.\(check.scoreName)", .bool(passed)) }
        return ItemResult(item: item, answer: answer, error: failure, traceID: step.traceParent.traceID.hexString,
                          latencyMs: Int((ContinuousClock.now - started) / .milliseconds(1)), tokens: tokens, checks: checks)
    }
    results.append(result)
}

// The summary table.
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n)) : s + String(repeating: " ", count: n - s.count) }
func oneLine(_ s: String, _ n: Int) -> String {
    let t = s.replacingOccurrences(of: "\n", with: " ")
    return t.count > n ? String(t.prefix(n - 1)) + "…" : t
}
print("")
print(pad("item", 14), pad("check", 12), pad("result", 6), pad("ms", 6), pad("tokens", 9), pad("trace", 32), "answer")
for r in results {
    for (check, passed) in r.checks {
        print(pad(r.item.id, 14), pad(check.scoreName, 12), pad(passed ? "pass" : "FAIL", 6), pad("\(r.latencyMs)", 6),
              pad("\(r.tokens.input)/\(r.tokens.output)", 9), pad(r.traceID, 32), oneLine(r.error ?? r.answer, 48))
    }
}
print("")
print(pad("check", 12), pad("passed", 7), pad("total", 6), "rate")
var passedAll = 0, totalAll = 0
for check in Check.allCases {
    let outcomes = results.flatMap { $0.checks.filter { $0.0 == check }.map(\.1) }
    guard !outcomes.isEmpty else { continue }
    let passed = outcomes.filter { $0 }.count
    passedAll += passed
    totalAll += outcomes.count
    print(pad(check.scoreName, 12), pad("\(passed)", 7), pad("\(outcomes.count)", 6), "\(passed * 100 / outcomes.count)%")
}
let rate = totalAll == 0 ? 0 : Double(passedAll) / Double(totalAll)
print(pad("all", 12), pad("\(passedAll)", 7), pad("\(totalAll)", 6), "\(Int((rate * 100).rounded()))%")
print("errors: \(results.filter { $0.error != nil }.count) of \(results.count) items; session \(runID)")

await pipeline.forceFlush(timeout: .seconds(3))
let s = pipeline.statistics
print("spans recorded \(s.recorded), exported \(s.exported), export failed \(s.exportFailed) → \(configuration.exporter.endpoint)")
await EvalForge.shutdown()

// Optional: post the scores to the backend, one per (item, check), attached to the item's trace.
var exitCode: Int32 = 0
if let backend = options.backend, let key = options.apiKey {
    let scores = results.flatMap { r in
        r.checks.map { check, passed in
            ScoresClient.Score(id: "\(runID)-\(r.item.id)-\(check.rawValue)", traceID: r.traceID, spanID: "", sessionID: runID,
                               name: check.scoreName, passed: passed, comment: "offline-eval \(datasetName)/\(r.item.id)")
        }
    }
    do {
        print(try await ScoresClient(backendURL: backend, apiKey: key).post(scores))
    } catch {
        FileHandle.standardError.write(Data("OfflineEval: posting scores failed: \(error)\n".utf8))
        exitCode = 1
    }
} else {
    print("scores not posted (give --backend URL and --api-key KEY to post them to EvalForge)")
}
if let threshold = options.failUnder, rate < threshold {
    FileHandle.standardError.write(Data("OfflineEval: pass rate \(Int(rate * 100))% is below --fail-under \(threshold)\n".utf8))
    exitCode = 1
}
exit(exitCode)
