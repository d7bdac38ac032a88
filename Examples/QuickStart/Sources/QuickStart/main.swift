import EvalForgeSDK
import Foundation

// Usage: swift run QuickStart [LLM base URL]   (default http://127.0.0.1:8080, `evalforge mock-llm`)
// Spans go to the collector at EVALFORGE_COLLECTOR_URL (default http://127.0.0.1:4318).
let base = CommandLine.arguments.dropFirst().first ?? "http://127.0.0.1:8080"
var configuration = EvalForge.Configuration.fromEnvironment()
configuration.serviceName = "quickstart"
let pipeline = try EvalForge.bootstrap(configuration)

let openAI = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", apiKey: ProcessInfo.processInfo.environment["OPENAI_API_KEY"] ?? "mock")
let claude = try LLMHTTPClient(api: .anthropicMessages, baseURL: base, apiKey: ProcessInfo.processInfo.environment["ANTHROPIC_API_KEY"] ?? "mock")
let who = LLMHTTPClient.CallContext(userID: "quickstart-user", sessionID: "quickstart-\(Int.random(in: 1000...9999))")

func json(_ o: [String: Any]) -> Data { (try? JSONSerialization.data(withJSONObject: o)) ?? Data() }

try await EvalForge.withStep(.invokeAgent, name: "quickstart") { _ in
    let reply = try await openAI.send(json(["model": "gpt-4o-mini", "messages": [["role": "user", "content": "Name a prime number."]]]), context: who)
    print("openai:", String(decoding: reply.prefix(160), as: UTF8.self), "…")
    var streamed = 0
    for try await _ in claude.stream(json(["model": "claude-haiku-4-5", "max_tokens": 64, "stream": true, "messages": [["role": "user", "content": "Say hello."]]]), context: who) {
        streamed += 1
    }
    print("anthropic: \(streamed) stream events")
}
await pipeline.forceFlush(timeout: .seconds(3))
let s = pipeline.statistics
print("spans recorded \(s.recorded), exported \(s.exported), export failed \(s.exportFailed) → \(configuration.exporter.endpoint)")
await EvalForge.shutdown()
