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

    static let emailMask: StaticString = "[REDACTED_EMAIL]"
    static let apiKeyMask: StaticString = "[REDACTED_API_KEY]"
    static let cardMask: StaticString = "[REDACTED_CARD]"

    static func maskEmails(_ s: String) -> String {
        replacing(in: s, with: emailMask) { b in
            SensitiveTextScanner.containsByte(b, UInt8(ascii: "@")) ? SensitiveTextScanner.emailRanges(b) : []
        }
    }

    static func maskAPIKeys(_ s: String) -> String {
        replacing(in: s, with: apiKeyMask) { b in SensitiveTextScanner.apiKeyRanges(b) }
    }

    /// Runs of 13–19 digits (spaces or dashes allowed between them) that pass the Luhn check.
    static func maskCardNumbers(_ s: String) -> String {
        replacing(in: s, with: cardMask) { b in
            SensitiveTextScanner.cardCandidateRanges(b).filter { SensitiveTextScanner.luhnValid(b, $0) }
        }
    }

    /// `s` with the byte ranges `find` returns replaced by `mask`; `s` itself when there are none.
    private static func replacing(in s: String, with mask: StaticString, _ find: (UnsafeBufferPointer<UInt8>) -> [Range<Int>]) -> String {
        var text = s
        text.makeContiguousUTF8()
        return text.utf8.withContiguousStorageIfAvailable { b -> String in
            let ranges = find(b)
            guard !ranges.isEmpty else { return text }
            var out: [UInt8] = []
            out.reserveCapacity(b.count + ranges.count * mask.utf8CodeUnitCount)
            var from = 0
            for r in ranges {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[from..<r.lowerBound]))
                out.append(contentsOf: UnsafeBufferPointer(start: mask.utf8Start, count: mask.utf8CodeUnitCount))
                from = r.upperBound
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[from...]))
            return String(decoding: out, as: UTF8.self)
        } ?? text
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
