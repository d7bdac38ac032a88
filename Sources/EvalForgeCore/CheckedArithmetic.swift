/// Saturating arithmetic for counters fed by outside data (token sums, request counts, sketch
/// buckets): a sum that would overflow stops at the type's bound instead of trapping, so one absurd
/// value cannot crash a process (or, replayed from a WAL, crash it again at every start).
extension FixedWidthInteger {
    /// `self + other`, clamped to `Self.min...Self.max`.
    @inlinable @inline(__always)
    package func addingSaturated(_ other: Self) -> Self {
        let (r, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : r
    }

    /// `self - other`, clamped to `Self.min...Self.max`.
    @inlinable @inline(__always)
    package func subtractingSaturated(_ other: Self) -> Self {
        let (r, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other > 0 ? .min : .max) : r
    }

    /// `self * other`, clamped to `Self.min...Self.max`.
    @inlinable @inline(__always)
    package func multipliedSaturated(by other: Self) -> Self {
        let (r, overflow) = multipliedReportingOverflow(by: other)
        guard overflow else { return r }
        return (self < 0) == (other < 0) ? .max : .min
    }

    /// Adds `other` in place, saturating.
    @inlinable @inline(__always)
    package mutating func addSaturating(_ other: Self) {
        self = addingSaturated(other)
    }
}

extension BinaryFloatingPoint {
    /// The integer nearest to `self` (rounded toward zero), clamped into `T`'s range; nil for NaN.
    /// ±infinity clamp to `T.max` / `T.min`. Use where a Double from outside becomes a count, a
    /// duration or a timestamp, instead of `T(self)`, which traps.
    @inlinable
    package func clampedInteger<T: FixedWidthInteger>(_: T.Type = T.self) -> T? {
        guard !isNaN else { return nil }
        let t = rounded(.towardZero)
        if let exact = T(exactly: t) { return exact }
        return t < 0 ? T.min : T.max
    }
}
