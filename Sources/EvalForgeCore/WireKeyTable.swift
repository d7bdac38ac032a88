/// Open-addressing table from attribute key bytes to a value: hashes the length and the first and
/// last eight bytes, then compares the whole key. For the wire decoders that recognise a fixed set
/// of attribute keys without making a `String` of every key they read.
public struct WireKeyTable<Value: Sendable>: Sendable {
    @usableFromInline struct Slot: Sendable {
        @usableFromInline var hash: UInt64
        @usableFromInline var key: [UInt8]
        @usableFromInline var value: Value
    }

    // Inlinable so callers in other modules get a specialized lookup (no generic metadata per call).
    @usableFromInline let slots: [Slot?]
    @usableFromInline let mask: Int
    @usableFromInline let maxLength: Int

    /// `entries`: keys (4 to 64 bytes; others are never found) and their values; a repeated key keeps its first value.
    public init(_ entries: some Sequence<(String, Value)>) {
        var unique: [(key: [UInt8], value: Value)] = []
        var seen = Set<String>()
        for (name, value) in entries where seen.insert(name).inserted { unique.append((Array(name.utf8), value)) }
        var size = 16
        while size < unique.count * 4 { size <<= 1 }
        var slots = [Slot?](repeating: nil, count: size)
        for e in unique {
            let h = e.key.withUnsafeBytes { Self.hash($0, 0..<$0.count) }
            var i = Int(truncatingIfNeeded: h) & (size - 1)
            while slots[i] != nil { i = (i + 1) & (size - 1) }
            slots[i] = Slot(hash: h, key: e.key, value: e.value)
        }
        self.slots = slots
        mask = size - 1
        maxLength = min(64, unique.map(\.key.count).max() ?? 0)
    }

    @inlinable @inline(__always) public static func hash(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64 {
        let n = r.count
        var h = UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15
        if n >= 8 {
            h ^= b.loadUnaligned(fromByteOffset: r.lowerBound, as: UInt64.self)
            h = (h ^ (h >> 29)) &* 0xBF58_476D_1CE4_E5B9
            h ^= b.loadUnaligned(fromByteOffset: r.upperBound - 8, as: UInt64.self)
        } else {
            var v: UInt64 = 0
            for i in r { v = v << 8 | UInt64(b[i]) }
            h ^= v
        }
        h = (h ^ (h >> 32)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 29)
    }

    /// The value for the key at `range` of `buffer`, if the table has it.
    @inlinable @inline(__always) public func lookup(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> Value? {
        guard range.count >= 4, range.count <= maxLength, range.lowerBound >= 0, range.upperBound <= buffer.count else { return nil }
        let h = Self.hash(buffer, range)
        var i = Int(truncatingIfNeeded: h) & mask
        while let s = slots[i] {
            if s.hash == h, s.key.count == range.count {
                let equal = s.key.withUnsafeBytes { k in
                    ProtobufWireCursor(buffer, range).equals(range, k)
                }
                if equal { return s.value }
            }
            i = (i + 1) & mask
        }
        return nil
    }
}
