/// Reads protobuf wire format field by field: enough for the few places that look at raw bytes
/// (export responses, WAL record headers, wire-type validation) without a message type.
public struct ProtobufWireReader {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    /// A base-128 varint; nil when truncated or longer than 64 bits.
    public mutating func varint() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let b = bytes[offset]
            offset += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        return nil
    }

    /// The next field number and wire type; nil at the end or on a bad tag.
    public mutating func nextTag() -> (field: UInt64, wireType: UInt8)? {
        guard !isAtEnd, let t = varint() else { return nil }
        return (t >> 3, UInt8(t & 7))
    }

    /// The payload of a length-delimited field; nil when its length runs past the end.
    public mutating func lengthDelimited() -> ArraySlice<UInt8>? {
        guard let n = varint(), n <= UInt64(bytes.count - offset) else { return nil }
        defer { offset += Int(n) }
        return bytes[offset..<offset + Int(n)]
    }

    /// Skips one field's payload; false when it is truncated or the wire type is invalid.
    public mutating func skip(wireType: UInt8) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1:
            guard offset + 8 <= bytes.count else { return false }
            offset += 8
            return true
        case 5:
            guard offset + 4 <= bytes.count else { return false }
            offset += 4
            return true
        case 2: return lengthDelimited() != nil
        default: return false
        }
    }
}

/// A protobuf field cursor over borrowed bytes (`start..<end` of `buffer`), for the hot decoders
/// that read OTLP without building messages. Every read is bounds-checked and fails with nil
/// instead of trapping; nothing is copied.
public struct ProtobufWireCursor {
    public let buffer: UnsafeRawBufferPointer
    public var offset: Int
    public let end: Int

    @inlinable public init(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) {
        self.buffer = buffer
        self.offset = max(0, range.lowerBound)
        self.end = min(buffer.count, range.upperBound)
    }

    @inlinable public var isAtEnd: Bool { offset >= end }

    /// A base-128 varint; nil when truncated or longer than 10 bytes.
    @inlinable public mutating func varint() -> UInt64? {
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
    @inlinable public mutating func tag() -> (field: UInt64, wireType: UInt8)? {
        guard let t = varint(), t >> 3 != 0 else { return nil }
        return (t >> 3, UInt8(truncatingIfNeeded: t & 7))
    }

    @inlinable public mutating func fixed64() -> UInt64? {
        guard end - offset >= 8 else { return nil }
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(buffer[offset + i]) }
        offset += 8
        return v
    }

    @inlinable public mutating func fixed32() -> UInt32? {
        guard end - offset >= 4 else { return nil }
        var v: UInt32 = 0
        for i in (0..<4).reversed() { v = v << 8 | UInt32(buffer[offset + i]) }
        offset += 4
        return v
    }

    /// The range of a length-delimited payload; nil when its length runs past the end.
    @inlinable public mutating func lengthDelimited() -> Range<Int>? {
        guard let n = varint(), n <= UInt64(end - offset) else { return nil }
        let start = offset
        offset += Int(n)
        return start..<offset
    }

    /// Skips one field's payload; false when it is truncated or the wire type is invalid (groups included).
    @inlinable public mutating func skip(wireType: UInt8) -> Bool {
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
    @inlinable public func equals(_ range: Range<Int>, _ bytes: UnsafeRawBufferPointer) -> Bool {
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
