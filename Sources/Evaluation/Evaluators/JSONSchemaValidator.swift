import Foundation

/// A compact JSON-schema validator for the keywords LLM output schemas use: `type` (a name or a
/// list), `properties`, `required`, `additionalProperties` (bool or schema), `items`, `enum`,
/// `const`, `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum`, `multipleOf`,
/// `minLength`/`maxLength`, `pattern`, `minItems`/`maxItems`, `minProperties`/`maxProperties`,
/// `anyOf`/`oneOf`/`allOf`. Other keywords are ignored.
///
/// Schemas come from two places: evaluator definitions, checked strictly when stored
/// (`checkDefinition`), and tool declarations inside evaluated data, which are not: validation
/// therefore never traps on any schema (numbers are compared as Doubles and printed with
/// `Checked.text`), stops collecting violations after `maxViolations`, and matches patterns with
/// `BoundedRegex`'s limits and the caller's deadline.
public struct JSONSchemaValidator: Sendable {
    public let schema: JSON
    private let patterns: [String: BoundedRegex]
    /// True when the schema has a `pattern` (validation then runs off the cooperative pool).
    var hasPatterns: Bool { !patterns.isEmpty }

    static let maxViolations = 50
    /// Bounds of a stored schema definition.
    static let maxDefinitionDepth = 32
    static let maxDefinitionNodes = 10_000
    /// Largest count keyword (minLength, maxItems, …) a stored definition may use.
    static let maxCount: Double = 1_000_000_000

    public init(schema: JSON) throws(EvaluationError) {
        self.schema = schema
        var patterns: [String: BoundedRegex] = [:]
        try JSONSchemaValidator.collectPatterns(schema, depth: 0, into: &patterns)
        self.patterns = patterns
    }

    private static func collectPatterns(_ s: JSON, depth: Int, into out: inout [String: BoundedRegex]) throws(EvaluationError) {
        guard depth < 128 else { return }
        switch s {
        case .object(let o):
            if let p = o["pattern"]?.stringValue, out[p] == nil {
                do { out[p] = try BoundedRegex(p) } catch { throw .invalidArgument("schema pattern: \(error.message)") }
            }
            for v in o.values { try collectPatterns(v, depth: depth + 1, into: &out) }
        case .array(let a): for v in a { try collectPatterns(v, depth: depth + 1, into: &out) }
        default: break
        }
    }

    // MARK: definition check (when an evaluator is stored)

    /// Checks a schema an evaluator stores: every keyword this validator reads has a value of the
    /// right kind and range (counts are whole numbers in 0…1e9, bounds are finite, `multipleOf` is
    /// positive, patterns compile), and the schema is at most 32 levels deep and 10,000 nodes.
    /// The error names the keyword's path, e.g. `schema.properties.name.minLength`.
    static func checkDefinition(_ schema: JSON, field: String) throws(EvaluationError) {
        var nodes = 0
        try checkNode(schema, path: field, depth: 0, nodes: &nodes)
    }

    private static func checkNode(_ s: JSON, path: String, depth: Int, nodes: inout Int) throws(EvaluationError) {
        nodes += 1
        guard nodes <= maxDefinitionNodes else { throw .invalidArgument("\(path): the schema has more than \(maxDefinitionNodes) subschemas") }
        guard depth <= maxDefinitionDepth else { throw .invalidArgument("\(path): the schema is nested more than \(maxDefinitionDepth) levels deep") }
        if case .bool = s { return }
        guard let o = s.objectValue else { throw .invalidArgument("\(path): a schema is an object or a boolean, got \(s.typeName)") }
        for k in ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"] {
            guard let v = o[k] else { continue }
            guard case .number(let d) = v, d.isFinite, d >= 0, d <= maxCount, d.rounded() == d else {
                throw .invalidArgument("\(path).\(k): expected a whole number in 0…\(Checked.text(maxCount)), got \(v.text.prefix(40))")
            }
        }
        for k in ["minimum", "maximum"] {
            guard let v = o[k] else { continue }
            guard case .number(let d) = v, d.isFinite else { throw .invalidArgument("\(path).\(k): expected a finite number, got \(v.text.prefix(40))") }
        }
        for k in ["exclusiveMinimum", "exclusiveMaximum"] {
            guard let v = o[k] else { continue }
            switch v {
            case .bool: break  // draft 4
            case .number(let d) where d.isFinite: break
            default: throw .invalidArgument("\(path).\(k): expected a finite number, got \(v.text.prefix(40))")
            }
        }
        if let v = o["multipleOf"] {
            guard case .number(let d) = v, d.isFinite, d > 0 else { throw .invalidArgument("\(path).multipleOf: expected a finite number above 0, got \(v.text.prefix(40))") }
        }
        if let v = o["pattern"] {
            guard let p = v.stringValue else { throw .invalidArgument("\(path).pattern: expected a string") }
            do { _ = try BoundedRegex(p) } catch { throw .invalidArgument("\(path).pattern: \(error.message)") }
        }
        if let t = o["type"] {
            let known: Set<String> = ["null", "boolean", "string", "array", "object", "number", "integer"]
            let names = t.arrayValue.map { $0.map { $0.stringValue } } ?? [t.stringValue]
            for n in names where n.map({ !known.contains($0) }) ?? true {
                throw .invalidArgument("\(path).type: expected one of \(known.sorted().joined(separator: ", ")) (or a list of them), got \(t.text.prefix(60))")
            }
        }
        if let r = o["required"] {
            guard let list = r.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else { throw .invalidArgument("\(path).required: expected a list of property names") }
        }
        if let e = o["enum"], e.arrayValue == nil { throw .invalidArgument("\(path).enum: expected a list") }
        if let p = o["properties"] {
            guard let props = p.objectValue else { throw .invalidArgument("\(path).properties: expected an object of schemas") }
            for (k, sub) in props { try checkNode(sub, path: "\(path).properties.\(k)", depth: depth + 1, nodes: &nodes) }
        }
        if let ap = o["additionalProperties"] { try checkNode(ap, path: "\(path).additionalProperties", depth: depth + 1, nodes: &nodes) }
        if let items = o["items"] { try checkNode(items, path: "\(path).items", depth: depth + 1, nodes: &nodes) }
        for k in ["allOf", "anyOf", "oneOf"] {
            guard let v = o[k] else { continue }
            guard let list = v.arrayValue, !list.isEmpty else { throw .invalidArgument("\(path).\(k): expected a non-empty list of schemas") }
            for (i, sub) in list.enumerated() { try checkNode(sub, path: "\(path).\(k)[\(i)]", depth: depth + 1, nodes: &nodes) }
        }
    }

    // MARK: validation

    private struct State {
        var errors: [String] = []
        /// How many violations to collect before stopping (1 inside anyOf/oneOf: only "any?" matters).
        var limit: Int
        /// Set when a pattern could not be evaluated (limit or deadline): validation stops.
        var failure: EvaluationError?
        let deadline: ContinuousClock.Instant?

        var done: Bool { failure != nil || errors.count >= limit }
    }

    /// The violations of `value` (empty when it conforms), each with its JSON path, at most
    /// `maxViolations`; an error when a pattern hit its match limit or `deadline` passed.
    public func validate(_ value: JSON, deadline: ContinuousClock.Instant? = nil) -> Result<[String], EvaluationError> {
        var state = State(limit: Self.maxViolations, deadline: deadline)
        check(value, schema, path: "$", depth: 0, &state)
        if let f = state.failure { return .failure(f) }
        return .success(state.errors)
    }

    private func check(_ v: JSON, _ s: JSON, path: String, depth: Int, _ st: inout State) {
        guard !st.done else { return }
        if case .bool(let allowed) = s {
            if !allowed { st.errors.append("\(path): not allowed") }
            return
        }
        // Evaluated data can hold any schema: recursion is bounded like the JSON parser's depth.
        guard depth < 256, let s = s.objectValue else { return }
        if let t = s["type"] {
            let types = t.arrayValue?.compactMap(\.stringValue) ?? t.stringValue.map { [$0] } ?? []
            if !types.isEmpty, !types.contains(where: { matches(v, type: $0) }) {
                st.errors.append("\(path): expected \(types.joined(separator: " or ")), got \(v.typeName)")
                return
            }
        }
        if let e = s["enum"]?.arrayValue, !e.contains(v) {
            st.errors.append("\(path): \(v.text.prefix(40)) is not one of \(JSON.array(e).text.prefix(80))")
        }
        if let c = s["const"], c != v { st.errors.append("\(path): expected \(c.text.prefix(40))") }
        switch v {
        case .number(let d):
            if let m = s["minimum"]?.doubleValue, d < m { st.errors.append("\(path): \(Checked.text(d)) is below the minimum \(Checked.text(m))") }
            if let m = s["maximum"]?.doubleValue, d > m { st.errors.append("\(path): \(Checked.text(d)) is above the maximum \(Checked.text(m))") }
            if let m = s["exclusiveMinimum"]?.doubleValue, d <= m { st.errors.append("\(path): \(Checked.text(d)) is not above \(Checked.text(m))") }
            if let m = s["exclusiveMaximum"]?.doubleValue, d >= m { st.errors.append("\(path): \(Checked.text(d)) is not below \(Checked.text(m))") }
            if let m = s["multipleOf"]?.doubleValue, m.isFinite, m > 0, !Self.isMultiple(d, of: m) {
                st.errors.append("\(path): \(Checked.text(d)) is not a multiple of \(Checked.text(m))")
            }
        case .string(let str):
            let needsCount = s["minLength"] != nil || s["maxLength"] != nil
            let n = needsCount ? Double(str.count) : 0
            if let m = s["minLength"]?.doubleValue, n < m { st.errors.append("\(path): shorter than \(Checked.text(m)) characters") }
            if let m = s["maxLength"]?.doubleValue, n > m { st.errors.append("\(path): longer than \(Checked.text(m)) characters") }
            if let p = s["pattern"]?.stringValue, let re = patterns[p] {
                switch re.matches(str, deadline: st.deadline) {
                case .success(true): break
                case .success(false): st.errors.append("\(path): does not match pattern \(p.prefix(80))")
                case .failure(let e): st.failure = e
                }
            }
        case .array(let a):
            if let m = s["minItems"]?.doubleValue, Double(a.count) < m { st.errors.append("\(path): fewer than \(Checked.text(m)) items") }
            if let m = s["maxItems"]?.doubleValue, Double(a.count) > m { st.errors.append("\(path): more than \(Checked.text(m)) items") }
            if let items = s["items"] {
                for (i, x) in a.enumerated() {
                    if st.done { return }
                    check(x, items, path: "\(path)[\(i)]", depth: depth + 1, &st)
                }
            }
        case .object(let o):
            if let m = s["minProperties"]?.doubleValue, Double(o.count) < m { st.errors.append("\(path): fewer than \(Checked.text(m)) properties") }
            if let m = s["maxProperties"]?.doubleValue, Double(o.count) > m { st.errors.append("\(path): more than \(Checked.text(m)) properties") }
            let props = s["properties"]?.objectValue ?? [:]
            for r in s["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where o[r] == nil {
                st.errors.append("\(path): missing required property '\(r.prefix(80))'")
            }
            for (k, x) in o.sorted(by: { $0.key < $1.key }) {
                if st.done { return }
                if let ps = props[k] {
                    check(x, ps, path: "\(path).\(k)", depth: depth + 1, &st)
                } else if let ap = s["additionalProperties"] {
                    if case .bool(false) = ap { st.errors.append("\(path): unexpected property '\(k.prefix(80))'") } else { check(x, ap, path: "\(path).\(k)", depth: depth + 1, &st) }
                }
            }
        default: break
        }
        if let all = s["allOf"]?.arrayValue { for sub in all where !st.done { check(v, sub, path: path, depth: depth + 1, &st) } }
        if let any = s["anyOf"]?.arrayValue, !any.isEmpty {
            if !any.contains(where: { sub in conforms(v, sub, path: path, depth: depth, &st) }), st.failure == nil {
                st.errors.append("\(path): matches none of anyOf")
            }
        }
        if let one = s["oneOf"]?.arrayValue, !one.isEmpty {
            var n = 0
            for sub in one where st.failure == nil && n < 2 { if conforms(v, sub, path: path, depth: depth, &st) { n += 1 } }
            if n != 1, st.failure == nil { st.errors.append("\(path): matches \(n)\(n > 1 ? " or more" : "") of oneOf, expected exactly 1") }
        }
    }

    /// Whether `v` conforms to `sub` (stops at its first violation); a pattern failure is kept in `st`.
    private func conforms(_ v: JSON, _ sub: JSON, path: String, depth: Int, _ st: inout State) -> Bool {
        guard st.failure == nil else { return false }
        var inner = State(limit: 1, deadline: st.deadline)
        check(v, sub, path: path, depth: depth + 1, &inner)
        if let f = inner.failure { st.failure = f; return false }
        return inner.errors.isEmpty
    }

    /// `d` is an integer multiple of `m` (relative tolerance for decimal fractions such as 0.1).
    static func isMultiple(_ d: Double, of m: Double) -> Bool {
        let q = d / m
        guard q.isFinite else { return false }
        return abs(q - q.rounded()) <= 1e-9 * Swift.max(1, abs(q))
    }

    private func matches(_ v: JSON, type: String) -> Bool {
        switch (type, v) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): true
        case ("integer", .number(let d)): d.isFinite && d.rounded() == d
        default: false
        }
    }
}
