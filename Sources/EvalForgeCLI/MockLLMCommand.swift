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
            x-mock-inter-token-ms, x-mock-seed, x-mock-cached-tokens. Every flag has an EVALFORGE_MOCK_<FLAG> \
            environment variable (EVALFORGE_MOCK_PORT, EVALFORGE_MOCK_FAULT_429, …); a flag wins over its variable.
            """)

    @Option(help: "Listen host (default 127.0.0.1). Env EVALFORGE_MOCK_HOST.") var host: String?
    @Option(help: "Listen port; 0 picks a free one (default 8080). Env EVALFORGE_MOCK_PORT.") var port: Int?
    @Option(help: "Seed of generated text, ids, latency and fault draws (default 42). Env EVALFORGE_MOCK_SEED.") var seed: UInt64?
    @Option(help: "Time to first token: none, fixed:MS, uniform:MIN-MAX, lognormal:p50=MS,p95=MS (default none). Env EVALFORGE_MOCK_LATENCY.")
    var latency: String?
    @Option(help: "Delay between streamed chunks in ms (default 0). Env EVALFORGE_MOCK_INTER_TOKEN_MS.") var interTokenMs: Double?
    @Option(name: .customLong("fault-429"), help: "Fraction (0-1) of requests answered 429 with Retry-After. Env EVALFORGE_MOCK_FAULT_429.")
    var fault429: Double?
    @Option(name: .customLong("fault-500"), help: "Fraction (0-1) of requests answered 500. Env EVALFORGE_MOCK_FAULT_500.") var fault500: Double?
    @Option(name: .customLong("fault-529"), help: "Fraction (0-1) of requests answered 529 overloaded (503 on the OpenAI route). Env EVALFORGE_MOCK_FAULT_529.")
    var fault529: Double?
    @Option(name: .customLong("fault-cut"), help: "Fraction (0-1) of responses cut mid-way. Env EVALFORGE_MOCK_FAULT_CUT.") var faultCut: Double?
    @Option(help: "Retry-After seconds on 429/529 (default 1). Env EVALFORGE_MOCK_RETRY_AFTER.") var retryAfter: Int?
    @Option(help: "Largest request body in bytes; larger gets 413 (default 4194304). Env EVALFORGE_MOCK_MAX_BODY_BYTES.") var maxBodyBytes: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info). Env EVALFORGE_MOCK_LOG_LEVEL.")
    var logLevel: String?

    /// The configuration from flags, then `EVALFORGE_MOCK_*` variables, then defaults.
    func makeConfiguration(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> MockLLMConfiguration {
        var c = MockLLMConfiguration.default
        /// The flag's value, else the variable's parsed, else nil; a bad value names flag, variable and form.
        func pick<T>(_ flag: T?, _ name: String, _ expected: String, _ parse: (String) -> T?) throws -> T? {
            if let flag { return flag }
            guard let raw = env["EVALFORGE_MOCK_" + name] else { return nil }
            guard let v = parse(raw.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("EVALFORGE_MOCK_\(name)='\(raw)': expected \(expected)")
            }
            return v
        }
        func check(_ ok: Bool, _ flag: String, _ name: String, _ value: Any, _ expected: String) throws {
            if !ok { throw ValidationError("--\(flag) (EVALFORGE_MOCK_\(name)) \(value): expected \(expected)") }
        }
        if let v = try pick(host, "HOST", "a host name or address", { $0.isEmpty ? nil : $0 }) { c.host = v }
        if let v = try pick(port, "PORT", "a port number 0-65535", { Int($0) }) {
            try check((0...65535).contains(v), "port", "PORT", v, "a port number 0-65535 (0 picks a free one)")
            c.port = v
        }
        if let v = try pick(seed, "SEED", "an unsigned integer", { UInt64($0) }) { c.seed = v }
        if let v = try pick(latency, "LATENCY", LatencyModel.expectedFormat, { $0 }) {
            guard let m = LatencyModel(v) else {
                throw ValidationError("--latency (EVALFORGE_MOCK_LATENCY) '\(v)': expected \(LatencyModel.expectedFormat), e.g. uniform:100-500")
            }
            c.latency = m
        }
        if let v = try pick(interTokenMs, "INTER_TOKEN_MS", "milliseconds ≥ 0", { Double($0) }) {
            try check(v.isFinite && v >= 0, "inter-token-ms", "INTER_TOKEN_MS", v, "milliseconds ≥ 0")
            c.interChunkDelay = .milliseconds(v)
        }
        func rate(_ flag: Double?, _ name: String, _ label: String) throws -> Double? {
            guard let v = try pick(flag, name, "a fraction between 0 and 1", { Double($0) }) else { return nil }
            try check((0...1).contains(v), label, name, v, "a fraction between 0 and 1, e.g. 0.05")
            return v
        }
        if let v = try rate(fault429, "FAULT_429", "fault-429") { c.faults.rate429 = v }
        if let v = try rate(fault500, "FAULT_500", "fault-500") { c.faults.rate500 = v }
        if let v = try rate(fault529, "FAULT_529", "fault-529") { c.faults.rate529 = v }
        if let v = try rate(faultCut, "FAULT_CUT", "fault-cut") { c.faults.rateStreamCut = v }
        guard c.faults.total <= 1 else {
            throw ValidationError("--fault-429, --fault-500, --fault-529 and --fault-cut add up to \(c.faults.total): expected at most 1")
        }
        if let v = try pick(retryAfter, "RETRY_AFTER", "whole seconds ≥ 0", { Int($0) }) {
            try check(v >= 0, "retry-after", "RETRY_AFTER", v, "whole seconds ≥ 0")
            c.retryAfterSeconds = v
        }
        if let v = try pick(maxBodyBytes, "MAX_BODY_BYTES", "a byte count ≥ 1024", { Int($0) }) {
            try check(v >= 1024, "max-body-bytes", "MAX_BODY_BYTES", v, "a byte count ≥ 1024")
            c.maxBodyBytes = v
        }
        return c
    }

    func makeLogger(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger {
        var logger = Logger(label: "evalforge.mock-llm")
        if let raw = logLevel ?? env["EVALFORGE_MOCK_LOG_LEVEL"] {
            guard let level = Logger.Level(rawValue: raw.lowercased()) else {
                throw ValidationError("--log-level (EVALFORGE_MOCK_LOG_LEVEL) '\(raw)': expected trace, debug, info, notice, warning, error or critical")
            }
            logger.logLevel = level
        }
        return logger
    }

    func run() async throws {
        var c = try makeConfiguration()
        let logger = try makeLogger()
        c.onServerRunning = { [host = c.host, seed = c.seed, latency = c.latency, faults = c.faults] port in
            logger.info(
                "mock LLM listening",
                metadata: [
                    "address": "\(host):\(port)", "seed": "\(seed)", "latency": "\(latency)",
                    "faults": "429=\(faults.rate429) 500=\(faults.rate500) 529=\(faults.rate529) cut=\(faults.rateStreamCut)",
                ])
        }
        try await buildMockLLMApplication(configuration: c, logger: logger).runService()
    }
}
