/// A protobuf field cursor over borrowed bytes (`start..<end` of `buffer`), for the hot decoders
/// that read OTLP without building messages. Every read is bounds-checked and fails with nil
/// instead of trapping; nothing is copied.
package struct ProtobufWireCursor {
    package let buffer: UnsafeRawBufferPointer
    package var offset: Int
    package let end: Int

    @inlinable package init(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) {
        self.buffer = buffer
        self.offset = max(0, range.lowerBound)
        self.end = min(buffer.count, range.upperBound)
    }

    @inlinable package var isAtEnd: Bool { offset >= end }

    /// A base-128 varint; nil when truncated or longer than 10 bytes.
    @inlinable package mutating func varint() -> UInt64? {
        guard offset < end else { return nil }
        let first = buffer[offset]
        if first < 0x80 {
            offset += 1
            return UInt64(first)
        }
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while offset < end, shift < 64 {
            let b = buffer[offset]
            offset += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        return nil
    }

    /// The next tag as (field number, wire type); nil when truncated or the field number is 0.
    @inlinable package mutating func tag() -> (field: UInt64, wireType: UInt8)? {
        guard let t = varint(), t >> 3 != 0 else { return nil }
        return (t >> 3, UInt8(truncatingIfNeeded: t & 7))
    }

    @inlinable package mutating func fixed64() -> UInt64? {
        guard end - offset >= 8 else { return nil }
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(buffer[offset + i]) }
        offset += 8
        return v
    }

    @inlinable package mutating func fixed32() -> UInt32? {
        guard end - offset >= 4 else { return nil }
        var v: UInt32 = 0
        for i in (0..<4).reversed() { v = v << 8 | UInt32(buffer[offset + i]) }
        offset += 4
        return v
    }

    /// The range of a length-delimited payload; nil when its length runs past the end.
    @inlinable package mutating func lengthDelimited() -> Range<Int>? {
        guard let n = varint(), n <= UInt64(end - offset) else { return nil }
        let start = offset
        offset += Int(n)
        return start..<offset
    }

    /// Skips one field's payload; false when it is truncated or the wire type is invalid (groups included).
    @inlinable package mutating func skip(wireType: UInt8) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1:
            guard end - offset >= 8 else { return false }
            offset += 8
            return true
        case 5:
            guard end - offset >= 4 else { return false }
            offset += 4
            return true
        case 2: return lengthDelimited() != nil
        default: return false
        }
    }

    /// True when `range` of the buffer equals `bytes`.
    @inlinable package func equals(_ range: Range<Int>, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard range.count == bytes.count, range.lowerBound >= 0, range.upperBound <= buffer.count else { return false }
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            if buffer.loadUnaligned(fromByteOffset: range.lowerBound + i, as: UInt64.self) != bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < n {
            if buffer[range.lowerBound + i] != bytes[i] { return false }
            i += 1
        }
        return true
    }
}
