/// Header values from a peer (a backend, a provider), parsed with bounds: they are hostile input,
/// and `Int64(Double(value)! * 1000)` on `Retry-After: inf` traps.
public enum HTTPHeaderValues {
    /// The delay a `Retry-After` value asks for, in milliseconds, clamped into `0...maxMilliseconds`;
    /// nil when it is not a number of seconds (an HTTP date, garbage, NaN, negative, or longer than 32
    /// characters): the caller then uses its own backoff. Fractions are accepted (some servers send
    /// them); `inf` and huge values clamp to `maxMilliseconds`.
    public static func retryAfterMilliseconds(_ value: String?, maxMilliseconds: Int64) -> Int64? {
        guard let value else { return nil }
        let text = value.trimmingASCIISpaces
        guard !text.isEmpty, text.utf8.count <= 32, let seconds = Double(text), !seconds.isNaN, seconds >= 0 else { return nil }
        let ms = (seconds * 1000).clampedInteger(Int64.self) ?? 0
        return Swift.min(Swift.max(0, ms), Swift.max(0, maxMilliseconds))
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs (no Foundation).
    var trimmingASCIISpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return self[first...last]
    }
}
