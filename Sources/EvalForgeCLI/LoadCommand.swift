import ArgumentParser
import EvalForgeCore
import EvalForgeSDK
import Foundation

/// `evalforge load`: sustained synthetic span load through the SDK, for the end-to-end benchmark.
/// Prints, as its last line, a JSON object with exactly what was sent, so rollups can be checked.
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Generate sustained LLM span load through the SDK at a target rate (benchmarks); prints what was sent as JSON.",
        discussion: """
            Each trace is an agent step with two LLM calls (1.2 KB of attributes and content each); every 40th \
            trace has a failed call. No LLM is contacted: spans are recorded directly, so the rate is the \
            collector's to sustain. Spans the SDK had to drop (buffer full) are counted and reported.
            """)

    @Option(help: "Seconds to run.")
    var duration: Double = 60

    @Option(help: "Target spans per second.")
    var rate: Int = 20_000

    @Option(help: "OTLP/HTTP collector base URL.")
    var collectorURL = "http://127.0.0.1:4318"

    @Option(help: "Service name on the spans.")
    var service = "load"

    @Option(help: "Project key sent to the collector as `Authorization: Bearer …` (a collector in key mode needs one with `ingest` scope). Default: EVALFORGE_API_KEY, else none.")
    var apiKey: String?

    func validate() throws {
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard (1...10_000_000).contains(rate) else { throw ValidationError("--rate must be 1…10000000 spans/s") }
        guard URL(string: collectorURL)?.scheme?.hasPrefix("http") == true else { throw ValidationError("--collector-url '\(collectorURL)' is not an http(s) URL") }
    }

    func run() async throws {
        var config = EvalForge.Configuration.default
        config.serviceName = service
        config.exporter.endpoint = collectorURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/v1/traces"
        config.buffer.maxSpans = 1 << 20
        config.buffer.maxBatchSpans = 4096
        config.buffer.flushInterval = .milliseconds(200)
        config.sampling.keepSlowerThan = nil
        config.content.capture = true
        config.exporter.maxAttempts = 20
        if let key = apiKey ?? ProcessInfo.processInfo.environment["EVALFORGE_API_KEY"], !key.isEmpty {
            config.exporter.headers["Authorization"] = "Bearer \(key)"
        }
        let pipeline = try EvalForge.bootstrap(config)
        // The export loop runs beside the workload (a service would add the pipeline to its ServiceGroup).
        async let exportLoop: Void = pipeline.run()
        let prompt = "[{\"role\":\"user\",\"content\":\"" + String(repeating: "Summarise the customer's last three orders and suggest a follow-up. ", count: 6) + "\"}]"
        let answer = "[{\"role\":\"assistant\",\"content\":\"" + String(repeating: "The customer ordered shoes, a jacket and socks; offer free returns. ", count: 6) + "\"}]"
        var totals = Totals()
        let models = ["gpt-4o-mini", "claude-haiku-4-5"]
        let prices = models.map { PriceTable.builtIn.price(for: $0) }
        let start = ContinuousClock.now
        let end = start + .seconds(duration)
        let tracesPerSecond = max(1, rate / 3)
        var sentTraces = 0
        var lastReport = start
        while ContinuousClock.now < end {
            let elapsed = ContinuousClock.now - start
            let due = Int((Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * Double(tracesPerSecond))
            if sentTraces >= due {
                try await Task.sleep(for: .milliseconds(2))
                continue
            }
            for _ in 0..<min(due - sentTraces, 2_000) {
                var step = pipeline.startStep(.invokeAgent, name: "support-agent")
                for j in 0..<2 {
                    var request = LLMRequest(provider: j == 0 ? LLMProvider.openAI : LLMProvider.anthropic, model: models[j])
                    request.userID = "user-\(sentTraces % 97)"
                    request.sessionID = "session-\(sentTraces / 4)"
                    var call = pipeline.startLLMCall(request, parent: step.traceParent)
                    let usage = TokenUsage(input: 420 + j * 10, output: 96, cacheRead: j == 0 ? 128 : 0)
                    call.usage = usage
                    call.setInput(prompt)
                    call.setOutput(answer)
                    let failed = j == 1 && sentTraces % 40 == 39
                    if failed { call.recordError(type: "529", message: "overloaded") }
                    totals.llmCalls += 1
                    totals.inputTokens += 420 + j * 10
                    totals.outputTokens += 96
                    totals.cacheReadTokens += j == 0 ? 128 : 0
                    // What the pipeline prices this call at (the built-in table), for the exact-rollup check.
                    // The two models' prices are looked up once: a lookup canonicalises the model name,
                    // which cost about a fifth of this process's CPU when done per call.
                    totals.costUSD += prices[j].flatMap { PriceTable.cost(price: $0, usage: usage) } ?? 0
                    if failed { totals.errors += 1 }
                    call.end()
                }
                step.end()
                sentTraces += 1
                totals.spans += 3
            }
            if ContinuousClock.now - lastReport > .seconds(5) {
                lastReport = ContinuousClock.now
                let s = pipeline.statistics
                FileHandle.standardError.write(Data("load: \(totals.spans) spans recorded, \(s.exported) exported, \(s.droppedBufferFull) dropped\n".utf8))
            }
        }
        let recordSeconds = Self.seconds(ContinuousClock.now - start)
        await pipeline.forceFlush(timeout: .seconds(120))
        let s = pipeline.statistics
        totals.traces = sentTraces
        let json = """
            {"traces":\(totals.traces),"spans":\(totals.spans),"llm_calls":\(totals.llmCalls),"errors":\(totals.errors),"input_tokens":\(totals.inputTokens),"output_tokens":\(totals.outputTokens),"cache_read_tokens":\(totals.cacheReadTokens),"cost_usd":\(totals.costUSD),"exported":\(s.exported),"dropped":\(s.droppedBufferFull),"export_failed":\(s.exportFailed),"seconds":\(recordSeconds),"start_unix":\(Int(Date().timeIntervalSince1970 - recordSeconds))}
            """
        await EvalForge.shutdown()
        try? await exportLoop
        print(json)
        if s.droppedBufferFull > 0 || s.exportFailed > 0 {
            FileHandle.standardError.write(Data("load: the SDK dropped \(s.droppedBufferFull) and failed to export \(s.exportFailed) spans: the collector did not keep up with --rate \(rate)\n".utf8))
        }
    }

    struct Totals {
        var traces = 0
        var spans = 0
        var llmCalls = 0
        var errors = 0
        var inputTokens = 0
        var outputTokens = 0
        var cacheReadTokens = 0
        var costUSD = 0.0
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}
