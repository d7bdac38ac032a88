import Foundation

/// Arguments for a tool call, synthesized from the tool's JSON schema: every required property (every
/// property when none is marked required) with a deterministic sample value of the declared type.
enum ToolCallSynthesizer {
    /// Picks the tool to call: the forced one when `tool_choice` names it, else one drawn from `rng`.
    static func choose(_ tools: [ToolDefinition], forced: String?, _ rng: inout MockRNG) -> ToolDefinition? {
        guard !tools.isEmpty else { return nil }
        if let forced, let tool = tools.first(where: { $0.name == forced }) { return tool }
        return tools[rng.index(tools.count)]
    }

    /// The arguments object, keys sorted.
    static func arguments(for tool: ToolDefinition, _ rng: inout MockRNG) -> JSONValue {
        object(schema: tool.schema, depth: 0, &rng)
    }

    static func object(schema: Any?, depth: Int, _ rng: inout MockRNG) -> JSONValue {
        guard let s = schema as? [String: Any], let props = s["properties"] as? [String: Any] else { return .object([]) }
        let names = ((s["required"] as? [String]).map { $0.filter { props[$0] != nil } }) ?? Array(props.keys)
        var out: [(String, JSONValue)] = []
        for name in Set(names).sorted() {
            out.append((name, value(props[name], name: name, depth: depth + 1, &rng)))
        }
        return .object(out)
    }

    static func value(_ schema: Any?, name: String, depth: Int, _ rng: inout MockRNG) -> JSONValue {
        let s = schema as? [String: Any] ?? [:]
        if let c = s["const"], let v = JSONValue(any: c) { return v }
        if let options = s["enum"] as? [Any], !options.isEmpty, let v = JSONValue(any: options[rng.index(options.count)]) { return v }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let alternatives = s[key] as? [Any], let first = alternatives.first(where: { !isNull($0) }) {
                return value(first, name: name, depth: depth, &rng)
            }
        }
        var type = s["type"] as? String
        if let types = s["type"] as? [String] { type = types.first { $0 != "null" } }
        if type == nil, s["properties"] != nil { type = "object" }
        guard depth < 8 else { return type == "object" ? .object([]) : .string("…") }
        switch type {
        case "integer":
            let lo = bound(s["minimum"]).map { Int($0.rounded(.up)) } ?? 1
            let hi = max(lo, bound(s["maximum"]).map { Int($0.rounded(.down)) } ?? lo + 99)
            return .int(rng.int(lo...min(hi, lo + 1_000_000)))
        case "number":
            let lo = bound(s["minimum"]) ?? 0
            let hi = max(lo, bound(s["maximum"]) ?? lo + 100)
            return .double(((lo + Double(rng.int(0...100)) / 100 * (hi - lo)) * 100).rounded() / 100)
        case "boolean":
            return .bool(rng.next() % 2 == 0)
        case "array":
            let count = max(1, min(bound(s["minItems"]).map { Int($0) } ?? 1, 5))
            return .array((0..<count).map { _ in value(s["items"], name: name, depth: depth + 1, &rng) })
        case "object":
            return object(schema: s, depth: depth, &rng)
        case "null":
            return .null
        default:
            return .string(string(name: name, format: s["format"] as? String, &rng))
        }
    }

    private static func string(name: String, format: String?, _ rng: inout MockRNG) -> String {
        let n = name.lowercased()
        func pick(_ options: [String]) -> String { options[rng.index(options.count)] }
        switch format {
        case "date": return "2025-0\(rng.int(1...9))-1\(rng.int(0...9))"
        case "date-time": return "2025-0\(rng.int(1...9))-1\(rng.int(0...9))T12:00:00Z"
        case "email": return pick(["alice@example.com", "bob@example.com"])
        case "uri", "url": return pick(["https://example.com/docs", "https://example.com/report"])
        default: break
        }
        if n.contains("city") || n.contains("location") { return pick(["Paris", "Berlin", "Lisbon", "Tokyo"]) }
        if n.contains("country") { return pick(["France", "Germany", "Portugal", "Japan"]) }
        if n.contains("email") { return pick(["alice@example.com", "bob@example.com"]) }
        if n.contains("url") || n.contains("link") { return pick(["https://example.com/docs", "https://example.com/report"]) }
        if n.contains("date") { return "2025-0\(rng.int(1...9))-1\(rng.int(0...9))" }
        if n.contains("unit") { return pick(["celsius", "fahrenheit"]) }
        if n.contains("name") { return pick(["Alice", "Bob", "Carol"]) }
        if n.contains("query") || n.contains("question") || n.contains("text") { return pick(["latest results", "weekly summary", "open issues"]) }
        return pick(["latest", "summary", "report", "default", "example"])
    }

    /// A finite numeric schema bound (JSON numbers decode as NSNumber).
    private static func bound(_ value: Any?) -> Double? {
        guard let n = value as? NSNumber, !RequestFields.isBool(n), n.doubleValue.isFinite, abs(n.doubleValue) < 1e12 else { return nil }
        return n.doubleValue
    }

    private static func isNull(_ schema: Any) -> Bool { (schema as? [String: Any])?["type"] as? String == "null" }
}
