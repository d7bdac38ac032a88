import Foundation

/// Typed reads of a decoded JSON object that name the offending field (`messages[2].role`) when a
/// value is missing or of the wrong type.
struct RequestFields {
    let object: [String: Any]
    /// Where `object` sits in the request ("" at the top).
    let path: String

    init(_ object: [String: Any], path: String = "") {
        self.object = object
        self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let v = object[key] as? String else { throw MockLLMError.wrongType(name(key), expected: "a string") }
        return v
    }

    func requiredString(_ key: String) throws -> String {
        guard let v = try string(key) else { throw MockLLMError.missingField(name(key), expected: "a string") }
        return v
    }

    func bool(_ key: String) throws -> Bool? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, Self.isBool(n) else { throw MockLLMError.wrongType(name(key), expected: "true or false") }
        return n.boolValue
    }

    func int(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !Self.isBool(n), let v = Int(exactly: n.doubleValue) else {
            throw MockLLMError.wrongType(name(key), expected: "an integer")
        }
        return v
    }

    func number(_ key: String) throws -> Double? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !Self.isBool(n) else { throw MockLLMError.wrongType(name(key), expected: "a number") }
        return n.doubleValue
    }

    func object(_ key: String) throws -> RequestFields? {
        guard has(key) else { return nil }
        guard let o = object[key] as? [String: Any] else { throw MockLLMError.wrongType(name(key), expected: "an object") }
        return RequestFields(o, path: name(key))
    }

    /// An array of objects (each addressed as `key[i]`).
    func objects(_ key: String) throws -> [RequestFields]? {
        guard has(key) else { return nil }
        guard let a = object[key] as? [Any] else { throw MockLLMError.wrongType(name(key), expected: "an array of objects") }
        return try a.enumerated().map { i, element in
            guard let o = element as? [String: Any] else { throw MockLLMError.wrongType("\(name(key))[\(i)]", expected: "an object") }
            return RequestFields(o, path: "\(name(key))[\(i)]")
        }
    }

    /// A number within `range`, when present.
    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = try number(key) else { return nil }
        guard range.contains(v) else {
            throw MockLLMError.invalidValue(name(key), "\(v)", expected: "a number between \(range.lowerBound) and \(range.upperBound)")
        }
        return v
    }

    /// JSONSerialization gives booleans as NSNumber of objCType "c" (JSON numbers are never that).
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
}
