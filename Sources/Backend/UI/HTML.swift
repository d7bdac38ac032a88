import Foundation

/// A piece of HTML. Interpolated `String`s are escaped; only `HTML` values are inserted as they are,
/// so user data cannot reach the page unescaped unless code says `HTML(raw:)`.
struct HTML: ExpressibleByStringInterpolation, Sendable {
    var raw: String

    init(raw: String) { self.raw = raw }
    init(stringLiteral value: String) { raw = value }
    init(stringInterpolation: StringInterpolation) { raw = stringInterpolation.out }

    static let empty = HTML(raw: "")

    struct StringInterpolation: StringInterpolationProtocol {
        var out = ""
        init(literalCapacity: Int, interpolationCount: Int) { out.reserveCapacity(literalCapacity + interpolationCount * 16) }
        mutating func appendLiteral(_ s: String) { out += s }
        mutating func appendInterpolation(_ s: String) { out += HTML.escape(s) }
        mutating func appendInterpolation(_ s: Substring) { out += HTML.escape(String(s)) }
        mutating func appendInterpolation(_ h: HTML) { out += h.raw }
        mutating func appendInterpolation(_ hs: [HTML]) { for h in hs { out += h.raw } }
        mutating func appendInterpolation(_ i: Int) { out += String(i) }
        mutating func appendInterpolation(_ i: Int64) { out += String(i) }
    }

    /// Escapes text for element content and double-quoted attribute values.
    static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 38 || $0 == 60 || $0 == 62 || $0 == 34 || $0 == 39 }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    static func join(_ parts: [HTML], separator: String = "") -> HTML {
        HTML(raw: parts.map(\.raw).joined(separator: separator))
    }

    static func when(_ condition: Bool, _ body: () -> HTML) -> HTML { condition ? body() : .empty }
}

/// Query strings for links: percent-encodes everything but unreserved characters.
enum URLQuery {
    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func component(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    /// `?a=1&b=2` of the non-empty pairs, or "" when there are none.
    static func string(_ pairs: [(String, String)]) -> String {
        let kept = pairs.filter { !$0.1.isEmpty }
        if kept.isEmpty { return "" }
        return "?" + kept.map { component($0.0) + "=" + component($0.1) }.joined(separator: "&")
    }

    static func path(_ prefix: String, _ segment: String) -> String { prefix + component(segment) }
}

/// Number and time text for the UI.
enum Fmt {
    static func cost(_ usd: Double) -> String {
        guard usd.isFinite else { return "–" }
        if usd == 0 { return "$0" }
        if usd < 0.01 { return "$" + String(format: "%.4f", usd) }
        if usd < 100 { return "$" + String(format: "%.2f", usd) }
        // Stored costs are hostile (1e19 was seen): past 1e15 the digits mean nothing anyway.
        guard usd < 1e15 else { return "$" + String(format: "%.3g", usd) }
        return "$" + grouped(Int64(usd.rounded()))
    }

    static func count<T: BinaryInteger>(_ n: T) -> String {
        let d = Double(n)
        if d < 1000 { return String(n) }
        return count(d)
    }

    /// A count held as a Double (chart values): any value renders, however large or odd.
    static func count(_ d: Double) -> String {
        guard d.isFinite else { return "–" }
        if d < 0 { return "-" + count(-d) }
        if d < 1000 { return String(format: "%.0f", d) }
        if d < 1_000_000 { return trim(String(format: "%.1f", d / 1000)) + "k" }
        if d < 1_000_000_000 { return trim(String(format: "%.1f", d / 1_000_000)) + "M" }
        if d < 1e15 { return trim(String(format: "%.1f", d / 1_000_000_000)) + "B" }
        return String(format: "%.3g", d)
    }

    static func grouped(_ n: Int64) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (i, ch) in s.enumerated() {
            if i > 0, (s.count - i) % 3 == 0 { out += "," }
            out.append(ch)
        }
        return (n < 0 ? "-" : "") + out
    }

    static func ms(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "–" }
        if v == 0 { return "0 ms" }
        if v < 1 { return String(format: "%.2f ms", v) }
        if v < 1000 { return String(format: "%.0f ms", v) }
        if v < 60_000 { return trim(String(format: "%.2f", v / 1000)) + " s" }
        return trim(String(format: "%.1f", v / 60_000)) + " min"
    }

    static func percent(_ r: Double) -> String {
        guard r.isFinite else { return "–" }
        if r == 0 { return "0%" }
        if r < 0.001 { return "<0.1%" }
        return trim(String(format: "%.1f", r * 100)) + "%"
    }

    private static func trim(_ s: String) -> String {
        s.hasSuffix(".0") ? String(s.dropLast(2)) : s
    }

    /// `<time>` in UTC; app.js rewrites it in the viewer's local time.
    static func time(_ nanos: Int64) -> HTML {
        let ms = MetricsController.floorDiv(nanos, 1_000_000)
        return "<time datetime=\"\(TimeFormat.rfc3339(nanos: nanos))\" data-ms=\"\(ms)\">\(TimeFormat.short(nanos: nanos)) UTC</time>"
    }

    static func shortID(_ id: String) -> String { id.count > 12 ? String(id.prefix(8)) + "…" : id }
}
