import Foundation

/// Parses an HTTP `Retry-After` value from a peer (RFC 9110 §10.2.3) with bounds: `delay-seconds`
/// (digits, a decimal fraction tolerated) or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
/// Anything else — negative, `inf`, `nan`, exponents, other date formats, garbage — gives nil, and a
/// delay longer than `maximum` is cut to it: a peer can never make the caller wait forever or trap
/// on a conversion.
package enum RetryAfter {
    /// The longest delay a peer can ask for; longer values are clamped to it.
    package static let maximum: Duration = .seconds(3600)

    /// The delay `value` asks for, 0...`maximum`; nil when absent or not a valid Retry-After.
    /// - Parameter nowUnixSeconds: the current time, for HTTP dates (a past date means 0).
    package static func parse(_ value: String?, nowUnixSeconds: Int64, maximum: Duration = RetryAfter.maximum) -> Duration? {
        guard let value else { return nil }
        let bytes = Array(value.utf8.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed())
        guard !bytes.isEmpty, bytes.count <= 64 else { return nil }
        let cap = Swift.max(.zero, maximum)
        if let first = bytes.first, isDigit(first) {
            return seconds(bytes).map { Swift.min($0, cap) }
        }
        guard let date = imfFixdate(bytes) else { return nil }
        let delta = date.subtractingReportingOverflow(nowUnixSeconds)
        if delta.overflow { return date > nowUnixSeconds ? cap : .zero }
        return delta.partialValue <= 0 ? .zero : Swift.min(.seconds(delta.partialValue), cap)
    }

    /// The delay `value` asks for, with HTTP dates read against the wall clock now.
    package static func parse(_ value: String?, maximum: Duration = RetryAfter.maximum) -> Duration? {
        parse(value, nowUnixSeconds: Date().timeIntervalSince1970.clampedInteger(Int64.self) ?? 0, maximum: maximum)
    }

    @inline(__always) private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// `DIGIT+ ["." DIGIT+]` as a duration, saturating at one day (the caller clamps further).
    private static func seconds(_ b: [UInt8]) -> Duration? {
        var i = 0
        var whole: Int64 = 0
        while i < b.count, isDigit(b[i]) {
            whole = Swift.min(whole * 10 + Int64(b[i] - 0x30), 86_400)
            i += 1
        }
        var millis: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale: Int64 = 100
            let start = i
            while i < b.count, isDigit(b[i]) {
                millis += Int64(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            if i == start { return nil }
        }
        guard i == b.count else { return nil }
        return .seconds(whole) + .milliseconds(millis)
    }

    private static let months: [[UInt8]] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map { Array($0.utf8) }

    /// Unix seconds of an IMF-fixdate, years 1970...9999; nil for anything else.
    static func imfFixdate(_ b: [UInt8]) -> Int64? {
        // "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes, fixed positions.
        guard b.count == 29, b[3] == UInt8(ascii: ","), b[4] == 0x20, b[7] == 0x20, b[11] == 0x20, b[16] == 0x20,
            b[19] == UInt8(ascii: ":"), b[22] == UInt8(ascii: ":"), b[25] == 0x20, Array(b[26...]) == Array("GMT".utf8)
        else { return nil }
        func number(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in r {
                guard isDigit(b[i]) else { return nil }
                v = v * 10 + Int64(b[i] - 0x30)
            }
            return v
        }
        guard let day = number(5..<7), let year = number(12..<16), let hour = number(17..<19), let minute = number(20..<22),
            let second = number(23..<25), let monthIndex = months.firstIndex(of: Array(b[8..<11]))
        else { return nil }
        let month = Int64(monthIndex) + 1
        guard (1...31).contains(day), (1970...9999).contains(year), hour < 24, minute < 60, second < 61 else { return nil }
        // Days from civil (Howard Hinnant's algorithm), all in small Int64 ranges.
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + hour * 3600 + minute * 60 + second
    }
}
