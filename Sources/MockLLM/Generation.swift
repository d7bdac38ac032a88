import Foundation

/// Deterministic randomness: SplitMix64 seeded from the configuration seed and the request bytes.
struct MockRNG {
    var state: UInt64

    init(seed: UInt64, body: some Sequence<UInt8>) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in body {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        state = h
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    mutating func unit() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func hex(_ n: Int) -> String {
        var s = ""
        while s.count < n { s += String(next(), radix: 16) }
        return String(s.prefix(n))
    }
}

/// Text, token counts and tool arguments of mock answers.
enum Generator {
    static let words = [
        "the", "model", "answer", "is", "based", "on", "your", "question", "and", "context", "we", "can", "see", "that",
        "latency", "depends", "tokens", "cost", "trace", "span", "evaluation", "quality", "results", "show", "a", "clear",
        "improvement", "over", "baseline", "with", "more", "data", "this", "approach", "works", "well", "for", "most",
        "cases", "however", "some", "edge", "need", "care", "in", "practice", "it", "helps", "to", "measure", "first",
    ]

    /// Approximate tokens of text: one per four characters, at least one for non-empty text.
    static func tokens(_ text: String) -> Int { text.isEmpty ? 0 : max(1, (text.utf8.count + 3) / 4) }

    /// `count` tokens of plausible sentences; each token is one word with its trailing space or period.
    static func sentences(_ count: Int, _ rng: inout MockRNG) -> [String] {
        var out: [String] = []
        out.reserveCapacity(count)
        var sentenceLength = 0
        for i in 0..<count {
            var w = words[Int(rng.next() % UInt64(words.count))]
            if sentenceLength == 0 { w = w.prefix(1).uppercased() + w.dropFirst() }
            sentenceLength += 1
            let end = i == count - 1 || (sentenceLength > 6 && rng.next() % 5 == 0)
            if end { sentenceLength = 0 }
            out.append(w + (end ? ". " : " "))
        }
        if var last = out.popLast() {
            last = String(last.dropLast())
            out.append(last)
        }
        return out
    }

    /// Arguments for a tool: every required property (or all, when none is marked) with a value of its type.
    static func arguments(schema: Any?, _ rng: inout MockRNG) -> [String: Any] {
        guard let s = schema as? [String: Any], let props = s["properties"] as? [String: Any] else { return [:] }
        let required = (s["required"] as? [String]) ?? Array(props.keys)
        var out: [String: Any] = [:]
        for name in required.sorted() {
            out[name] = value(props[name], name: name, &rng)
        }
        return out
    }

    static func value(_ schema: Any?, name: String, _ rng: inout MockRNG) -> Any {
        let s = schema as? [String: Any] ?? [:]
        if let options = s["enum"] as? [Any], !options.isEmpty { return options[Int(rng.next() % UInt64(options.count))] }
        switch s["type"] as? String {
        case "integer": return rng.int(1...100)
        case "number": return Double(rng.int(0...10_000)) / 100
        case "boolean": return rng.next() % 2 == 0
        case "array": return [value(s["items"], name: name, &rng)]
        case "object": return arguments(schema: s, &rng)
        default:
            let samples = ["Paris", "London", "Tokyo", "report.pdf", "alice@example.com", "latest", "summary"]
            return name.lowercased().contains("city") ? ["Paris", "Berlin", "Lisbon"][Int(rng.next() % 3)] : samples[Int(rng.next() % UInt64(samples.count))]
        }
    }

    static func json(_ o: Any) -> String {
        guard let d = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: d, as: UTF8.self)
    }

    /// Reasoning models spend part of their output on hidden reasoning.
    static func isReasoningModel(_ model: String) -> Bool {
        let m = model.lowercased()
        return m.hasPrefix("o1") || m.hasPrefix("o3") || m.hasPrefix("o4") || m.hasPrefix("gpt-5")
    }

    /// Deterministic prompt-cache hits: half of a prompt of at least 1,024 tokens, in 128-token blocks.
    static func cachedTokens(input: Int) -> Int { input >= 1024 ? (input / 2) / 128 * 128 : 0 }

    /// A judge-style JSON answer when the prompt asks for a score; a generic JSON object otherwise.
    static func jsonAnswer(prompt: String, _ rng: inout MockRNG) -> String {
        if prompt.lowercased().contains("score") {
            let score = Double(rng.int(0...100)) / 100
            let label = score >= 0.7 ? "pass" : (score >= 0.4 ? "partial" : "fail")
            return json(["score": score, "label": label, "explanation": sentences(12, &rng).joined()])
        }
        return json(["answer": sentences(10, &rng).joined(), "confidence": Double(rng.int(50...99)) / 100])
    }
}
