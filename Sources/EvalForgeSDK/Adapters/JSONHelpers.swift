import Foundation

/// Tolerant readers over `JSONSerialization` output: wrong types read as nil, never trap.
enum JSON {
    static func object(_ data: Data) -> [String: Any]? {
        guard !data.isEmpty, let v = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return nil }
        return v as? [String: Any]
    }

    static func object(_ string: String) -> [String: Any]? { object(Data(string.utf8)) }

    static func int(_ v: Any?) -> Int? {
        switch v {
        case let n as Int: return n
        case let n as NSNumber where !(n is Bool): return n.intValue
        case let d as Double where d.isFinite && abs(d) < 1e15: return Int(d)
        default: return nil
        }
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
