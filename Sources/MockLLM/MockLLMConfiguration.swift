/// How the mock provider behaves. Start from `.default`; `evalforge mock-llm` maps its flags and
/// `EVALFORGE_MOCK_*` variables onto these fields.
public struct MockLLMConfiguration: Sendable {
    /// Listen address. Flags `--host` / `--port`, env `EVALFORGE_MOCK_HOST` / `EVALFORGE_MOCK_PORT`. Default 127.0.0.1:8080.
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// Seed of every generated text, id and fault decision. Flag `--seed`, env `EVALFORGE_MOCK_SEED`. Default 42.
    public var seed: UInt64 = 42
    /// Time before the first byte (the whole latency of a non-streaming answer). Flag `--latency`. Default none.
    public var latency: LatencyModel = .none
    /// Delay between streamed chunks. Flag `--inter-token-ms`. Default 0.
    public var interChunkDelay: Duration = .zero
    /// Fault rates (0…1), decided per request from the seed. Flags `--fault-429`, `--fault-500`, `--fault-529`, `--fault-cut`. Default 0.
    public var faults = FaultRates()
    /// `Retry-After` seconds on 429 and 529. Flag `--retry-after`. Default 1.
    public var retryAfterSeconds: Int = 1
    /// Largest request body; larger gets 413. Flag `--max-body-bytes`. Default 4 MiB.
    public var maxBodyBytes: Int = 4 << 20

    public init() {}
    public static let `default` = MockLLMConfiguration()

    public struct FaultRates: Sendable, Equatable {
        public var rate429: Double = 0
        public var rate500: Double = 0
        public var rate529: Double = 0
        public var rateStreamCut: Double = 0
        public init() {}
    }
}

/// A latency distribution in milliseconds.
public enum LatencyModel: Sendable, Equatable {
    case none
    case fixed(ms: Double)
    case uniform(minMs: Double, maxMs: Double)
    /// Log-normal with the given median and 95th percentile.
    case logNormal(p50Ms: Double, p95Ms: Double)

    /// Parses "none", "fixed:200", "uniform:100-500", "lognormal:p50=200,p95=800".
    public init?(_ text: String) {
        let t = text.lowercased()
        if t == "none" || t == "0" { self = .none; return }
        if t.hasPrefix("fixed:"), let v = Double(t.dropFirst(6)), v >= 0 { self = .fixed(ms: v); return }
        if t.hasPrefix("uniform:") {
            let parts = t.dropFirst(8).split(separator: "-")
            if parts.count == 2, let a = Double(parts[0]), let b = Double(parts[1]), a >= 0, b >= a { self = .uniform(minMs: a, maxMs: b); return }
        }
        if t.hasPrefix("lognormal:") {
            var p50: Double?
            var p95: Double?
            for kv in t.dropFirst(10).split(separator: ",") {
                let pair = kv.split(separator: "=")
                guard pair.count == 2, let v = Double(pair[1]) else { return nil }
                if pair[0] == "p50" { p50 = v } else if pair[0] == "p95" { p95 = v } else { return nil }
            }
            if let p50, let p95, p50 > 0, p95 >= p50 { self = .logNormal(p50Ms: p50, p95Ms: p95); return }
        }
        return nil
    }

    /// A sample for `u1`, `u2` uniform in (0, 1).
    func sample(_ u1: Double, _ u2: Double) -> Double {
        switch self {
        case .none: return 0
        case .fixed(let ms): return ms
        case .uniform(let a, let b): return a + (b - a) * u1
        case .logNormal(let p50, let p95):
            let mu = _log(p50)
            let sigma = (_log(p95) - mu) / 1.6448536269514722
            let z = (-2 * _log(max(u1, 1e-12))).squareRoot() * _cos(2 * Double.pi * u2)
            return _exp(mu + sigma * z)
        }
    }
}

import Foundation
private func _log(_ x: Double) -> Double { Foundation.log(x) }
private func _exp(_ x: Double) -> Double { Foundation.exp(x) }
private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
