/// USD prices per million tokens for one model.
public struct ModelPrice: Hashable, Sendable {
    public var input: Double
    public var output: Double
    /// Price of input tokens read from the prompt cache; `input` when the provider has no discount.
    public var cachedInput: Double
    /// Price of input tokens written to the prompt cache; `input` when the provider charges no premium.
    public var cacheWrite: Double

    public init(input: Double, output: Double, cachedInput: Double? = nil, cacheWrite: Double? = nil) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput ?? input
        self.cacheWrite = cacheWrite ?? input
    }
}

/// A versioned table of model prices, shared by the SDK (cost on spans) and the collector (cost stamped
/// on spans from other instrumentations). Lookups accept dated snapshots of a listed model
/// (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`), `-latest` aliases, vendor prefixes (`openai/`,
/// `anthropic.`) and the table's explicit aliases. Anything else is unknown — never priced as a listed
/// model it happens to start with (`o1-pro` is not `o1`, `gpt-4o-mini-audio` is not `gpt-4o-mini`):
/// cost is then unknown, never zero and never another model's.
public struct PriceTable: Sendable {
    /// The version of the built-in table, recorded on every span as `evalforge.cost.price_table`.
    public static let builtInVersion = "2026-11-01"

    public let version: String
    private var prices: [String: ModelPrice]
    /// Other names of listed models, by canonical name (`o1-preview` → `o1`).
    private var aliases: [String: String]

    public init(version: String, prices: [String: ModelPrice], aliases: [String: String] = [:]) {
        self.version = version
        var normalized: [String: ModelPrice] = [:]
        for (k, v) in prices { normalized[k.lowercased()] = v }
        self.prices = normalized
        var a: [String: String] = [:]
        for (k, v) in aliases { a[k.lowercased()] = v.lowercased() }
        self.aliases = a
    }

    /// The table with `overrides` replacing or adding models; the version gains a `+custom` suffix.
    public func merging(_ overrides: [String: ModelPrice]) -> PriceTable {
        guard !overrides.isEmpty else { return self }
        var merged = prices
        for (k, v) in overrides { merged[k.lowercased()] = v }
        return PriceTable(version: version + "+custom", prices: merged, aliases: aliases)
    }

    /// The price of `model`, or nil when the table does not know it.
    public func price(for model: String) -> ModelPrice? {
        let name = Self.canonicalName(model)
        if let p = lookup(name) { return p }
        let undated = Self.stripDateSuffix(name)
        return undated == name ? nil : lookup(undated)
    }

    /// A listed name or an explicit alias of one; no prefix matching.
    private func lookup(_ name: String) -> ModelPrice? {
        if let p = prices[name] { return p }
        if let target = aliases[name] { return prices[target] }
        return nil
    }

    /// The USD cost of `usage` on `model`, or nil when the model is unknown or no tokens were reported.
    public func cost(model: String, usage: TokenUsage) -> Double? {
        guard let p = price(for: model) else { return nil }
        return Self.cost(price: p, usage: usage)
    }

    /// The USD cost of `usage` at `p`, or nil when no tokens were reported.
    public static func cost(price p: ModelPrice, usage: TokenUsage) -> Double? {
        guard usage.input != nil || usage.output != nil else { return nil }
        let input = Double(usage.input ?? 0)
        let cacheRead = Double(usage.cacheRead ?? 0)
        let cacheWrite = Double(usage.cacheCreation ?? 0)
        let plainInput = max(0, input - cacheRead - cacheWrite)
        let output = Double(usage.output ?? 0)
        return (plainInput * p.input + cacheRead * p.cachedInput + cacheWrite * p.cacheWrite + output * p.output) / 1_000_000
    }

    static func canonicalName(_ model: String) -> String {
        var name = Substring(model.lowercased())
        if let slash = name.lastIndex(of: "/") { name = name[name.index(after: slash)...] }
        for prefix in ["us.anthropic.", "eu.anthropic.", "apac.anthropic.", "anthropic."] where name.hasPrefix(prefix) {
            name = name.dropFirst(prefix.count)
            break
        }
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        // Bedrock's "-v1" / "-v2" revision suffix.
        if let dash = name.lastIndex(of: "-"), name[name.index(after: dash)...].first == "v",
            name[name.index(after: dash)...].dropFirst().allSatisfy(\.isNumber),
            name[name.index(after: dash)...].count > 1
        {
            name = name[..<dash]
        }
        if name.hasSuffix("-latest") { name = name.dropLast("-latest".count) }
        return String(name)
    }

    static func stripDateSuffix(_ name: String) -> String {
        // -YYYY-MM-DD
        if name.count > 11 {
            let tail = name.suffix(11)
            let chars = Array(tail)
            if chars[0] == "-", chars[5] == "-", chars[8] == "-",
                chars[1...4].allSatisfy(\.isNumber), chars[6...7].allSatisfy(\.isNumber), chars[9...10].allSatisfy(\.isNumber)
            {
                return String(name.dropLast(11))
            }
        }
        // -YYYYMMDD
        if name.count > 9 {
            let tail = name.suffix(9)
            if tail.first == "-", tail.dropFirst().allSatisfy(\.isNumber) { return String(name.dropLast(9)) }
        }
        return name
    }

    /// The built-in table: list prices of current OpenAI and Anthropic models, USD per million tokens.
    public static let builtIn = PriceTable(
        version: builtInVersion,
        prices: [
            // OpenAI (cached input at the published discount; no cache-write premium).
            "gpt-5": ModelPrice(input: 1.25, output: 10.00, cachedInput: 0.125),
            "gpt-5-mini": ModelPrice(input: 0.25, output: 2.00, cachedInput: 0.025),
            "gpt-5-nano": ModelPrice(input: 0.05, output: 0.40, cachedInput: 0.005),
            "gpt-4.1": ModelPrice(input: 2.00, output: 8.00, cachedInput: 0.50),
            "gpt-4.1-mini": ModelPrice(input: 0.40, output: 1.60, cachedInput: 0.10),
            "gpt-4.1-nano": ModelPrice(input: 0.10, output: 0.40, cachedInput: 0.025),
            "gpt-4o": ModelPrice(input: 2.50, output: 10.00, cachedInput: 1.25),
            "gpt-4o-mini": ModelPrice(input: 0.15, output: 0.60, cachedInput: 0.075),
            "gpt-4-turbo": ModelPrice(input: 10.00, output: 30.00),
            "gpt-3.5-turbo": ModelPrice(input: 0.50, output: 1.50),
            "o1": ModelPrice(input: 15.00, output: 60.00, cachedInput: 7.50),
            "o1-mini": ModelPrice(input: 1.10, output: 4.40, cachedInput: 0.55),
            "o3": ModelPrice(input: 2.00, output: 8.00, cachedInput: 0.50),
            "o3-mini": ModelPrice(input: 1.10, output: 4.40, cachedInput: 0.55),
            "o4-mini": ModelPrice(input: 1.10, output: 4.40, cachedInput: 0.275),
            "text-embedding-3-small": ModelPrice(input: 0.02, output: 0),
            "text-embedding-3-large": ModelPrice(input: 0.13, output: 0),
            // Anthropic (cache reads at 0.1x input, 5-minute cache writes at 1.25x input).
            "claude-opus-4-5": ModelPrice(input: 5.00, output: 25.00, cachedInput: 0.50, cacheWrite: 6.25),
            "claude-opus-4-1": ModelPrice(input: 15.00, output: 75.00, cachedInput: 1.50, cacheWrite: 18.75),
            "claude-opus-4": ModelPrice(input: 15.00, output: 75.00, cachedInput: 1.50, cacheWrite: 18.75),
            "claude-sonnet-4-5": ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75),
            "claude-sonnet-4": ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75),
            "claude-3-7-sonnet": ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75),
            "claude-3-5-sonnet": ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75),
            "claude-haiku-4-5": ModelPrice(input: 1.00, output: 5.00, cachedInput: 0.10, cacheWrite: 1.25),
            "claude-3-5-haiku": ModelPrice(input: 0.80, output: 4.00, cachedInput: 0.08, cacheWrite: 1.00),
            "claude-3-haiku": ModelPrice(input: 0.25, output: 1.25, cachedInput: 0.03, cacheWrite: 0.30),
            "claude-3-opus": ModelPrice(input: 15.00, output: 75.00, cachedInput: 1.50, cacheWrite: 18.75),
        ],
        aliases: [
            // Other names OpenAI bills at the listed model's price (explicit; no prefix guessing).
            "o1-preview": "o1",
            "gpt-4-turbo-preview": "gpt-4-turbo",
        ]
    )
}
