/// Reads protobuf wire format field by field: enough for the few places that look at raw bytes
/// (export responses, WAL record headers, wire-type validation) without a message type.
package struct ProtobufWireReader {
    package let bytes: [UInt8]
    package private(set) var offset = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var isAtEnd: Bool { offset >= bytes.count }

    /// A base-128 varint; nil when truncated or longer than 64 bits.
    package mutating func varint() -> UInt64? {
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
    package mutating func nextTag() -> (field: UInt64, wireType: UInt8)? {
        guard !isAtEnd, let t = varint() else { return nil }
        return (t >> 3, UInt8(t & 7))
    }

    /// The payload of a length-delimited field; nil when its length runs past the end.
    package mutating func lengthDelimited() -> ArraySlice<UInt8>? {
        guard let n = varint(), n <= UInt64(bytes.count - offset) else { return nil }
        defer { offset += Int(n) }
        return bytes[offset..<offset + Int(n)]
    }

    /// Skips one field's payload; false when it is truncated or the wire type is invalid.
    package mutating func skip(wireType: UInt8) -> Bool {
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
