import ArgumentParser
import EvalForgeSDK
import Foundation

/// `evalforge seed`: realistic synthetic traffic through SDK → collector → backend.
struct SeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Send realistic LLM traffic (agents with tools, multi-turn sessions, several providers and models, streaming, errors, slow calls) through the SDK.",
        discussion: """
            Calls go to an OpenAI/Anthropic-compatible endpoint (the mock LLM of `evalforge dev` by default) and \
            their spans to the collector, which forwards them to the backend. Start `evalforge dev` first. \
            The same --seed always produces the same traffic.
            """)

    @Option(help: "Number of traces to send.")
    var traces = 1000

    @Option(help: "Traces in flight at once.")
    var concurrency = 32

    @Option(help: "Base URL of the LLM endpoint (mock LLM).")
    var llmURL = "http://127.0.0.1:8080"

    @Option(help: "OTLP/HTTP collector base URL.")
    var collectorURL = "http://127.0.0.1:4318"

    @Option(help: "Service name on the spans.")
    var service = "acme-assistant"

    @Option(help: "Random seed of the workload.")
    var seed: UInt64 = 42

    @Option(help: "Distinct end users.")
    var users = 40

    func validate() throws {
        guard traces > 0 else { throw ValidationError("--traces must be at least 1, got \(traces)") }
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1…1024, got \(concurrency)") }
        guard URL(string: llmURL)?.scheme?.hasPrefix("http") == true else { throw ValidationError("--llm-url '\(llmURL)' is not an http(s) URL") }
        guard URL(string: collectorURL)?.scheme?.hasPrefix("http") == true else { throw ValidationError("--collector-url '\(collectorURL)' is not an http(s) URL") }
        guard users > 0 else { throw ValidationError("--users must be at least 1") }
    }

    func run() async throws {
        var config = EvalForge.Configuration.fromEnvironment()
        config.serviceName = service
        config.exporter.endpoint = collectorURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/v1/traces"
        config.content.capture = true
        config.buffer.maxSpans = 262_144
        let pipeline = try EvalForge.bootstrap(config)
        // The export loop runs beside the workload (a service would add the pipeline to its ServiceGroup).
        async let exportLoop: Void = pipeline.run()
        let workload = try SeedWorkload(llmURL: llmURL, seed: seed, users: users)
        say("seed: \(traces) traces → LLM \(llmURL), spans → \(config.exporter.endpoint)")
        let (errors, seconds) = await SeedRunner.run(workload, count: traces, concurrency: concurrency, progress: true)
        await pipeline.forceFlush(timeout: .seconds(30))
        let s = pipeline.statistics
        say(String(format: "seed: done in %.1f s — spans recorded %d, exported %d, export failed %d, dropped %d; traces with an injected failure %d", seconds, s.recorded, s.exported, s.exportFailed, s.droppedBufferFull, errors))
        await EvalForge.shutdown()
        try? await exportLoop
        if s.exported < s.recorded {
            throw ValidationError("\(s.recorded - s.exported) spans were not delivered to \(collectorURL): is the collector running (`evalforge dev`)?")
        }
    }
}
