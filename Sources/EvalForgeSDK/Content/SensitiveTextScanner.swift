/// Finds API keys, e-mail addresses and payment card numbers in UTF-8 text with single-pass byte
/// scanners (no regular expressions: the export loop runs these on every captured message).
///
/// Each `ranges…` function returns the non-overlapping byte ranges to mask, leftmost first — the
/// ranges the equivalent regular expression would replace:
/// - API keys: `sk-…` (incl. `sk-ant-`, `sk-proj-`) with 16+ key characters, `AKIA` + 16, `gh[pousr]_` + 30+,
///   `xox[abprs]-` + 10+, `AIza` + 35, and `Bearer <20+ token characters>` (any case).
/// - E-mail: `local@label(.label)*.tld` with a letters-only TLD of 2+.
/// - Cards: 13–19 digits, single spaces or dashes between them, on word boundaries (ASCII letters,
///   digits, `_` and non-ASCII bytes are word characters); the caller applies the Luhn check.
enum SensitiveTextScanner {
    typealias Bytes = UnsafeBufferPointer<UInt8>

    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }
    @inline(__always) static func isUpper(_ c: UInt8) -> Bool { c &- 65 < 26 }
    @inline(__always) static func isLower(_ c: UInt8) -> Bool { c &- 97 < 26 }
    @inline(__always) static func isLetter(_ c: UInt8) -> Bool { isUpper(c) || isLower(c) }
    @inline(__always) static func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || isLetter(c) }
    /// `[A-Za-z0-9_-]`
    @inline(__always) static func isKeyChar(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x5F || c == 0x2D }
    @inline(__always) static func isWordChar(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x5F || c >= 0x80 }
    @inline(__always) static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }

    /// The end of the run of bytes satisfying `pred` that starts at `i`.
    @inline(__always) static func run(_ b: Bytes, from i: Int, _ pred: (UInt8) -> Bool) -> Int {
        var j = i
        while j < b.count, pred(b[j]) { j += 1 }
        return j
    }

    @inline(__always) static func hasPrefix(_ b: Bytes, at i: Int, _ p: StaticString) -> Bool {
        let n = p.utf8CodeUnitCount
        guard i + n <= b.count else { return false }
        let s = p.utf8Start
        for k in 0..<n where b[i + k] != s[k] { return false }
        return true
    }

    /// True when `b` holds `byte`, eight bytes per step (`String.UTF8View.contains` costs several
    /// times more per byte).
    static func containsByte(_ b: Bytes, _ byte: UInt8) -> Bool {
        guard let base = b.baseAddress else { return false }
        let raw = UnsafeRawPointer(base)
        var i = 0
        while i + 8 <= b.count {
            if hasByte(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self), byte) != 0 { return true }
            i += 8
        }
        while i < b.count {
            if b[i] == byte { return true }
            i += 1
        }
        return false
    }

    // MARK: API keys

    static func apiKeyRanges(_ b: Bytes) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < b.count {
            if i + 12 <= b.count, !keyMayStart(b, in: i) {
                i += 8
                continue
            }
            if let end = apiKeyMatch(b, at: i) {
                out.append(i..<end)
                i = end
            } else {
                i += 1
            }
        }
        return out
    }

    /// False when no key can start in `b[i..<i+8]` (reads `b[i..<i+12]`): every key starts with `A`,
    /// `b` or `B`, or has `-` or `_` within its first five bytes (`sk-`, `gh?_`, `xox?-`). Prose has
    /// few of these, so most 8-byte blocks are passed over with a few word operations.
    @inline(__always) static func keyMayStart(_ b: Bytes, in i: Int) -> Bool {
        guard let base = b.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        let head = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        let tail = raw.loadUnaligned(fromByteOffset: i + 4, as: UInt64.self)
        let marks = hasByte(head, 0x41) | hasByte(head | ones &* 0x20, 0x62)  // A; b or B
            | hasByte(head, 0x2D) | hasByte(head, 0x5F) | hasByte(tail, 0x2D) | hasByte(tail, 0x5F)  // - _
        return marks != 0
    }

    /// 0x01 in every byte.
    @inline(__always) static var ones: UInt64 { 0x0101_0101_0101_0101 }

    /// Non-zero when a byte of `word` equals `byte` (the exact zero-byte test on `word ^ byte…byte`).
    @inline(__always) static func hasByte(_ word: UInt64, _ byte: UInt8) -> UInt64 {
        let v = word ^ (ones &* UInt64(byte))
        return (v &- ones) & ~v & (ones &* 0x80)
    }

    /// The end of an API key starting exactly at `i`, if one does.
    @inline(__always) static func apiKeyMatch(_ b: Bytes, at i: Int) -> Int? {
        switch b[i] {
        case UInt8(ascii: "s"):
            guard hasPrefix(b, at: i, "sk-") else { return nil }
            let end = run(b, from: i + 3, isKeyChar)
            return end - (i + 3) >= 16 ? end : nil
        case UInt8(ascii: "A"):
            if hasPrefix(b, at: i, "AKIA") {
                let end = run(b, from: i + 4) { isDigit($0) || isUpper($0) }
                if end - (i + 4) >= 16 { return i + 20 }
            }
            if hasPrefix(b, at: i, "AIza") {
                let end = run(b, from: i + 4, isKeyChar)
                if end - (i + 4) >= 35 { return i + 39 }
            }
            return nil
        case UInt8(ascii: "g"):
            guard i + 3 < b.count, b[i + 1] == UInt8(ascii: "h"), b[i + 3] == UInt8(ascii: "_") else { return nil }
            switch b[i + 2] {
            case UInt8(ascii: "p"), UInt8(ascii: "o"), UInt8(ascii: "u"), UInt8(ascii: "s"), UInt8(ascii: "r"): break
            default: return nil
            }
            let end = run(b, from: i + 4, isAlnum)
            return end - (i + 4) >= 30 ? end : nil
        case UInt8(ascii: "x"):
            guard i + 4 < b.count, hasPrefix(b, at: i, "xox"), b[i + 4] == UInt8(ascii: "-") else { return nil }
            switch b[i + 3] {
            case UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "p"), UInt8(ascii: "r"), UInt8(ascii: "s"): break
            default: return nil
            }
            let end = run(b, from: i + 5) { isAlnum($0) || $0 == 0x2D }
            return end - (i + 5) >= 10 ? end : nil
        case UInt8(ascii: "b"), UInt8(ascii: "B"):
            guard i + 6 <= b.count, b[i + 1] | 0x20 == UInt8(ascii: "e"), b[i + 2] | 0x20 == UInt8(ascii: "a"),
                  b[i + 3] | 0x20 == UInt8(ascii: "r"), b[i + 4] | 0x20 == UInt8(ascii: "e"),
                  b[i + 5] | 0x20 == UInt8(ascii: "r") else { return nil }
            let tokenStart = run(b, from: i + 6, isSpace)
            guard tokenStart > i + 6 else { return nil }
            let end = run(b, from: tokenStart) { isAlnum($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
            return end - tokenStart >= 20 ? end : nil
        default:
            return nil
        }
    }

    // MARK: E-mail addresses

    /// `[A-Za-z0-9._%+-]`
    @inline(__always) static func isLocalChar(_ c: UInt8) -> Bool {
        isAlnum(c) || c == 0x2E || c == 0x5F || c == 0x25 || c == 0x2B || c == 0x2D
    }
    /// `[A-Za-z0-9-]`
    @inline(__always) static func isLabelChar(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x2D }

    static func emailRanges(_ b: Bytes) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var floor = 0  // matches never overlap: a local part starts at or after the previous end
        var at = 0
        while at < b.count {
            guard b[at] == UInt8(ascii: "@") else { at += 1; continue }
            var start = at
            while start > floor, isLocalChar(b[start - 1]) { start -= 1 }
            if start < at, let end = emailDomainEnd(b, from: at + 1) {
                out.append(start..<end)
                floor = end
                at = end
            } else {
                at += 1
            }
        }
        return out
    }

    /// The end of the longest `label(.label)*.[A-Za-z]{2,}` starting at `i`.
    static func emailDomainEnd(_ b: Bytes, from i: Int) -> Int? {
        var labelStart = i
        var best: Int?
        var first = true
        while true {
            let labelEnd = run(b, from: labelStart, isLabelChar)
            if !first {
                let letters = run(b, from: labelStart, isLetter)
                if letters - labelStart >= 2 { best = letters }
            }
            guard labelEnd > labelStart else { break }  // empty label ends the chain
            first = false
            guard labelEnd < b.count, b[labelEnd] == UInt8(ascii: ".") else { break }
            labelStart = labelEnd + 1
        }
        return best
    }

    // MARK: Payment cards

    /// Candidate card numbers; the caller decides with the Luhn check.
    static func cardCandidateRanges(_ b: Bytes) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        let n = b.count
        while i < n {
            if i + 8 <= n, !hasDigit(b, in: i) {
                i += 8
                continue
            }
            guard isDigit(b[i]) else { i += 1; continue }
            guard i == 0 || !isWordChar(b[i - 1]) else { i += 1; continue }
            var digits = 1
            var j = i + 1
            var best: Int?
            while digits < 19 {
                var k = j
                if k < b.count, b[k] == 0x20 || b[k] == 0x2D { k += 1 }
                guard k < b.count, isDigit(b[k]) else { break }
                digits += 1
                j = k + 1
                if digits >= 13, j == b.count || !isWordChar(b[j]) { best = j }
            }
            if let best {
                out.append(i..<best)
                i = best
            } else {
                i += 1
            }
        }
        return out
    }

    /// True when `b[i..<i+8]` holds an ASCII digit (the exact "byte between 0x2F and 0x3A" word test).
    @inline(__always) static func hasDigit(_ b: Bytes, in i: Int) -> Bool {
        guard let base = b.baseAddress else { return true }
        let x = UnsafeRawPointer(base).loadUnaligned(fromByteOffset: i, as: UInt64.self)
        let low7 = x & (ones &* 0x7F)
        return ((ones &* (127 + 0x3A)) &- low7) & ~x & (low7 &+ ones &* (127 - 0x2F)) & (ones &* 0x80) != 0
    }

    /// True when the digits in `b[r]` pass the Luhn check.
    static func luhnValid(_ b: Bytes, _ r: Range<Int>) -> Bool {
        var sum = 0
        var double = false
        var count = 0
        for idx in r.reversed() where isDigit(b[idx]) {
            var v = Int(b[idx] - 48)
            if double {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
            double.toggle()
            count += 1
        }
        return count >= 13 && sum % 10 == 0
    }
}
