import Foundation

/// Tolerant readers over `JSONSerialization` output: wrong types read as nil, never trap.
enum JSON {
    static func object(_ data: Data) -> [String: Any]? {
        guard !data.isEmpty, let v = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return nil }
        return v as? [String: Any]
    }

    static func object(_ string: String) -> [String: Any]? { object(Data(string.utf8)) }

    /// An integral JSON number; nil for fractions, ±1e300, numbers beyond Int's range and non-numbers.
    static func int(_ v: Any?) -> Int? {
        if let n = v as? Int { return n }  // exact only: JSONSerialization's NSNumber bridges when representable
        if let d = v as? Double { return Int(exactly: d) }
        return nil
    }

    /// Largest token count accepted from a provider per figure: no real call comes within orders of
    /// magnitude of it, and sums of many such figures stay far from Int64's limit.
    static let maxTokenCount = 1_000_000_000_000

    /// A token count `v` at `field`: an integer in 0...`maxTokenCount`. Absent gives nil silently;
    /// anything else gives nil and appends what was wrong to `problems`.
    static func tokenCount(_ v: Any?, field: String, problems: inout [String]) -> Int? {
        guard let v, !(v is NSNull) else { return nil }
        if let n = int(v), (0...maxTokenCount).contains(n) { return n }
        problems.append("\(field): \(describe(v)) is not a token count (0...\(maxTokenCount)); ignored")
        return nil
    }

    /// A short rendering of a peer's value for a problem message (never the whole value).
    static func describe(_ v: Any) -> String {
        if let s = v as? String { return "\"" + String(s.prefix(40)) + "\"" }
        if let d = v as? Double, !(v is Int) { return "\(d)" }
        return String(String(describing: v).prefix(40))
    }

    static func double(_ v: Any?) -> Double? {
        switch v {
        case let d as Double: return d.isFinite ? d : nil
        case let n as Int: return Double(n)
        case let n as NSNumber: return n.doubleValue
        default: return nil
        }
    }

    static func string(_ v: Any?) -> String? { v as? String }

    static func encode(_ v: Any) -> String {
        guard JSONSerialization.isValidJSONObject(v),
            let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return "null" }
        return String(decoding: d, as: UTF8.self)
    }

    /// Text of an OpenAI or Anthropic `content` field: a string, or the text parts of an array.
    static func text(ofContent content: Any?) -> String? {
        if let s = content as? String { return s }
        guard let parts = content as? [[String: Any]] else { return nil }
        let texts = parts.compactMap { p -> String? in
            let type = p["type"] as? String
            guard type == nil || type == "text" || type == "input_text" || type == "output_text" else { return nil }
            return p["text"] as? String
        }
        return texts.isEmpty ? nil : texts.joined()
    }
}
