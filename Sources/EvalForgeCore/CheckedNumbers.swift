/// Checked conversions for values that come from outside (peer answers, headers, configuration):
/// they never trap, whatever the input. Saturating arithmetic is in CheckedArithmetic.swift.
extension Int {
    /// The integer `value` holds when it is finite, has no fraction and lies in `range`; nil otherwise
    /// (NaN, ±inf, 1e300, 2.5, out of range).
    @inlinable package init?(exactly value: Double, in range: ClosedRange<Int>) {
        guard value.isFinite, let i = Int(exactly: value), range.contains(i) else { return nil }
        self = i
    }
}

extension Duration {
    /// Whole nanoseconds in the duration, clamped to 0...UInt64.max (negative durations give 0).
    @inlinable package var saturatingNanoseconds: UInt64 {
        let (s, a) = components
        guard s >= 0, a >= 0 else { return 0 }
        return UInt64(s).multipliedSaturated(by: 1_000_000_000).addingSaturated(UInt64(a / 1_000_000_000))
    }

    /// The duration pinned into `range`.
    @inlinable package func clamped(to range: ClosedRange<Duration>) -> Duration {
        Swift.min(Swift.max(self, range.lowerBound), range.upperBound)
    }
}
