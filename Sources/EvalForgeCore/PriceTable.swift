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

/// A price of a model from a day on: the table keeps a model's prices over time, so a span is
/// costed at the price of its own day.
public struct DatedPrice: Hashable, Sendable {
    public var price: ModelPrice
    /// Start of the first UTC day this price applies, in Unix nanoseconds; 0 means "since always".
    public var validFromUnixNanos: UInt64
    /// Where the figure comes from (a pricing page URL, "price file …").
    public var source: String

    public init(price: ModelPrice, validFromUnixNanos: UInt64 = 0, source: String = "") {
        self.price = price
        self.validFromUnixNanos = validFromUnixNanos
        self.source = source
    }
}

/// A versioned table of model prices: the one home of prices for the SDK (cost on spans), the
/// collector and the backend (cost stamped on spans from other instrumentations), which load the
/// same price file (`--price-file`, `PriceTable.loading(priceFile:)`), so a span's cost agrees at
/// every stage.
///
/// A name is looked up after normalization (lower case, vendor prefixes `openai/`, `anthropic.`,
/// `us.anthropic.`, Bedrock's `-v1:0` suffix, `-latest`), then among the listed models, then among the
/// explicit aliases (dated snapshots such as `gpt-4o-2024-08-06` → `gpt-4o`). Anything else is
/// unknown — never priced as a listed model it starts with or by dropping a date (`o1-pro` is not
/// `o1`, `gpt-4o-2024-05-13` has its own price): cost is then unknown, never zero and never another
/// model's. A model may have several prices with validity dates; a span takes the one in force at
/// its start.
public struct PriceTable: Hashable, Sendable {
    /// The version of the built-in table (the day its prices were checked against their sources),
    /// recorded on every span as `evalforge.cost.price_table`.
    public static let builtInVersion = "2026-11-01"

    public let version: String
    /// Prices by canonical model name, oldest first.
    private var histories: [String: [DatedPrice]]
    /// Other names of listed models, by name (`gpt-4o-2024-08-06` → `gpt-4o`).
    private var aliases: [String: String]

    public init(version: String, prices: [String: ModelPrice], aliases: [String: String] = [:], source: String = "") {
        var h: [String: [DatedPrice]] = [:]
        for (k, v) in prices { h[k.lowercased()] = [DatedPrice(price: v, source: source)] }
        self.init(version: version, histories: h, aliases: aliases)
    }

    /// A table from dated prices (each list in any order).
    public init(version: String, histories: [String: [DatedPrice]], aliases: [String: String] = [:]) {
        self.version = version
        var normalized: [String: [DatedPrice]] = [:]
        for (k, v) in histories where !v.isEmpty {
            normalized[k.lowercased(), default: []].append(contentsOf: v)
        }
        for k in normalized.keys { normalized[k]?.sort { $0.validFromUnixNanos < $1.validFromUnixNanos } }
        self.histories = normalized
        var a: [String: String] = [:]
        for (k, v) in aliases { a[k.lowercased()] = v.lowercased() }
        self.aliases = a
    }

    /// The table with `overrides` replacing or adding models (valid since always); the version gains
    /// a `+custom` suffix.
    public func merging(_ overrides: [String: ModelPrice]) -> PriceTable {
        guard !overrides.isEmpty else { return self }
        var merged = histories
        for (k, v) in overrides { merged[k.lowercased()] = [DatedPrice(price: v, source: "configuration")] }
        return PriceTable(version: version + "+custom", histories: merged, aliases: aliases)
    }

    /// The table with `other`'s dated prices and aliases added: a price of `other` with the same
    /// model and validity date as one of this table replaces it, others join the model's history.
    /// The version becomes `other.version`.
    public func merging(_ other: PriceTable) -> PriceTable {
        var merged = histories
        for (model, entries) in other.histories {
            var list = merged[model] ?? []
            for e in entries {
                list.removeAll { $0.validFromUnixNanos == e.validFromUnixNanos }
                list.append(e)
            }
            merged[model] = list
        }
        var a = aliases
        for (k, v) in other.aliases { a[k] = v }
        return PriceTable(version: other.version, histories: merged, aliases: a)
    }

    /// The current price of `model` (its newest entry), or nil when the table does not know it.
    public func price(for model: String) -> ModelPrice? {
        history(for: model)?.last?.price
    }

    /// The price of `model` in force at `unixNanos` (0: unknown time, the current price); nil when the
    /// model is unknown or the time precedes its first dated price.
    public func price(for model: String, atUnixNanos unixNanos: UInt64) -> ModelPrice? {
        history(for: model).flatMap { Self.price(in: $0, atUnixNanos: unixNanos) }
    }

    /// A model's prices, oldest first (for callers that cache a lookup per model name).
    public func history(for model: String) -> [DatedPrice]? {
        let name = Self.canonicalName(model)
        if let h = histories[name] { return h }
        if let target = aliases[name] { return histories[target] }
        return nil
    }

    /// Every listed model and its prices, for listing the table.
    public var entries: [(model: String, prices: [DatedPrice])] {
        histories.keys.sorted().map { ($0, histories[$0] ?? []) }
    }

    /// The explicit aliases (name → listed model).
    public var aliasNames: [String: String] { aliases }

    /// The entry of `history` in force at `unixNanos` (0: the newest).
    public static func price(in history: [DatedPrice], atUnixNanos unixNanos: UInt64) -> ModelPrice? {
        guard unixNanos != 0 else { return history.last?.price }
        return history.last { $0.validFromUnixNanos <= unixNanos }?.price
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

    /// The lookup form of a model name: lower case, without vendor prefixes, Bedrock's revision and
    /// `:` suffix, or `-latest`. Dates are kept: a dated snapshot is priced only through an alias.
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

    /// Where the built-in OpenAI prices come from (standard tier, USD per million tokens).
    public static let openAIPricingSource = "https://platform.openai.com/docs/pricing (checked 2026-11-01)"
    /// Where the built-in Anthropic prices come from (cache reads 0.1x input, 5-minute cache writes 1.25x input).
    public static let anthropicPricingSource = "https://docs.claude.com/en/docs/about-claude/pricing (checked 2026-11-01)"

    /// The built-in table: list prices of current OpenAI and Anthropic models as of `builtInVersion`,
    /// each with its source, and the explicit aliases of their dated snapshots.
    public static let builtIn: PriceTable = {
        func openAI(_ p: ModelPrice) -> [DatedPrice] { [DatedPrice(price: p, source: openAIPricingSource)] }
        func anthropic(_ p: ModelPrice) -> [DatedPrice] { [DatedPrice(price: p, source: anthropicPricingSource)] }
        return PriceTable(
            version: builtInVersion,
            histories: [
                // OpenAI (cached input at the published discount; no cache-write premium).
                "gpt-5": openAI(ModelPrice(input: 1.25, output: 10.00, cachedInput: 0.125)),
                "gpt-5-mini": openAI(ModelPrice(input: 0.25, output: 2.00, cachedInput: 0.025)),
                "gpt-5-nano": openAI(ModelPrice(input: 0.05, output: 0.40, cachedInput: 0.005)),
                "gpt-4.1": openAI(ModelPrice(input: 2.00, output: 8.00, cachedInput: 0.50)),
                "gpt-4.1-mini": openAI(ModelPrice(input: 0.40, output: 1.60, cachedInput: 0.10)),
                "gpt-4.1-nano": openAI(ModelPrice(input: 0.10, output: 0.40, cachedInput: 0.025)),
                "gpt-4o": openAI(ModelPrice(input: 2.50, output: 10.00, cachedInput: 1.25)),
                // The first gpt-4o snapshot kept its launch price: a dated name is not its base model.
                "gpt-4o-2024-05-13": openAI(ModelPrice(input: 5.00, output: 15.00)),
                "gpt-4o-mini": openAI(ModelPrice(input: 0.15, output: 0.60, cachedInput: 0.075)),
                "gpt-4-turbo": openAI(ModelPrice(input: 10.00, output: 30.00)),
                "gpt-3.5-turbo": openAI(ModelPrice(input: 0.50, output: 1.50)),
                "o1": openAI(ModelPrice(input: 15.00, output: 60.00, cachedInput: 7.50)),
                "o1-mini": openAI(ModelPrice(input: 1.10, output: 4.40, cachedInput: 0.55)),
                "o3": openAI(ModelPrice(input: 2.00, output: 8.00, cachedInput: 0.50)),
                "o3-mini": openAI(ModelPrice(input: 1.10, output: 4.40, cachedInput: 0.55)),
                "o4-mini": openAI(ModelPrice(input: 1.10, output: 4.40, cachedInput: 0.275)),
                "text-embedding-3-small": openAI(ModelPrice(input: 0.02, output: 0)),
                "text-embedding-3-large": openAI(ModelPrice(input: 0.13, output: 0)),
                // Anthropic.
                "claude-opus-4-5": anthropic(ModelPrice(input: 5.00, output: 25.00, cachedInput: 0.50, cacheWrite: 6.25)),
                "claude-opus-4-1": anthropic(ModelPrice(input: 15.00, output: 75.00, cachedInput: 1.50, cacheWrite: 18.75)),
                "claude-opus-4": anthropic(ModelPrice(input: 15.00, output: 75.00, cachedInput: 1.50, cacheWrite: 18.75)),
                "claude-sonnet-4-5": anthropic(ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75)),
                "claude-sonnet-4": anthropic(ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75)),
                "claude-3-7-sonnet": anthropic(ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75)),
                "claude-3-5-sonnet": anthropic(ModelPrice(input: 3.00, output: 15.00, cachedInput: 0.30, cacheWrite: 3.75)),
                "claude-haiku-4-5": anthropic(ModelPrice(input: 1.00, output: 5.00, cachedInput: 0.10, cacheWrite: 1.25)),
                "claude-3-5-haiku": anthropic(ModelPrice(input: 0.80, output: 4.00, cachedInput: 0.08, cacheWrite: 1.00)),
                "claude-3-haiku": anthropic(ModelPrice(input: 0.25, output: 1.25, cachedInput: 0.03, cacheWrite: 0.30)),
                "claude-3-opus": anthropic(ModelPrice(input: 15.00, output: 75.00, cachedInput: 1.50, cacheWrite: 18.75)),
            ],
            aliases: [
                // Dated snapshots billed at their base model's price, each listed: an unlisted
                // snapshot is unknown until it is added here or in a price file.
                "gpt-5-2025-08-07": "gpt-5",
                "gpt-5-mini-2025-08-07": "gpt-5-mini",
                "gpt-5-nano-2025-08-07": "gpt-5-nano",
                "gpt-4.1-2025-04-14": "gpt-4.1",
                "gpt-4.1-mini-2025-04-14": "gpt-4.1-mini",
                "gpt-4.1-nano-2025-04-14": "gpt-4.1-nano",
                "gpt-4o-2024-08-06": "gpt-4o",
                "gpt-4o-2024-11-20": "gpt-4o",
                "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
                "gpt-4-turbo-2024-04-09": "gpt-4-turbo",
                "gpt-3.5-turbo-0125": "gpt-3.5-turbo",
                "o1-2024-12-17": "o1",
                "o1-mini-2024-09-12": "o1-mini",
                "o3-2025-04-16": "o3",
                "o3-mini-2025-01-31": "o3-mini",
                "o4-mini-2025-04-16": "o4-mini",
                "claude-opus-4-5-20251101": "claude-opus-4-5",
                "claude-opus-4-1-20250805": "claude-opus-4-1",
                "claude-opus-4-20250514": "claude-opus-4",
                "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
                "claude-sonnet-4-20250514": "claude-sonnet-4",
                "claude-3-7-sonnet-20250219": "claude-3-7-sonnet",
                "claude-3-5-sonnet-20241022": "claude-3-5-sonnet",
                "claude-3-5-sonnet-20240620": "claude-3-5-sonnet",
                "claude-haiku-4-5-20251001": "claude-haiku-4-5",
                "claude-3-5-haiku-20241022": "claude-3-5-haiku",
                "claude-3-haiku-20240307": "claude-3-haiku",
                "claude-3-opus-20240229": "claude-3-opus",
                // Other names OpenAI bills at a listed model's price.
                "o1-preview": "o1",
                "o1-preview-2024-09-12": "o1",
                "gpt-4-turbo-preview": "gpt-4-turbo",
            ]
        )
    }()
}
