/// UTF-8 validation of byte ranges, with an eight-bytes-at-a-time ASCII fast path: what the wire
/// decoders (collector and backend) check every protobuf `string` field with, so invalid text is
/// refused with an error instead of being repaired or kept.
package enum UTF8Validation {
    @inlinable @inline(__always) package static func isValid(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        guard r.lowerBound >= 0, r.upperBound <= b.count else { return false }
        var i = r.lowerBound
        let end = r.upperBound
        while i < end {
            if end - i >= 8, b.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            let c0 = b[i]
            if c0 < 0x80 {
                i += 1
                continue
            }
            if c0 < 0xC2 || c0 > 0xF4 { return false }
            if c0 < 0xE0 {
                guard i + 1 < end, b[i + 1] & 0xC0 == 0x80 else { return false }
                i += 2
            } else if c0 < 0xF0 {
                guard i + 2 < end else { return false }
                let c1 = b[i + 1]
                guard c1 & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80 else { return false }
                if c0 == 0xE0 && c1 < 0xA0 { return false }  // overlong
                if c0 == 0xED && c1 >= 0xA0 { return false }  // UTF-16 surrogates
                i += 3
            } else {
                guard i + 3 < end else { return false }
                let c1 = b[i + 1]
                guard c1 & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80, b[i + 3] & 0xC0 == 0x80 else { return false }
                if c0 == 0xF0 && c1 < 0x90 { return false }  // overlong
                if c0 == 0xF4 && c1 >= 0x90 { return false }  // past U+10FFFF
                i += 4
            }
        }
        return true
    }
}
