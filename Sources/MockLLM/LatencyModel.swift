import Foundation

/// A distribution of time to first token, in milliseconds.
public enum LatencyModel: Sendable, Equatable, CustomStringConvertible {
    /// No delay.
    case none
    /// Always `ms`.
    case fixed(ms: Double)
    /// Uniform between `minMs` and `maxMs`.
    case uniform(minMs: Double, maxMs: Double)
    /// Log-normal with the given median and 95th percentile.
    case logNormal(p50Ms: Double, p95Ms: Double)

    /// Parses `none`, `fixed:200`, `uniform:100-500` or `lognormal:p50=200,p95=800`; nil otherwise.
    public init?(_ text: String) {
        let t = text.lowercased().trimmingCharacters(in: .whitespaces)
        if t == "none" || t == "0" {
            self = .none
            return
        }
        if t.hasPrefix("fixed:"), let v = Double(t.dropFirst(6)), v.isFinite, v >= 0 {
            self = .fixed(ms: v)
            return
        }
        if t.hasPrefix("uniform:") {
            let parts = t.dropFirst(8).split(separator: "-")
            if parts.count == 2, let a = Double(parts[0]), let b = Double(parts[1]), a.isFinite, b.isFinite, a >= 0, b >= a {
                self = .uniform(minMs: a, maxMs: b)
                return
            }
            return nil
        }
        if t.hasPrefix("lognormal:") {
            var p50: Double?
            var p95: Double?
            for kv in t.dropFirst(10).split(separator: ",") {
                let pair = kv.split(separator: "=")
                guard pair.count == 2, let v = Double(pair[1]), v.isFinite else { return nil }
                switch pair[0] {
                case "p50": p50 = v
                case "p95": p95 = v
                default: return nil
                }
            }
            if let p50, let p95, p50 > 0, p95 >= p50 {
                self = .logNormal(p50Ms: p50, p95Ms: p95)
                return
            }
        }
        return nil
    }

    /// What `init?(_:)` accepts, for error messages.
    public static let expectedFormat = "none, fixed:MS, uniform:MIN-MAX or lognormal:p50=MS,p95=MS"

    public var description: String {
        switch self {
        case .none: "none"
        case .fixed(let ms): "fixed:\(ms)"
        case .uniform(let a, let b): "uniform:\(a)-\(b)"
        case .logNormal(let p50, let p95): "lognormal:p50=\(p50),p95=\(p95)"
        }
    }

    /// A sample in milliseconds for `u1`, `u2` uniform in (0, 1) (Box–Muller for the log-normal).
    func sample(_ u1: Double, _ u2: Double) -> Double {
        switch self {
        case .none:
            return 0
        case .fixed(let ms):
            return ms
        case .uniform(let a, let b):
            return a + (b - a) * u1
        case .logNormal(let p50, let p95):
            let mu = log(p50)
            let sigma = (log(p95) - mu) / 1.6448536269514722
            let z = (-2 * log(max(u1, 1e-12))).squareRoot() * cos(2 * Double.pi * u2)
            // Cap far tails so one sample cannot stall a benchmark for minutes.
            return min(exp(mu + sigma * z), p95 * 20)
        }
    }
}
