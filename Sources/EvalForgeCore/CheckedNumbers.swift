/// Checked conversions and saturating arithmetic for values that come from outside (peer answers,
/// headers, configuration): they never trap, whatever the input.
extension Int {
    /// `self + other`, pinned at `Int.max` / `Int.min` instead of trapping on overflow.
    @inlinable public func addingSaturated(_ other: Int) -> Int {
        let (r, o) = addingReportingOverflow(other)
        return o ? (other > 0 ? .max : .min) : r
    }

    /// `self - other`, pinned at `Int.max` / `Int.min` instead of trapping on overflow.
    @inlinable public func subtractingSaturated(_ other: Int) -> Int {
        let (r, o) = subtractingReportingOverflow(other)
        return o ? (other < 0 ? .max : .min) : r
    }

    /// `self * other`, pinned at `Int.max` / `Int.min` instead of trapping on overflow.
    @inlinable public func multipliedSaturated(by other: Int) -> Int {
        let (r, o) = multipliedReportingOverflow(by: other)
        return o ? ((self < 0) == (other < 0) ? .max : .min) : r
    }

    /// The integer `value` holds when it is finite, has no fraction and lies in `range`; nil otherwise
    /// (NaN, ±inf, 1e300, 2.5, out of range).
    @inlinable public init?(exactly value: Double, in range: ClosedRange<Int>) {
        guard value.isFinite, let i = Int(exactly: value), range.contains(i) else { return nil }
        self = i
    }
}

extension Int64 {
    /// `value` rounded toward zero and clamped to Int64's range; NaN gives nil. Use where a bound
    /// is wanted rather than a refusal (e.g. milliseconds of a delay already checked to be sane).
    @inlinable public static func clamping(_ value: Double) -> Int64? {
        guard !value.isNaN else { return nil }
        if value >= 9_223_372_036_854_775_807.0 { return .max }
        if value <= -9_223_372_036_854_775_808.0 { return .min }
        return Int64(value.rounded(.towardZero))
    }
}

extension UInt64 {
    /// `self + other`, pinned at `UInt64.max` instead of trapping on overflow.
    @inlinable public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (r, o) = addingReportingOverflow(other)
        return o ? .max : r
    }

    /// `self * other`, pinned at `UInt64.max` instead of trapping on overflow.
    @inlinable public func multipliedSaturated(by other: UInt64) -> UInt64 {
        let (r, o) = multipliedReportingOverflow(by: other)
        return o ? .max : r
    }
}

extension Duration {
    /// Whole nanoseconds in the duration, clamped to 0...UInt64.max (negative durations give 0).
    @inlinable public var saturatingNanoseconds: UInt64 {
        let (s, a) = components
        guard s >= 0, a >= 0 else { return 0 }
        return UInt64(s).multipliedSaturated(by: 1_000_000_000).addingSaturated(UInt64(a / 1_000_000_000))
    }

    /// The duration pinned into `range`.
    @inlinable public func clamped(to range: ClosedRange<Duration>) -> Duration {
        Swift.min(Swift.max(self, range.lowerBound), range.upperBound)
    }
}
