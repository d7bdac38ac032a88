import NIOCore

/// ClickHouse's RowBinary format: little-endian fixed-width numbers, strings as a LEB128 length and
/// bytes, `Nullable` as a 0/1 byte before the value, arrays as a LEB128 count and the elements.
/// Rows are written into a plain byte array (no per-write exclusivity checks or reference counting,
/// as a `ByteBuffer` has); `buffer` hands the result to the HTTP client in one copy.
struct RowBinaryWriter {
    var bytes: [UInt8] = []

    init(capacity: Int) {
        bytes.reserveCapacity(max(0, capacity))
    }

    var count: Int { bytes.count }

    /// The rows written, as a `ByteBuffer` for the HTTP client.
    var buffer: ByteBuffer { ByteBuffer(bytes: bytes) }

    @inline(__always) mutating func varint(_ v: Int) {
        var x = UInt64(truncatingIfNeeded: v)
        while x >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: x) | 0x80)
            x >>= 7
        }
        bytes.append(UInt8(x))
    }

    @inline(__always) mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { u in
            varint(u.count)
            bytes.append(contentsOf: u)
        }
    }

    @inline(__always) mutating func little<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always) mutating func uint8(_ v: UInt8) { bytes.append(v) }
    @inline(__always) mutating func int8(_ v: Int8) { bytes.append(UInt8(bitPattern: v)) }
    @inline(__always) mutating func uint16(_ v: UInt16) { little(v) }
    @inline(__always) mutating func uint32(_ v: UInt32) { little(v) }
    @inline(__always) mutating func int32(_ v: Int32) { little(v) }
    @inline(__always) mutating func int64(_ v: Int64) { little(v) }
    @inline(__always) mutating func uint64(_ v: UInt64) { little(v) }
    @inline(__always) mutating func float64(_ v: Double) { little(v.bitPattern) }

    mutating func nullableFloat64(_ v: Double?) {
        if let v { uint8(0); float64(v) } else { uint8(1) }
    }

    mutating func nullableInt64(_ v: Int64?) {
        if let v { uint8(0); int64(v) } else { uint8(1) }
    }

    mutating func strings(_ a: [String]) {
        varint(a.count)
        for s in a { string(s) }
    }
}

/// Reads RowBinary results; every read throws when the data ends early or is malformed, so a
/// truncated or unexpected answer becomes an error, never a crash.
struct RowBinaryReader {
    var buffer: ByteBuffer

    var isAtEnd: Bool { buffer.readableBytes == 0 }

    private static func truncated() -> StoreError { .rejected("ClickHouse returned a truncated or unexpected RowBinary result") }

    mutating func varint() throws -> Int {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let b: UInt8 = buffer.readInteger() else { throw Self.truncated() }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { break }
            shift += 7
            guard shift < 64 else { throw Self.truncated() }
        }
        guard result <= UInt64(Int.max) else { throw Self.truncated() }
        return Int(result)
    }

    mutating func string() throws -> String {
        let n = try varint()
        guard let s = buffer.readString(length: n) else { throw Self.truncated() }
        return s
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        guard let v: T = buffer.readInteger(endianness: .little) else { throw Self.truncated() }
        return v
    }

    mutating func int64() throws -> Int64 { try integer() }
    mutating func uint64() throws -> UInt64 { try integer() }
    mutating func uint8() throws -> UInt8 { try integer() }
    mutating func int8() throws -> Int8 { try integer() }
    mutating func float64() throws -> Double { Double(bitPattern: try integer(UInt64.self)) }

    mutating func nullableFloat64() throws -> Double? { try uint8() == 0 ? try float64() : nil }
    mutating func nullableInt64() throws -> Int64? { try uint8() == 0 ? try int64() : nil }

    mutating func strings() throws -> [String] {
        let n = try varint()
        guard n <= buffer.readableBytes else { throw Self.truncated() }
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try string()) }
        return out
    }

    mutating func array<T>(_ element: (inout RowBinaryReader) throws -> T) throws -> [T] {
        let n = try varint()
        guard n <= buffer.readableBytes else { throw Self.truncated() }
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try element(&self)) }
        return out
    }
}
