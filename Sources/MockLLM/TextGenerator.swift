/// Deterministic, plausible English: sentences assembled from small phrase lists, one word (with its
/// trailing space) per token, so a stream sends one chunk per output token.
enum TextGenerator {
    private static let openers = ["In practice,", "However,", "Overall,", "As a result,", "For example,", "In short,"]
    private static let subjects = [
        "the model", "this approach", "the evaluation", "our team", "the trace", "each request", "the latency budget",
        "a careful review", "the dataset", "the new prompt", "the retrieval step", "the judge",
    ]
    private static let verbs = [
        "improves", "reduces", "shows", "explains", "measures", "supports", "changes", "highlights", "requires",
        "captures", "affects", "simplifies",
    ]
    private static let objects = [
        "the overall quality", "response latency", "token usage", "the cost per request", "the main failure modes",
        "answer accuracy", "the user experience", "several edge cases", "the final score", "the error rate",
        "most of the context", "the expected answer",
    ]
    private static let modifiers = [
        "in most cases", "over the baseline", "under heavy load", "for long prompts", "with little effort",
        "across all runs", "when the cache is warm", "during peak hours", "without extra tools", "on the test set",
    ]

    /// The phrase lists split into words once.
    private static let split = (
        openers: openers.map(words), subjects: subjects.map(words), verbs: verbs.map(words), objects: objects.map(words),
        modifiers: modifiers.map(words)
    )
    private static func words(_ phrase: String) -> [String] { phrase.split(separator: " ").map(String.init) }

    /// Whole sentences of at least `count` tokens in all (a sentence has 4 to 13 words); the
    /// concatenation ends with a full stop. Callers cut it to a token limit when they have one.
    static func tokens(_ count: Int, _ rng: inout MockRNG) -> [String] {
        guard count > 0 else { return [] }
        var words: [String] = []
        words.reserveCapacity(count + 16)
        while words.count < count {
            let first = words.count
            if rng.int(0...3) == 0 { words += split.openers[rng.index(split.openers.count)] }
            words += split.subjects[rng.index(split.subjects.count)]
            words += split.verbs[rng.index(split.verbs.count)]
            words += split.objects[rng.index(split.objects.count)]
            if rng.int(0...1) == 0 { words += split.modifiers[rng.index(split.modifiers.count)] }
            words[first] = words[first].prefix(1).uppercased() + words[first].dropFirst()
            words[words.count - 1] += "."
        }
        // One chunk per word with its separating space; no trailing space at the very end.
        return words.indices.map { i in i == words.count - 1 ? words[i] : words[i] + " " }
    }

    /// `count` tokens joined.
    static func text(_ count: Int, _ rng: inout MockRNG) -> String { tokens(count, &rng).joined() }

    /// A JSON object for JSON mode. When the prompt mentions a score, the shape an LLM judge answers
    /// with: `{"score": 0…1, "label": "pass"|"partial"|"fail", "explanation": "…"}`.
    static func jsonAnswer(prompt: String, _ rng: inout MockRNG) -> String {
        if prompt.lowercased().contains("score") {
            let score = Double(rng.int(0...100)) / 100
            let label = score >= 0.7 ? "pass" : (score >= 0.4 ? "partial" : "fail")
            let verdict: JSONValue = ["score": .double(score), "label": .string(label), "explanation": .string(text(12, &rng))]
            return verdict.text
        }
        let answer: JSONValue = ["answer": .string(text(10, &rng)), "confidence": .double(Double(rng.int(50...99)) / 100)]
        return answer.text
    }
}
