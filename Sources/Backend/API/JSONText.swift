import EvalForgeModel

/// Fast JSON text for exports: stored content and attributes are already JSON, so valid JSON is
/// embedded as it is (after a syntax check) instead of being parsed and re-encoded.
enum JSONText {
    /// `text` when it is one valid JSON value, else `text` as a JSON string; `null` when empty.
    static func embed(_ text: String, emptyAs empty: String = "null") -> String {
        if text.isEmpty { return empty }
        return isValid(text) ? text : JSONString.quote(text)
    }

    static func number(_ d: Double?) -> String {
        guard let d, d.isFinite else { return "null" }
        return String(d)
    }

    /// True when `text` is exactly one JSON value (RFC 8259), with optional surrounding whitespace.
    static func isValid(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { buf in
            var p = Parser(b: buf, i: 0)
            guard p.value(depth: 0) else { return false }
            p.ws()
            return p.i == buf.count
        }
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i: Int

        mutating func ws() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func lit(_ s: StaticString) -> Bool {
            let n = s.utf8CodeUnitCount
            guard i + n <= b.count else { return false }
            for k in 0..<n where b[i + k] != s.utf8Start[k] { return false }
            i += n
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth < 200 else { return false }
            ws()
            guard i < b.count else { return false }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1; ws()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return true }
                while true {
                    ws()
                    guard string() else { return false }
                    ws()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { return false }
                    i += 1
                    guard value(depth: depth + 1) else { return false }
                    ws()
                    guard i < b.count else { return false }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return true }
                    return false
                }
            case UInt8(ascii: "["):
                i += 1; ws()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return true }
                while true {
                    guard value(depth: depth + 1) else { return false }
                    ws()
                    guard i < b.count else { return false }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return true }
                    return false
                }
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return lit("true")
            case UInt8(ascii: "f"): return lit("false")
            case UInt8(ascii: "n"): return lit("null")
            default: return number()
            }
        }

        mutating func string() -> Bool {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return false }
            i += 1
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; return true }
                if c < 0x20 { return false }
                if c == UInt8(ascii: "\\") {
                    i += 1
                    guard i < b.count else { return false }
                    switch b[i] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"): i += 1
                    case UInt8(ascii: "u"):
                        guard i + 4 < b.count else { return false }
                        for k in 1...4 where !isHex(b[i + k]) { return false }
                        i += 5
                    default: return false
                    }
                } else {
                    i += 1
                }
            }
            return false
        }

        func isHex(_ c: UInt8) -> Bool { (48...57).contains(c) || (65...70).contains(c) || (97...102).contains(c) }
        func isDigit(_ k: Int) -> Bool { k < b.count && (48...57).contains(b[k]) }

        mutating func number() -> Bool {
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            guard isDigit(i) else { return false }
            if b[i] == UInt8(ascii: "0") { i += 1 } else { while isDigit(i) { i += 1 } }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                i += 1
                guard isDigit(i) else { return false }
                while isDigit(i) { i += 1 }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard isDigit(i) else { return false }
                while isDigit(i) { i += 1 }
            }
            return i > start
        }
    }
}
