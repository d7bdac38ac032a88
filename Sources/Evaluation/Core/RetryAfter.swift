import Foundation

/// `Retry-After` from a provider or a webhook receiver, parsed with bounds: delay-seconds (digits,
/// a decimal fraction tolerated) or an HTTP-date, clamped to `0…cap`. Anything else — `inf`, `nan`,
/// `1e300`, a negative number, garbage, an over-long value — is nil (the caller's own backoff
/// applies); a huge number of seconds or a far-future date is `cap`, a past date zero.
enum RetryAfter {
    static func parse(_ value: String?, cap: Duration, now: Date = Date()) -> Duration? {
        guard let raw = value else { return nil }
        let v = raw.trimmingCharacters(in: .whitespaces)
        guard !v.isEmpty, v.utf8.count <= 64 else { return nil }
        let capSeconds = Double(cap.components.seconds) + Double(cap.components.attoseconds) / 1e18
        let seconds: Double
        if let s = delaySeconds(v) {
            seconds = s
        } else if let date = httpDate(v) {
            seconds = date.timeIntervalSince(now)
        } else {
            return nil
        }
        guard !seconds.isNaN else { return nil }
        let clamped = Swift.min(Swift.max(seconds, 0), capSeconds)
        return .milliseconds(Checked.clamped(clamped * 1000, to: 0...Int64.max / 1_000_000))
    }

    /// `1*DIGIT [ "." 1*DIGIT ]`; a value with more digits than a Double holds exactly is simply large.
    private static func delaySeconds(_ v: String) -> Double? {
        var sawDot = false
        var digitsBefore = 0, digitsAfter = 0
        for c in v.utf8 {
            if c >= 0x30, c <= 0x39 {
                if sawDot { digitsAfter += 1 } else { digitsBefore += 1 }
            } else if c == UInt8(ascii: "."), !sawDot {
                sawDot = true
            } else {
                return nil
            }
        }
        guard digitsBefore > 0, !sawDot || digitsAfter > 0 else { return nil }
        return Double(v)
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), plus the obsolete RFC 850 and asctime forms.
    private static func httpDate(_ v: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            f.dateFormat = format
            if let d = f.date(from: v) { return d }
        }
        return nil
    }
}
