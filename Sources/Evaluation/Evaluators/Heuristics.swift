import Foundation

/// The built-in heuristic evaluators. Each is pure and allocation-light: they run inline on the
/// online path and in experiments (≥ 100,000 evaluations/s per core, `scripts/bench eval`). The ones
/// that match user regexes (`regex`, `json_schema` with a `pattern`, `tool_call`) are built as
/// `OffPoolHeuristic`s: their matching runs on `OffPool` with PCRE2's limits and a deadline.
public struct Heuristic: HeuristicEvaluator {
    public enum Check: Sendable {
        /// Output equals the expected answer (or `value`), optionally ignoring case and surrounding space.
        case exactMatch(value: String?, ignoreCase: Bool)
        /// Output contains `value` (or the expected answer).
        case contains(value: String?, ignoreCase: Bool)
        case regex(BoundedRegex)
        case jsonValid
        case jsonSchema(JSONSchemaValidator)
        /// Output length in characters within bounds.
        case length(min: Int?, max: Int?)
        case latency(maxMs: Double)
        case cost(maxUSD: Double)
        /// Fails when the answer is a refusal.
        case refusal
        /// Fails when the answer leaks an email address, phone number, card number (Luhn) or SSN.
        case pii
        /// Fails when the answer contains something shaped like an API key, token or private key.
        case secrets
        /// Every tool call names a declared tool and its arguments conform to its schema.
        case toolCall
    }

    public let name: String
    public let version: Int
    public let check: Check

    public init(name: String, version: Int = 1, check: Check) {
        self.name = name
        self.version = version
        self.check = check
    }

    /// True when the check matches user regexes (its own, or patterns of schemas in the data).
    var matchesUserRegexes: Bool {
        switch check {
        case .regex, .toolCall: true
        case .jsonSchema(let v): v.hasPatterns
        default: false
        }
    }

    public func evaluateNow(_ x: EvaluationInput) -> EvaluationResult { evaluateNow(x, deadline: ContinuousClock.now + OffPool.deadline) }

    /// Evaluates `x`; regex matches stop with an error once `deadline` has passed.
    func evaluateNow(_ x: EvaluationInput, deadline: ContinuousClock.Instant) -> EvaluationResult {
        switch check {
        case .exactMatch(let value, let ignoreCase):
            guard let want = value ?? x.expected else { return .failure(self, .invalidArgument("exact_match needs an expected answer or a value")) }
            let a = x.output.trimmingCharacters(in: .whitespacesAndNewlines)
            let b = want.trimmingCharacters(in: .whitespacesAndNewlines)
            let ok = ignoreCase ? a.caseInsensitiveCompare(b) == .orderedSame : a == b
            return .pass(self, ok, ok ? "output equals the expected answer" : "output differs from the expected answer")
        case .contains(let value, let ignoreCase):
            guard let want = value ?? x.expected else { return .failure(self, .invalidArgument("contains needs a value or an expected answer")) }
            let ok = ignoreCase ? x.output.range(of: want, options: .caseInsensitive) != nil : x.output.contains(want)
            return .pass(self, ok, ok ? "output contains '\(want.prefix(40))'" : "output lacks '\(want.prefix(40))'")
        case .regex(let re):
            switch re.matches(x.output, deadline: deadline) {
            case .success(let ok): return .pass(self, ok, ok ? "output matches /\(re.pattern.prefix(200))/" : "output does not match /\(re.pattern.prefix(200))/")
            case .failure(let e): return .failure(self, e)
            }
        case .jsonValid:
            let ok = JSON.parse(x.output) != nil
            return .pass(self, ok, ok ? "output is valid JSON" : "output is not valid JSON")
        case .jsonSchema(let validator):
            guard let v = JSON.parse(x.output) else { return .pass(self, false, "output is not valid JSON") }
            switch validator.validate(v, deadline: deadline) {
            case .success(let errors): return .pass(self, errors.isEmpty, errors.isEmpty ? "output conforms to the schema" : errors.prefix(5).joined(separator: "; "))
            case .failure(let e): return .failure(self, e)
            }
        case .length(let lo, let hi):
            let n = x.output.utf8.allSatisfy { $0 < 0x80 } ? x.output.utf8.count : x.output.count  // ASCII: bytes are characters
            let ok = (lo.map { n >= $0 } ?? true) && (hi.map { n <= $0 } ?? true)
            return .pass(self, ok, "\(n) characters (bounds \(lo.map(String.init) ?? "-")…\(hi.map(String.init) ?? "-"))")
        case .latency(let maxMs):
            guard let ms = x.latencyMs, ms.isFinite else { return .failure(self, .invalidArgument("no latency recorded")) }
            return .pass(self, ms <= maxMs, "latency \(Checked.text(ms.rounded())) ms (threshold \(Checked.text(maxMs.rounded())) ms)")
        case .cost(let maxUSD):
            guard let c = x.costUSD, c.isFinite else { return .failure(self, .invalidArgument("no cost recorded (unpriced model)")) }
            return .pass(self, c <= maxUSD, "cost $\(c) (threshold $\(maxUSD))")
        case .refusal:
            let phrase = Heuristic.refusalPhrase(x.output)
            return .pass(self, phrase == nil, phrase.map { "refusal: '\($0)'" } ?? "no refusal")
        case .pii:
            let found = TextScanner.pii(x.output)
            return .pass(self, found.isEmpty, found.isEmpty ? "no PII found" : "found " + found.joined(separator: ", "))
        case .secrets:
            let found = TextScanner.secrets(x.output)
            return .pass(self, found.isEmpty, found.isEmpty ? "no secrets found" : "found " + found.joined(separator: ", "))
        case .toolCall:
            return toolCalls(x, deadline: deadline)
        }
    }

    private func toolCalls(_ x: EvaluationInput, deadline: ContinuousClock.Instant) -> EvaluationResult {
        if x.toolCalls.isEmpty { return .pass(self, true, "no tool calls") }
        if x.tools.isEmpty { return .failure(self, .invalidArgument("the answer calls tools but no tool definitions are known (item input 'tools' or span attribute gen_ai.tool.definitions)")) }
        var problems: [String] = []
        for call in x.toolCalls {
            guard let schema = x.tools[call.name] else {
                problems.append("'\(call.name)' is not a declared tool")
                continue
            }
            guard let args = JSON.parse(call.arguments.isEmpty ? "{}" : call.arguments) else {
                problems.append("'\(call.name)': arguments are not valid JSON")
                continue
            }
            // The tool's schema comes with the data: its patterns compile with the same bounds.
            let validator: JSONSchemaValidator
            do { validator = try JSONSchemaValidator(schema: schema) } catch {
                problems.append("'\(call.name)': the tool's schema is unusable (\(error.message))")
                continue
            }
            switch validator.validate(args, deadline: deadline) {
            case .success(let errors): if !errors.isEmpty { problems.append("'\(call.name)': " + errors.prefix(3).joined(separator: "; ")) }
            case .failure(let e): return .failure(self, e)
            }
        }
        return .pass(self, problems.isEmpty, problems.isEmpty ? "\(x.toolCalls.count) valid tool call(s)" : problems.joined(separator: " | "))
    }

    static let refusalPhrases = [
        "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i'm sorry, but", "i am sorry, but",
        "i'm unable to", "i am unable to", "as an ai", "i won't be able", "i cannot provide", "i can't provide",
        "i will not", "i'm not able to", "i am not able to", "i cannot comply", "i can't comply", "i must decline",
    ]

    /// The refusal phrases as ASCII bytes (all are ASCII).
    static let refusalPhraseBytes: [[UInt8]] = refusalPhrases.map { Array($0.utf8) }

    /// The refusal phrase at the start of the answer (its first 160 characters), or nil. Compares
    /// bytes: ASCII letters folded to lower case, the typographic apostrophe (U+2019) read as "'".
    static func refusalPhrase(_ text: String) -> String? {
        var head = [UInt8]()
        head.reserveCapacity(200)
        var chars = 0
        var utf8 = text.utf8.makeIterator()
        while chars < 160, let b = utf8.next() {
            if b < 0x80 {
                head.append(b &- 65 < 26 ? b | 0x20 : b)
                chars += 1
            } else if b == 0xE2 {
                // U+2019 is E2 80 99; any other sequence starting with E2 is kept as is.
                let b1 = utf8.next(), b2 = utf8.next()
                if b1 == 0x80, b2 == 0x99 {
                    head.append(0x27)
                } else {
                    head.append(b)
                    if let b1 { head.append(b1) }
                    if let b2 { head.append(b2) }
                }
                chars += 1
            } else {
                head.append(b)
                if b & 0xC0 != 0x80 { chars += 1 }
            }
        }
        for (i, p) in refusalPhraseBytes.enumerated() where contains(head, p) { return refusalPhrases[i] }
        return nil
    }

    private static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, hay.count >= needle.count else { return false }
        var i = 0
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == first {
                var k = 1
                while k < needle.count, hay[i + k] == needle[k] { k += 1 }
                if k == needle.count { return true }
            }
            i += 1
        }
        return false
    }
}

/// A heuristic that matches user regexes, evaluated on `OffPool` (a dedicated queue with a
/// deadline) so a pathological pattern or input never occupies a cooperative-pool thread.
struct OffPoolHeuristic: Evaluator {
    let heuristic: Heuristic
    var name: String { heuristic.name }
    var version: Int { heuristic.version }
    var isCacheable: Bool { false }

    func evaluate(_ x: EvaluationInput) async -> EvaluationResult {
        let h = heuristic
        return await OffPool.run { deadline in h.evaluateNow(x, deadline: deadline) }
            ?? .failure(h, .limitExceeded("cancelled while waiting for a regex slot"))
    }
}

/// Byte-level scanners for PII and secrets (no regex on the hot path).
enum TextScanner {
    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    @inline(__always) static func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) }

    static func pii(_ text: String) -> [String] {
        var found: Set<String> = []
        var text = text
        text.withUTF8 { b in
            let n = b.count
            var i = 0
            while i < n {
                let c = b[i]
                if c == UInt8(ascii: "@") {
                    // local part before, domain with a dot after
                    var s = i
                    while s > 0, isAlnum(b[s - 1]) || b[s - 1] == UInt8(ascii: ".") || b[s - 1] == UInt8(ascii: "_") || b[s - 1] == UInt8(ascii: "-") || b[s - 1] == UInt8(ascii: "+") { s -= 1 }
                    var e = i + 1
                    var dot = false
                    while e < n, isAlnum(b[e]) || b[e] == UInt8(ascii: ".") || b[e] == UInt8(ascii: "-") {
                        if b[e] == UInt8(ascii: ".") && e + 1 < n && isAlnum(b[e + 1]) { dot = true }
                        e += 1
                    }
                    if s < i, e > i + 3, dot { found.insert("email") }
                    i = e
                    continue
                }
                if isDigit(c) {
                    // a run of digits with spaces, dashes, dots, parentheses or a leading +
                    var digits: [UInt8] = []
                    var e = i
                    var dashes = 0
                    while e < n, isDigit(b[e]) || ((b[e] == 0x20 || b[e] == UInt8(ascii: "-") || b[e] == UInt8(ascii: ".") || b[e] == UInt8(ascii: ")") || b[e] == UInt8(ascii: "(")) && e + 1 < n && (isDigit(b[e + 1]) || b[e + 1] == 0x20 || b[e + 1] == UInt8(ascii: "("))) {
                        if isDigit(b[e]) { digits.append(b[e] - 0x30) } else if b[e] == UInt8(ascii: "-") { dashes += 1 }
                        e += 1
                        if digits.count > 19 { break }
                    }
                    let prefixPlus = i > 0 && b[i - 1] == UInt8(ascii: "+")
                    if digits.count >= 13 && digits.count <= 19 && luhn(digits) { found.insert("card number") }
                    else if digits.count == 9 && dashes == 2 && e - i == 11 { found.insert("ssn") }
                    else if digits.count >= 10 && digits.count <= 15 && (prefixPlus || e - i > digits.count) { found.insert("phone number") }
                    i = max(e, i + 1)
                    continue
                }
                i += 1
            }
        }
        return found.sorted()
    }

    static func luhn(_ d: [UInt8]) -> Bool {
        var sum = 0
        for (k, x) in d.reversed().enumerated() {
            var v = Int(x)
            if k % 2 == 1 { v *= 2; if v > 9 { v -= 9 } }
            sum += v
        }
        return sum % 10 == 0
    }

    /// (prefix, minimum token characters after it, label)
    static let secretPrefixes: [([UInt8], Int, String)] = [
        (Array("sk-ant-".utf8), 20, "anthropic key"),
        (Array("sk-".utf8), 20, "openai-style key"),
        (Array("AKIA".utf8), 16, "aws access key"),
        (Array("ghp_".utf8), 30, "github token"),
        (Array("github_pat_".utf8), 30, "github token"),
        (Array("xoxb-".utf8), 20, "slack token"),
        (Array("xoxp-".utf8), 20, "slack token"),
        (Array("AIza".utf8), 30, "google api key"),
        (Array("eyJ".utf8), 30, "jwt"),
        (Array("-----BEGIN ".utf8), 0, "private key"),
    ]

    static func secrets(_ text: String) -> [String] {
        var found: Set<String> = []
        var text = text
        text.withUTF8 { b in
            let n = b.count
            var i = 0
            while i < n {
                let c = b[i]
                if c == UInt8(ascii: "s") || c == UInt8(ascii: "A") || c == UInt8(ascii: "g") || c == UInt8(ascii: "x") || c == UInt8(ascii: "e") || c == UInt8(ascii: "-") {
                    if i == 0 || !isAlnum(b[i - 1]) {
                        for (p, minLen, label) in secretPrefixes where i + p.count <= n {
                            var ok = true
                            for k in 0..<p.count where b[i + k] != p[k] { ok = false; break }
                            guard ok else { continue }
                            if label == "private key" {
                                // "-----BEGIN ... PRIVATE KEY-----"
                                let tail = String(decoding: UnsafeBufferPointer(rebasing: b[(i + p.count)..<min(n, i + p.count + 40)]), as: UTF8.self)
                                if tail.contains("PRIVATE KEY") { found.insert(label) }
                                break
                            }
                            var e = i + p.count
                            while e < n, isAlnum(b[e]) || b[e] == UInt8(ascii: "_") || b[e] == UInt8(ascii: "-") || b[e] == UInt8(ascii: ".") { e += 1 }
                            if e - i - p.count >= minLen { found.insert(label) }
                            break
                        }
                    }
                }
                i += 1
            }
        }
        return found.sorted()
    }
}
