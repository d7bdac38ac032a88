/// Deterministic token estimates: about four UTF-8 bytes per token, like real tokenizers on English.
enum TokenCounter {
    /// Tokens of `text`: one per four bytes, at least one for non-empty text.
    static func tokens(_ text: String) -> Int { text.isEmpty ? 0 : max(1, (text.utf8.count + 3) / 4) }

    /// Prompt tokens of a conversation: its text plus 3 tokens of framing per message and 20 per tool
    /// definition (name and schema are counted as text too).
    static func promptTokens(messages: [ChatMessage], tools: [ToolDefinition]) -> Int {
        var total = 3
        for m in messages { total += 3 + tokens(m.role) + tokens(m.text) }
        for t in tools { total += 20 + tokens(t.name) + t.schemaBytes / 4 }
        return total
    }

    /// Prompt-cache hits: prompts of at least 1,024 tokens report half of them, in whole 128-token
    /// blocks, as read from the cache (OpenAI caches in 128-token increments above 1,024).
    static func cachedTokens(input: Int) -> Int { input >= 1024 ? (input / 2) / 128 * 128 : 0 }

    /// Reasoning models (`o1*`, `o3*`, `o4*`, `gpt-5*`) spend part of their output on hidden reasoning.
    static func isReasoningModel(_ model: String) -> Bool {
        let m = model.lowercased()
        return m.hasPrefix("o1") || m.hasPrefix("o3") || m.hasPrefix("o4") || m.hasPrefix("gpt-5")
    }

    /// Hidden reasoning tokens for `visible` output tokens: twice as many on reasoning models.
    static func reasoningTokens(model: String, visible: Int) -> Int { isReasoningModel(model) ? visible * 2 : 0 }
}
