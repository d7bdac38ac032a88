import EvalForgeCore

/// Conversions and sums over values that came from outside (requests, spans, stored rows): none of
/// them traps. Swift's `Int64(someDouble)` and `+` trap on out-of-range values, and a span with a
/// cost of 1e19 or token counts of 5e18 reaches every page that formats or sums it. (Saturating
/// `+`, `-` and `*` on integers are EvalForgeCore's `addingSaturated` and its siblings.)
public enum CheckedNumbers {
    /// `d` rounded toward zero as an Int64; nil when it is not finite or outside Int64's range.
    @inlinable public static func int64(_ d: Double) -> Int64? {
        d.isFinite ? Int64(exactly: d.rounded(.towardZero)) : nil
    }

    /// `d` rounded toward zero and clamped to Int64's range; NaN is 0.
    @inlinable public static func clampedInt64(_ d: Double) -> Int64 {
        if d.isNaN { return 0 }
        if d >= 9.223372036854775807e18 { return .max }
        if d <= -9.223372036854775808e18 { return .min }
        return Int64(d.rounded(.towardZero))
    }

    /// `d` rounded toward zero and clamped to Int's range; NaN is 0.
    @inlinable public static func clampedInt(_ d: Double) -> Int { Int(clamping: clampedInt64(d)) }

    /// `d` when finite, else nil (JSON has no NaN or infinity; encoders throw on them).
    @inlinable public static func finite(_ d: Double?) -> Double? {
        guard let d, d.isFinite else { return nil }
        return d
    }

    /// The saturating sum of `values`.
    @inlinable public static func sum<S: Sequence>(_ values: S) -> Int64 where S.Element == Int64 {
        values.reduce(0) { $0.addingSaturated($1) }
    }

    /// The sum of the finite values of `values` (non-finite ones are skipped: an unknown, not a
    /// poison); the result itself may be ±inf when finite values overflow Double, which the
    /// formatters show as "–".
    @inlinable public static func finiteSum<S: Sequence>(_ values: S) -> Double where S.Element == Double {
        values.reduce(0) { $1.isFinite ? $0 + $1 : $0 }
    }
}
