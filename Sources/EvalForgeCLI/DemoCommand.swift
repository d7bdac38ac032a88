import ArgumentParser
import EvalForgeSDK
import Foundation
import Logging

/// Sends a handful of instrumented LLM calls (both providers, streaming and not, tool calls, an agent
/// step, an injected fault) through the SDK and prints what each span recorded.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Send instrumented LLM calls through the SDK to an OpenAI/Anthropic-compatible endpoint (the mock LLM by default).",
        discussion: """
            Spans are exported as OTLP/HTTP protobuf to the collector URL. Start `evalforge mock-llm` first, \
            or point --llm-url at a real provider with --api-key.
            """)

    @Option(help: "Base URL of the LLM endpoint (OpenAI calls go to <url>/v1/chat/completions, Anthropic to <url>/v1/messages).")
    var llmURL = "http://127.0.0.1:8080"

    @Option(help: "OTLP/HTTP collector base URL.")
    var collectorURL = "http://127.0.0.1:4318"

    @Option(help: "API key sent to the LLM endpoint.")
    var apiKey = "demo-key"

    @Option(help: "Rounds of calls to send.")
    var rounds = 1

    @Flag(help: "Record prompts and completions on spans (redacted).")
    var captureContent = false

    func validate() throws {
        guard URL(string: llmURL)?.scheme?.hasPrefix("http") == true else { throw ValidationError("--llm-url '\(llmURL)' is not an http(s) URL") }
        guard URL(string: collectorURL)?.scheme?.hasPrefix("http") == true else { throw ValidationError("--collector-url '\(collectorURL)' is not an http(s) URL") }
        guard rounds > 0 else { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
    }

    func run() async throws {
        var config = EvalForge.Configuration.fromEnvironment()
        if config.serviceName.hasPrefix("unknown_service") { config.serviceName = "evalforge-demo" }
        config.exporter.endpoint = collectorURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/v1/traces"
        config.content.capture = captureContent || config.content.capture
        config.exporter.maxAttempts = 2
        let pipeline = try EvalForge.bootstrap(config)
        // The export loop runs beside the workload (a service would add the pipeline to its ServiceGroup).
        async let exportLoop: Void = pipeline.run()

        let openAI = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: llmURL + "/v1", apiKey: apiKey)
        let anthropic = try LLMHTTPClient(api: .anthropicMessages, baseURL: llmURL, apiKey: apiKey)
        let who = LLMHTTPClient.CallContext(userID: "demo-user", sessionID: "demo-session-\(Int.random(in: 1000...9999))", tags: ["demo"])

        for round in 1...rounds {
            print("round \(round)")
            await report("openai chat") {
                try await openAI.send(Self.body(["model": "gpt-4o-mini", "messages": [["role": "user", "content": "Summarise the plot of Hamlet in one line."]], "max_tokens": 64]), context: who)
            }
            await report("openai stream") {
                var events = 0
                for try await _ in openAI.stream(Self.body(["model": "gpt-4o", "stream": true, "stream_options": ["include_usage": true], "messages": [["role": "user", "content": "Write a haiku about tracing."]]]), context: who) { events += 1 }
                return Data("{\"events\": \(events)}".utf8)
            }
            await report("anthropic message") {
                try await anthropic.send(Self.body(["model": "claude-sonnet-4-5", "max_tokens": 128, "messages": [["role": "user", "content": "Name three prime numbers."]]]), context: who)
            }
            await report("anthropic stream") {
                var events = 0
                for try await _ in anthropic.stream(Self.body(["model": "claude-haiku-4-5", "max_tokens": 128, "stream": true, "messages": [["role": "user", "content": "Say hello."]]]), context: who) { events += 1 }
                return Data("{\"events\": \(events)}".utf8)
            }
            await report("agent with a tool") {
                try await EvalForge.withStep(.invokeAgent, name: "weather-agent") { _ in
                    let tools: [[String: Any]] = [["type": "function", "function": ["name": "get_weather", "parameters": ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]]]]]
                    let first = try await openAI.send(Self.body(["model": "gpt-4o-mini", "messages": [["role": "user", "content": "Weather in Paris?"]], "tools": tools]), context: who)
                    try await EvalForge.withStep(.executeTool, name: "get_weather") { _ in try await Task.sleep(for: .milliseconds(5)) }
                    return first
                }
            }
            await report("injected 429") {
                let faulty = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: llmURL + "/v1", apiKey: apiKey, headers: ["x-mock-fault": "429"])
                return try await faulty.send(Self.body(["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]]), context: who)
            }
        }
        await pipeline.forceFlush(timeout: .seconds(5))
        let s = pipeline.statistics
        print("spans recorded \(s.recorded), exported \(s.exported), export failed \(s.exportFailed), dropped \(s.droppedBufferFull) → \(config.exporter.endpoint)")
        if s.exported == 0 {
            print("note: nothing reached a collector at \(collectorURL); start `evalforge collector` (or `evalforge dev`) to see the spans.")
        }
        await EvalForge.shutdown()
        try? await exportLoop
    }

    static func body(_ json: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: json)) ?? Data()
    }

    func report(_ label: String, _ call: () async throws -> Data) async {
        let start = ContinuousClock.now
        do {
            let data = try await call()
            let ms = (ContinuousClock.now - start).components.attoseconds / 1_000_000_000_000_000 + (ContinuousClock.now - start).components.seconds * 1000
            var summary = "\(data.count) bytes"
            if let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                let model = o["model"] as? String ?? ""
                let usage = o["usage"] as? [String: Any] ?? [:]
                let tin = usage["prompt_tokens"] ?? usage["input_tokens"] ?? "-"
                let tout = usage["completion_tokens"] ?? usage["output_tokens"] ?? "-"
                summary = o["events"].map { "\($0) events" } ?? "model \(model), tokens in \(tin) out \(tout)"
            }
            print("  ✓ \(label.padding(toLength: 20, withPad: " ", startingAt: 0)) \(ms) ms  \(summary)")
        } catch {
            print("  ✗ \(label.padding(toLength: 20, withPad: " ", startingAt: 0)) \(error)")
        }
    }
}
