import EvalForgeCore
import Evaluation
import Foundation

/// What rate limits count. Requests and spans are counted at the HTTP edge (`RateLimitMiddleware`,
/// the ingest routes); evaluations and judge tokens and cost where the evaluation runner runs them.
public enum RateLimitDimension: String, CaseIterable, Sendable, Codable, Hashable {
    /// Every authenticated `/api` and ingest request.
    case requests
    /// Spans of ingested batches (the batch's span count).
    case spans
    /// Evaluator runs (one evaluator on one input), by the API, experiments and online rules.
    case evaluations
    /// Input plus output tokens of judge calls.
    case judgeTokens = "judge_tokens"
    /// Cost of judge calls, in micro-USD (configured in USD: `judge_cost_usd`).
    case judgeCost = "judge_cost"

    /// The name in the tier file and the API.
    var fileKey: String { self == .judgeCost ? "judge_cost_usd" : rawValue }
}

/// One dimension's limits: per UTC minute (plus `burst`: what a single minute may take above the
/// per-minute rate, for short spikes) and per UTC day. Units: requests, spans, evaluations,
/// tokens, micro-USD.
public struct RateLimit: Sendable, Equatable, Hashable {
    public var perMinute: Int64
    public var perDay: Int64
    public var burst: Int64

    public init(perMinute: Int64, perDay: Int64, burst: Int64 = 0) {
        self.perMinute = perMinute
        self.perDay = perDay
        self.burst = burst
    }

    /// What one minute window admits: the rate plus the burst allowance, saturating.
    public var minuteCapacity: Int64 { perMinute.addingSaturated(burst) }
}

/// A named set of limits, one per dimension.
public struct RateLimitTier: Sendable, Equatable, Hashable {
    public var name: String
    public var limits: [RateLimitDimension: RateLimit]

    public init(name: String, limits: [RateLimitDimension: RateLimit]) {
        self.name = name
        self.limits = limits
    }

    public func limit(_ d: RateLimitDimension) -> RateLimit {
        limits[d] ?? RateLimit(perMinute: RateLimitTiers.maxLimit, perDay: RateLimitTiers.maxLimit)
    }
}

/// A refused rate-limit configuration, naming the file, tier, dimension and field.
public struct RateLimitConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Code: Sendable, Equatable { case invalid, unknownTier }
    private let code: Code
    public let message: String
    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    static func invalid(_ m: String) -> Self { .init(.invalid, m) }
    static func unknownTier(_ m: String) -> Self { .init(.unknownTier, m) }
    public var isUnknownTier: Bool { code == .unknownTier }
    public var description: String { message }
}

/// The configured tiers (built-in defaults, changed by a tier file), the tier of projects that have
/// none, and whether limits are enforced at all. docs/access-control.md, "Rate limits".
public struct RateLimitTiers: Sendable, Equatable {
    public var tiers: [String: RateLimitTier]
    /// Tier of projects without one (and of the instance admin token). Default "enterprise", so an
    /// upgrade does not start refusing a single-tenant installation's traffic; a shared installation
    /// sets `--default-tier free` and raises the projects it trusts.
    public var defaultTier: String
    /// False: nothing is counted or refused, no headers (`EVALFORGE_RATE_LIMITS=off`).
    public var enabled: Bool

    /// Largest limit any dimension may be configured with (units per window); larger is refused.
    public static let maxLimit: Int64 = 1_000_000_000_000
    /// The built-in tier names, in order.
    public static let builtInNames = ["free", "basic", "premium", "enterprise"]
    /// Longest tier name, bytes.
    public static let maxNameBytes = 64

    public init(tiers: [String: RateLimitTier] = RateLimitTiers.builtIn, defaultTier: String = "enterprise", enabled: Bool = true) {
        self.tiers = tiers
        self.defaultTier = defaultTier
        self.enabled = enabled
    }

    /// The built-in tiers (documented in docs/access-control.md; change them with a tier file).
    public static let builtIn: [String: RateLimitTier] = {
        func tier(_ name: String, _ r: RateLimit, _ s: RateLimit, _ e: RateLimit, _ t: RateLimit, _ usd: (minute: Double, day: Double, burst: Double)) -> RateLimitTier {
            let c = RateLimit(perMinute: Int64(usd.minute * 1e6), perDay: Int64(usd.day * 1e6), burst: Int64(usd.burst * 1e6))
            return RateLimitTier(name: name, limits: [.requests: r, .spans: s, .evaluations: e, .judgeTokens: t, .judgeCost: c])
        }
        return [
            "free": tier("free", .init(perMinute: 600, perDay: 100_000, burst: 100), .init(perMinute: 10_000, perDay: 1_000_000, burst: 2_000),
                         .init(perMinute: 60, perDay: 5_000, burst: 20), .init(perMinute: 50_000, perDay: 1_000_000, burst: 10_000), (0.5, 5, 0.1)),
            "basic": tier("basic", .init(perMinute: 3_000, perDay: 1_000_000, burst: 500), .init(perMinute: 100_000, perDay: 20_000_000, burst: 20_000),
                          .init(perMinute: 600, perDay: 100_000, burst: 100), .init(perMinute: 500_000, perDay: 20_000_000, burst: 100_000), (5, 100, 1)),
            "premium": tier("premium", .init(perMinute: 12_000, perDay: 10_000_000, burst: 2_000), .init(perMinute: 1_000_000, perDay: 500_000_000, burst: 200_000),
                            .init(perMinute: 3_000, perDay: 2_000_000, burst: 500), .init(perMinute: 3_000_000, perDay: 200_000_000, burst: 500_000), (30, 1_000, 5)),
            "enterprise": tier("enterprise", .init(perMinute: 60_000, perDay: 50_000_000, burst: 10_000), .init(perMinute: 10_000_000, perDay: 10_000_000_000, burst: 2_000_000),
                               .init(perMinute: 100_000, perDay: 50_000_000, burst: 20_000), .init(perMinute: 50_000_000, perDay: 5_000_000_000, burst: 10_000_000), (200, 20_000, 50)),
        ]
    }()

    /// The tier named `name` (case-insensitive); 4xx-worthy error naming it and the known tiers.
    public func tier(named name: String) throws(RateLimitConfigError) -> RateLimitTier {
        let n = name.trimmingCharacters(in: .whitespaces).lowercased()
        guard let t = tiers[n] else {
            throw .unknownTier("unknown tier '\(name.prefix(Self.maxNameBytes))': use one of \(names.joined(separator: ", "))")
        }
        return t
    }

    /// The tier named `name`, or the default tier when `name` is nil or no longer configured (a tier
    /// removed from the file: the project falls back rather than going unlimited).
    public func effective(_ name: String?) -> RateLimitTier {
        if let name, let t = tiers[name] { return t }
        return tiers[defaultTier] ?? tiers["free"] ?? RateLimitTier(name: defaultTier, limits: [:])
    }

    /// Tier names: the built-in ones in order, then the file's own, sorted.
    public var names: [String] {
        Self.builtInNames.filter { tiers[$0] != nil } + tiers.keys.filter { !Self.builtInNames.contains($0) }.sorted()
    }

    // MARK: Tier file

    /// Reads a tier file: `{"default_tier": "free", "tiers": {"free": {"requests": {"per_minute":
    /// 600, "per_day": 100000, "burst": 100}, "judge_cost_usd": {"per_minute": 0.5, …}, …}, "team-x":
    /// {…}}}`. A built-in tier named in the file keeps the dimensions the file leaves out; a new tier
    /// starts from "free"'s. Every value is checked (finite, whole, 1…1e12, per day ≥ per minute,
    /// burst 0…1e12); a bad one is refused naming the tier, dimension and field.
    public static func load(path: String, base: RateLimitTiers = .init()) throws(RateLimitConfigError) -> RateLimitTiers {
        let data: Data
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let size = attributes[.size] as? Int, size > 1 << 20 { throw RateLimitConfigError.invalid("tier file \(path): larger than 1 MiB") }
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let e as RateLimitConfigError {
            throw e
        } catch {
            throw .invalid("tier file \(path): cannot read it (\(error.localizedDescription))")
        }
        return try parse(data, source: path, base: base)
    }

    static func parse(_ data: Data, source: String, base: RateLimitTiers) throws(RateLimitConfigError) -> RateLimitTiers {
        guard let json = JSON.parse(String(decoding: data, as: UTF8.self)) else { throw .invalid("tier file \(source): not valid JSON") }
        guard let root = json.objectValue else { throw .invalid("tier file \(source): expected a JSON object") }
        for k in root.keys.sorted() where k != "default_tier" && k != "tiers" {
            throw .invalid("tier file \(source): unknown field '\(k.prefix(64))' (expected default_tier, tiers)")
        }
        var out = base
        if let tiers = root["tiers"] {
            guard let tiers = tiers.objectValue else { throw .invalid("tier file \(source): 'tiers' must be an object of tier name → limits") }
            for (rawName, value) in tiers.sorted(by: { $0.key < $1.key }) {
                let name = try validName(rawName, source: source)
                guard let dims = value.objectValue else { throw .invalid("tier file \(source): tier '\(name)' must be an object of dimension → limits") }
                var tier = out.tiers[name] ?? RateLimitTier(name: name, limits: (out.tiers["free"] ?? builtIn["free"])?.limits ?? [:])
                tier.name = name
                for (dimName, limits) in dims.sorted(by: { $0.key < $1.key }) {
                    guard let d = RateLimitDimension.allCases.first(where: { $0.fileKey == dimName }) else {
                        throw .invalid("tier file \(source): tier '\(name)': unknown dimension '\(dimName.prefix(64))' (expected \(RateLimitDimension.allCases.map(\.fileKey).joined(separator: ", ")))")
                    }
                    guard let fields = limits.objectValue else { throw .invalid("tier file \(source): tier '\(name)' \(dimName): expected {\"per_minute\":…, \"per_day\":…, \"burst\":…}") }
                    var l = tier.limit(d)
                    let scale = d == .judgeCost ? 1e6 : 1
                    for (field, v) in fields.sorted(by: { $0.key < $1.key }) {
                        let what = "tier file \(source): tier '\(name)' \(dimName).\(field.prefix(32))"
                        guard case .number(let number) = v else { throw .invalid("\(what): expected a number, got \(v.typeName)") }
                        guard ["per_minute", "per_day", "burst"].contains(field) else {
                            throw .invalid("tier file \(source): tier '\(name)' \(dimName): unknown field '\(field.prefix(32))' (expected per_minute, per_day, burst)")
                        }
                        let value = try checked(number, scale: scale, allowZero: field == "burst", what: what)
                        switch field {
                        case "per_minute": l.perMinute = value
                        case "per_day": l.perDay = value
                        default: l.burst = value
                        }
                    }
                    guard l.perDay >= l.perMinute else {
                        throw .invalid("tier file \(source): tier '\(name)' \(dimName): per_day (\(l.perDay)) is below per_minute (\(l.perMinute))")
                    }
                    tier.limits[d] = l
                }
                out.tiers[name] = tier
            }
        }
        if let d = root["default_tier"] {
            guard let d = d.stringValue else { throw .invalid("tier file \(source): 'default_tier' must be a tier name") }
            out.defaultTier = try out.tier(named: d).name
        }
        return out
    }

    /// A tier name: 1…64 of a-z, 0-9, '-', '_' (lower-cased).
    static func validName(_ raw: String, source: String) throws(RateLimitConfigError) -> String {
        let n = raw.lowercased()
        guard !n.isEmpty, n.utf8.count <= maxNameBytes, n.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 95 }) else {
            throw .invalid("tier file \(source): tier name '\(raw.prefix(80))': use 1 to \(maxNameBytes) letters, digits, '-' or '_'")
        }
        return n
    }

    /// A configured limit as a whole count: finite, not negative, at least 1 (burst may be 0), at most
    /// `maxLimit` after scaling (USD → micro-USD); refused otherwise with what was wrong.
    static func checked(_ v: Double, scale: Double, allowZero: Bool, what: String) throws(RateLimitConfigError) -> Int64 {
        guard v.isFinite else { throw .invalid("\(what): \(v) is not a finite number") }
        let scaled = v * scale
        guard scaled >= (allowZero ? 0 : 1) else { throw .invalid("\(what): \(v) is below \(allowZero ? "0" : scale == 1 ? "1" : "0.000001")") }
        guard scaled <= Double(maxLimit) else { throw .invalid("\(what): \(v) is above the largest limit, \(Double(maxLimit) / scale)") }
        guard scale != 1 || scaled.rounded() == scaled else { throw .invalid("\(what): \(v) is not a whole number") }
        return scaled.clampedInteger(Int64.self) ?? 0
    }
}
