/// Token counts of one LLM call, in EvalForge's one accounting.
///
/// `input` counts every input token, cached or not (the OTel GenAI convention); `cacheRead` and
/// `cacheCreation` are the parts of `input` read from or written to the provider's prompt cache.
/// Anthropic reports its three input figures separately; OpenAI counts cached tokens inside the prompt
/// tokens. The adapters and the collector's normalizer convert both into this form.
/// `reasoning` is the part of `output` spent on hidden reasoning. nil means "not reported".
public struct TokenUsage: Hashable, Sendable {
    public var input: Int?
    public var output: Int?
    public var cacheRead: Int?
    public var cacheCreation: Int?
    public var reasoning: Int?

    public init(input: Int? = nil, output: Int? = nil, cacheRead: Int? = nil, cacheCreation: Int? = nil, reasoning: Int? = nil) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheCreation = cacheCreation
        self.reasoning = reasoning
    }

    /// Builds the usage from Anthropic's figures, where `input_tokens` excludes cache reads and writes.
    /// The sum saturates: absurd figures from a provider must not trap.
    public static func anthropic(inputTokens: Int?, outputTokens: Int?, cacheReadInputTokens: Int?, cacheCreationInputTokens: Int?) -> TokenUsage {
        let total: Int? = inputTokens.map { $0.addingSaturated(cacheReadInputTokens ?? 0).addingSaturated(cacheCreationInputTokens ?? 0) }
        return TokenUsage(input: total, output: outputTokens, cacheRead: cacheReadInputTokens, cacheCreation: cacheCreationInputTokens)
    }

    public var isEmpty: Bool { input == nil && output == nil }
}
