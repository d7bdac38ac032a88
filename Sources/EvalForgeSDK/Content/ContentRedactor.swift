/// Masks secrets and personal data in captured prompts and completions, runs the user's redaction
/// hook, and caps the size. Applied at export time, before anything leaves the process.
struct ContentRedactor: Sendable {
    let masks: Set<EvalForge.Configuration.Content.Mask>
    let hook: (@Sendable (String) -> String)?
    let maxBytes: Int

    init(_ c: EvalForge.Configuration.Content) {
        masks = c.masks
        hook = c.redact
        maxBytes = c.maxBytes
    }

    func apply(_ text: String, truncated: inout Bool) -> String {
        var s = text
        if masks.contains(.apiKeys) { s = Self.maskAPIKeys(s) }
        if masks.contains(.emails) { s = Self.maskEmails(s) }
        if masks.contains(.cardNumbers) { s = Self.maskCardNumbers(s) }
        if let hook { s = hook(s) }
        if s.utf8.count > maxBytes {
            truncated = true
            s = Self.truncate(s, toBytes: maxBytes)
        }
        return s
    }

    static let emailMask = "[REDACTED_EMAIL]"
    static let apiKeyMask = "[REDACTED_API_KEY]"
    static let cardMask = "[REDACTED_CARD]"

    static func maskEmails(_ s: String) -> String {
        guard s.utf8.contains(UInt8(ascii: "@")) else { return s }
        return s.replacing(#/[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}/#, with: emailMask)
    }

    static func maskAPIKeys(_ s: String) -> String {
        s.replacing(
            #/(sk-(ant-|proj-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|(?i:bearer)\s+[A-Za-z0-9._\-]{20,})/#,
            with: apiKeyMask)
    }

    /// Runs of 13–19 digits (spaces or dashes allowed between them) that pass the Luhn check.
    static func maskCardNumbers(_ s: String) -> String {
        var digitCount = 0
        for c in s.utf8 where c >= 48 && c <= 57 {
            digitCount += 1
            if digitCount >= 13 { break }
        }
        guard digitCount >= 13 else { return s }
        return s.replacing(#/\b\d(?:[ \-]?\d){12,18}\b/#) { match in
            let digits = match.output.filter(\.isNumber)
            return luhnValid(digits) ? cardMask : String(match.output)
        }
    }

    static func luhnValid(_ digits: some StringProtocol) -> Bool {
        var sum = 0
        var double = false
        for ch in digits.reversed() {
            guard let d = ch.wholeNumberValue else { return false }
            var v = d
            if double {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
            double.toggle()
        }
        return digits.count >= 13 && sum % 10 == 0
    }

    /// The longest prefix of `s` within `maxBytes` UTF-8 bytes that ends on a character boundary.
    static func truncate(_ s: String, toBytes maxBytes: Int) -> String {
        let utf8 = Array(s.utf8)
        guard utf8.count > maxBytes else { return s }
        var end = maxBytes
        while end > 0 && (utf8[end] & 0xC0) == 0x80 { end -= 1 }
        return String(decoding: utf8[0..<end], as: UTF8.self)
    }
}
