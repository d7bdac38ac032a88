import ArgumentParser
import Foundation
import Hummingbird
import Logging
import MockLLM

/// `evalforge mock-llm`: the mock OpenAI / Anthropic provider.
struct MockLLMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-llm",
        abstract: "Run a mock LLM provider speaking OpenAI Chat Completions and Anthropic Messages (streaming too), with latency and fault injection.",
        discussion: """
            Official OpenAI and Anthropic clients work against it unchanged: point their base URL at \
            http://HOST:PORT/v1 (OpenAI) or http://HOST:PORT (Anthropic). Output is deterministic for a seed. \
            Per request, headers override: x-mock-fault (429, 500, 529, cut, malformed), x-mock-latency-ms, \
            x-mock-seed, x-mock-cached-tokens. Every flag has an EVALFORGE_MOCK_<FLAG> environment variable.
            """)

    @Option(help: "Listen host.") var host: String?
    @Option(help: "Listen port (default 8080).") var port: Int?
    @Option(help: "Seed of generated text, ids and fault decisions (default 42).") var seed: UInt64?
    @Option(help: "Time to first token: none, fixed:MS, uniform:MIN-MAX, lognormal:p50=MS,p95=MS (default none).") var latency: String?
    @Option(help: "Delay between streamed chunks in ms (default 0).") var interTokenMs: Double?
    @Option(name: .customLong("fault-429"), help: "Fraction of requests answered 429 with Retry-After.") var fault429: Double?
    @Option(name: .customLong("fault-500"), help: "Fraction of requests answered 500.") var fault500: Double?
    @Option(name: .customLong("fault-529"), help: "Fraction of requests answered 529 overloaded (503 on the OpenAI route).") var fault529: Double?
    @Option(name: .customLong("fault-cut"), help: "Fraction of streams cut mid-way.") var faultCut: Double?
    @Option(help: "Retry-After seconds on 429/529 (default 1).") var retryAfter: Int?
    @Option(help: "Largest request body in bytes (default 4 MiB).") var maxBodyBytes: Int?

    func makeConfiguration(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> MockLLMConfiguration {
        var c = MockLLMConfiguration.default
        func pick<T>(_ flag: T?, _ name: String, _ parse: (String) -> T?) throws -> T? {
            if let flag { return flag }
            guard let raw = env["EVALFORGE_MOCK_" + name] else { return nil }
            guard let v = parse(raw) else { throw ValidationError("EVALFORGE_MOCK_\(name)=\(raw) is not valid") }
            return v
        }
        if let v = try pick(host, "HOST", { $0 }) { c.host = v }
        if let v = try pick(port, "PORT", { Int($0) }) {
            guard (0...65535).contains(v) else { throw ValidationError("--port \(v): expected 0…65535") }
            c.port = v
        }
        if let v = try pick(seed, "SEED", { UInt64($0) }) { c.seed = v }
        if let v = try pick(latency, "LATENCY", { $0 }) {
            guard let m = LatencyModel(v) else { throw ValidationError("--latency '\(v)': expected none, fixed:MS, uniform:MIN-MAX or lognormal:p50=MS,p95=MS") }
            c.latency = m
        }
        if let v = try pick(interTokenMs, "INTER_TOKEN_MS", { Double($0) }) {
            guard v >= 0 else { throw ValidationError("--inter-token-ms must be ≥ 0") }
            c.interChunkDelay = .milliseconds(v)
        }
        func rate(_ flag: Double?, _ name: String, _ label: String) throws -> Double? {
            guard let v = try pick(flag, name, { Double($0) }) else { return nil }
            guard (0...1).contains(v) else { throw ValidationError("--\(label) \(v): expected a fraction between 0 and 1") }
            return v
        }
        if let v = try rate(fault429, "FAULT_429", "fault-429") { c.faults.rate429 = v }
        if let v = try rate(fault500, "FAULT_500", "fault-500") { c.faults.rate500 = v }
        if let v = try rate(fault529, "FAULT_529", "fault-529") { c.faults.rate529 = v }
        if let v = try rate(faultCut, "FAULT_CUT", "fault-cut") { c.faults.rateStreamCut = v }
        let f = c.faults
        guard f.rate429 + f.rate500 + f.rate529 + f.rateStreamCut <= 1 else { throw ValidationError("fault rates add up to more than 1") }
        if let v = try pick(retryAfter, "RETRY_AFTER", { Int($0) }) { c.retryAfterSeconds = max(0, v) }
        if let v = try pick(maxBodyBytes, "MAX_BODY_BYTES", { Int($0) }) {
            guard v >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
            c.maxBodyBytes = v
        }
        return c
    }

    func run() async throws {
        let c = try makeConfiguration()
        let logger = Logger(label: "evalforge.mock-llm")
        logger.info("mock LLM listening", metadata: ["address": "\(c.host):\(c.port)", "seed": "\(c.seed)"])
        try await buildMockLLMApplication(configuration: c, logger: logger).runService()
    }
}
