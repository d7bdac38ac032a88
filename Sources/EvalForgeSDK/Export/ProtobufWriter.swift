/// Appends protobuf wire-format fields to a byte array. Only what OTLP needs: varints, fixed64,
/// doubles, length-delimited bytes and nested messages.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    @inline(__always) mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @inline(__always) mutating func tag(_ field: UInt32, _ wireType: UInt8) {
        varint(UInt64(field) << 3 | UInt64(wireType))
    }

    @inline(__always) mutating func varintField(_ field: UInt32, _ v: UInt64) {
        tag(field, 0)
        varint(v)
    }

    @inline(__always) mutating func fixed64Field(_ field: UInt32, _ v: UInt64) {
        tag(field, 1)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always) mutating func fixed32Field(_ field: UInt32, _ v: UInt32) {
        tag(field, 5)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always) mutating func doubleField(_ field: UInt32, _ v: Double) {
        fixed64Field(field, v.bitPattern)
    }

    @inline(__always) mutating func stringField(_ field: UInt32, _ s: String) {
        tag(field, 2)
        var s = s
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    @inline(__always) mutating func bytesField(_ field: UInt32, _ b: UnsafeRawBufferPointer) {
        tag(field, 2)
        varint(UInt64(b.count))
        bytes.append(contentsOf: b)
    }

    /// A length-delimited field whose content is another writer's bytes.
    @inline(__always) mutating func messageField(_ field: UInt32, _ content: [UInt8]) {
        tag(field, 2)
        varint(UInt64(content.count))
        bytes.append(contentsOf: content)
    }

    /// A length-delimited field whose length is computed up front, written in place.
    @inline(__always) mutating func messageHeader(_ field: UInt32, length: Int) {
        tag(field, 2)
        varint(UInt64(length))
    }

    @inline(__always) static func varintSize(_ v: UInt64) -> Int {
        var v = v
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }
}
