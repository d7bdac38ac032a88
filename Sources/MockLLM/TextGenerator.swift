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

    /// Whole sentences of at least `count` tokens in all (a sentence has 4 to 13 words); the
    /// concatenation ends with a full stop. Callers cut it to a token limit when they have one.
    static func tokens(_ count: Int, _ rng: inout MockRNG) -> [String] {
        guard count > 0 else { return [] }
        var words: [String] = []
        words.reserveCapacity(count + 16)
        while words.count < count {
            var sentence: [Substring] = []
            if rng.int(0...3) == 0 { sentence += openers[rng.index(openers.count)].split(separator: " ") }
            sentence += subjects[rng.index(subjects.count)].split(separator: " ")
            sentence += verbs[rng.index(verbs.count)].split(separator: " ")
            sentence += objects[rng.index(objects.count)].split(separator: " ")
            if rng.int(0...1) == 0 { sentence += modifiers[rng.index(modifiers.count)].split(separator: " ") }
            for (i, w) in sentence.enumerated() {
                words.append(i == 0 ? w.prefix(1).uppercased() + w.dropFirst() : String(w))
            }
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
            return JSONText.encode(["score": score, "label": label, "explanation": text(12, &rng)])
        }
        return JSONText.encode(["answer": text(10, &rng), "confidence": Double(rng.int(50...99)) / 100])
    }
}
