import Foundation
import EvalForgeCore
import EvalForgeModel

/// Checked numeric conversions for values that come from outside (requests, stored rows, provider
/// answers): `Int64(someDouble)` traps on NaN, ±inf and anything beyond ±9.2e18, and `+` traps on
/// overflow; these never do.
enum Checked {
    /// `d` rounded toward zero and clamped to `range`; NaN gives the lower bound.
    static func clamped(_ d: Double, to range: ClosedRange<Int64>) -> Int64 {
        guard !d.isNaN else { return range.lowerBound }
        if d <= Double(range.lowerBound) { return range.lowerBound }
        if d >= Double(range.upperBound) { return range.upperBound }
        return Swift.min(range.upperBound, Swift.max(range.lowerBound, Int64(d.rounded(.towardZero))))
    }

    /// A token count from a provider's answer: a whole, finite, non-negative number of at most
    /// `maxTokens`; nil for anything else (negative, fractional, 1e300, NaN, a string).
    static func tokenCount(_ j: JSON?) -> Int64? {
        guard case .number(let d)? = j, d >= 0, d <= Double(maxTokens), let v = CheckedNumbers.int64(d), Double(v) == d else { return nil }
        return v
    }

    /// More tokens than any real call reports (a million times the largest context window);
    /// keeps sums of token counts far from Int64's limit.
    static let maxTokens: Int64 = 1 << 40

    /// `a + b` for accumulated money and milliseconds: non-finite parts are ignored.
    static func add(_ a: Double, _ b: Double) -> Double {
        guard b.isFinite else { return a }
        let r = a + b
        return r.isFinite ? r : a
    }

    /// A number for a message: whole numbers below 1e15 without a fraction, others as Swift prints them
    /// ("1e+300", "inf", "nan") — never a trap.
    static func text(_ d: Double) -> String {
        if d.isFinite, d.rounded() == d, abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    /// A duration in nanoseconds, saturating.
    static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        let (ns, o) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o { return s > 0 ? .max : .min }
        return ns.addingSaturated(a / 1_000_000_000)
    }

    /// A duration in milliseconds as a Double.
    static func milliseconds(_ d: Duration) -> Double {
        let (s, a) = d.components
        return Double(s) * 1000 + Double(a) / 1e15
    }
}

extension KeyedDecodingContainer {
    /// An integer field decoded as a number and converted with a check. Foundation's decoder reports
    /// `1e300`, `1.5` or `1e19` for an `Int` as "not valid JSON" without naming the field; this names it.
    public func decodeCheckedInt(_ key: Key, field: String) throws -> Int? {
        guard let d = try decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard d.isFinite, d.rounded() == d, let v = Int(exactly: d) else {
            throw EvaluationError.invalidArgument("\(field): expected a whole number, got \(Checked.text(d))")
        }
        return v
    }
}
