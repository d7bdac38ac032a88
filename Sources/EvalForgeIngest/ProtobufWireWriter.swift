/// Appends protobuf wire format to a byte array: the few primitives the collector needs to build
/// messages from bytes it already has (forwarded batches, normalized spans) without re-encoding.
package enum ProtobufWireWriter {
    @inlinable package static func varintSize(_ v: UInt64) -> Int {
        var n = 1
        var v = v >> 7
        while v != 0 { n += 1; v >>= 7 }
        return n
    }

    @inlinable package static func varint(_ v: UInt64, into out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    @inlinable package static func tag(_ field: UInt64, _ wireType: UInt8, into out: inout [UInt8]) {
        varint(field << 3 | UInt64(wireType), into: &out)
    }

    /// Size of a length-delimited field with a `length`-byte payload (tag, length, payload).
    @inlinable package static func lengthDelimitedSize(_ field: UInt64, _ length: Int) -> Int {
        varintSize(field << 3 | 2) + varintSize(UInt64(length)) + length
    }

    /// Tag and length of a length-delimited field; the caller appends the payload.
    @inlinable package static func lengthDelimitedHeader(_ field: UInt64, _ length: Int, into out: inout [UInt8]) {
        tag(field, 2, into: &out)
        varint(UInt64(length), into: &out)
    }

    @inlinable package static func bytes(_ field: UInt64, _ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        lengthDelimitedHeader(field, payload.count, into: &out)
        out.append(contentsOf: payload)
    }

    package static func string(_ field: UInt64, _ s: String, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { bytes(field, UnsafeRawBufferPointer($0), into: &out) }
    }

    @inlinable package static func fixed64(_ field: UInt64, _ v: UInt64, into out: inout [UInt8]) {
        tag(field, 1, into: &out)
        var v = v
        for _ in 0..<8 {
            out.append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }
}
