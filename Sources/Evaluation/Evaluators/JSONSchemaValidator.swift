import Foundation

/// A compact JSON-schema validator for the keywords LLM output schemas use: `type` (a name or a
/// list), `properties`, `required`, `additionalProperties` (bool or schema), `items`, `enum`,
/// `const`, `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum`, `minLength`/`maxLength`,
/// `pattern`, `minItems`/`maxItems`, `anyOf`/`oneOf`/`allOf`. Other keywords are ignored.
public struct JSONSchemaValidator: Sendable {
    public let schema: JSON
    private let patterns: [String: NSRegularExpressionBox]

    public init(schema: JSON) throws {
        self.schema = schema
        var patterns: [String: NSRegularExpressionBox] = [:]
        try JSONSchemaValidator.collectPatterns(schema, into: &patterns)
        self.patterns = patterns
    }

    private static func collectPatterns(_ s: JSON, into out: inout [String: NSRegularExpressionBox]) throws {
        switch s {
        case .object(let o):
            if let p = o["pattern"]?.stringValue, out[p] == nil {
                do { out[p] = NSRegularExpressionBox(try NSRegularExpression(pattern: p)) } catch {
                    throw EvaluationError.invalidArgument("schema pattern '\(p)' is not a valid regular expression")
                }
            }
            for v in o.values { try collectPatterns(v, into: &out) }
        case .array(let a): for v in a { try collectPatterns(v, into: &out) }
        default: break
        }
    }

    /// The violations of `value` (empty when it conforms), each with its JSON path.
    public func validate(_ value: JSON) -> [String] {
        var errors: [String] = []
        check(value, schema, path: "$", errors: &errors)
        return errors
    }

    private func check(_ v: JSON, _ s: JSON, path: String, errors: inout [String]) {
        if case .bool(let allowed) = s {
            if !allowed { errors.append("\(path): not allowed") }
            return
        }
        guard let s = s.objectValue else { return }
        if let t = s["type"] {
            let types = t.arrayValue?.compactMap(\.stringValue) ?? t.stringValue.map { [$0] } ?? []
            if !types.isEmpty, !types.contains(where: { matches(v, type: $0) }) {
                errors.append("\(path): expected \(types.joined(separator: " or ")), got \(v.typeName)")
                return
            }
        }
        if let e = s["enum"]?.arrayValue, !e.contains(v) {
            errors.append("\(path): \(v.text.prefix(40)) is not one of \(JSON.array(e).text.prefix(80))")
        }
        if let c = s["const"], c != v { errors.append("\(path): expected \(c.text.prefix(40))") }
        switch v {
        case .number(let d):
            if let m = s["minimum"]?.doubleValue, d < m { errors.append("\(path): \(d) is below the minimum \(m)") }
            if let m = s["maximum"]?.doubleValue, d > m { errors.append("\(path): \(d) is above the maximum \(m)") }
            if let m = s["exclusiveMinimum"]?.doubleValue, d <= m { errors.append("\(path): \(d) is not above \(m)") }
            if let m = s["exclusiveMaximum"]?.doubleValue, d >= m { errors.append("\(path): \(d) is not below \(m)") }
        case .string(let str):
            let n = str.count
            if let m = s["minLength"]?.doubleValue, Double(n) < m { errors.append("\(path): shorter than \(Int(m)) characters") }
            if let m = s["maxLength"]?.doubleValue, Double(n) > m { errors.append("\(path): longer than \(Int(m)) characters") }
            if let p = s["pattern"]?.stringValue, let re = patterns[p] {
                let range = NSRange(str.startIndex..., in: str)
                if re.regex.firstMatch(in: str, range: range) == nil { errors.append("\(path): does not match pattern \(p)") }
            }
        case .array(let a):
            if let m = s["minItems"]?.doubleValue, Double(a.count) < m { errors.append("\(path): fewer than \(Int(m)) items") }
            if let m = s["maxItems"]?.doubleValue, Double(a.count) > m { errors.append("\(path): more than \(Int(m)) items") }
            if let items = s["items"] {
                for (i, x) in a.enumerated() { check(x, items, path: "\(path)[\(i)]", errors: &errors) }
            }
        case .object(let o):
            let props = s["properties"]?.objectValue ?? [:]
            for r in s["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where o[r] == nil {
                errors.append("\(path): missing required property '\(r)'")
            }
            for (k, x) in o {
                if let ps = props[k] {
                    check(x, ps, path: "\(path).\(k)", errors: &errors)
                } else if let ap = s["additionalProperties"] {
                    if case .bool(false) = ap { errors.append("\(path): unexpected property '\(k)'") } else { check(x, ap, path: "\(path).\(k)", errors: &errors) }
                }
            }
        default: break
        }
        if let all = s["allOf"]?.arrayValue { for sub in all { check(v, sub, path: path, errors: &errors) } }
        if let any = s["anyOf"]?.arrayValue, !any.isEmpty {
            if !any.contains(where: { sub in var e: [String] = []; check(v, sub, path: path, errors: &e); return e.isEmpty }) {
                errors.append("\(path): matches none of anyOf")
            }
        }
        if let one = s["oneOf"]?.arrayValue, !one.isEmpty {
            let n = one.filter { sub in var e: [String] = []; check(v, sub, path: path, errors: &e); return e.isEmpty }.count
            if n != 1 { errors.append("\(path): matches \(n) of oneOf, expected exactly 1") }
        }
    }

    private func matches(_ v: JSON, type: String) -> Bool {
        switch (type, v) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): true
        case ("integer", .number(let d)): d.rounded() == d
        default: false
        }
    }
}

/// NSRegularExpression is immutable and thread-safe once built.
public final class NSRegularExpressionBox: @unchecked Sendable {
    let regex: NSRegularExpression
    public init(_ regex: NSRegularExpression) { self.regex = regex }
}
