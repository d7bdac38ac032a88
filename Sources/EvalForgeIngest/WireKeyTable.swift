#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Open-addressing table from attribute key bytes to a value: hashes the length and the first and
/// last eight bytes, then compares the whole key. For the wire decoders that recognise a fixed set
/// of attribute keys without making a `String` of every key they read.
package struct WireKeyTable<Value: Sendable>: Sendable {
    /// A used slot: the key's hash, where its bytes are in `keyBytes`, and its value's index.
    /// Plain values, so a probe retains nothing.
    @usableFromInline struct Slot: Sendable {
        @usableFromInline var hash: UInt64
        @usableFromInline var keyStart: Int32
        @usableFromInline var keyLength: Int32
        /// Index into `values`; -1 for an empty slot.
        @usableFromInline var value: Int32
    }

    // Inlinable so callers in other modules get a specialized lookup (no generic metadata per call).
    @usableFromInline let slots: [Slot]
    @usableFromInline let keyBytes: [UInt8]
    @usableFromInline let values: [Value]
    @usableFromInline let mask: Int
    @usableFromInline let maxLength: Int

    /// `entries`: keys (4 to 64 bytes; others are never found) and their values; a repeated key keeps its first value.
    package init(_ entries: some Sequence<(String, Value)>) {
        var unique: [(key: [UInt8], value: Value)] = []
        var seen = Set<String>()
        for (name, value) in entries where seen.insert(name).inserted { unique.append((Array(name.utf8), value)) }
        var size = 16
        while size < unique.count * 4 { size <<= 1 }
        var slots = [Slot](repeating: Slot(hash: 0, keyStart: 0, keyLength: 0, value: -1), count: size)
        var keyBytes: [UInt8] = []
        var values: [Value] = []
        for e in unique {
            let h = e.key.withUnsafeBytes { Self.hash($0, 0..<$0.count) }
            var i = Int(truncatingIfNeeded: h) & (size - 1)
            while slots[i].value >= 0 { i = (i + 1) & (size - 1) }
            slots[i] = Slot(hash: h, keyStart: Int32(keyBytes.count), keyLength: Int32(e.key.count), value: Int32(values.count))
            keyBytes.append(contentsOf: e.key)
            values.append(e.value)
        }
        self.slots = slots
        self.keyBytes = keyBytes
        self.values = values
        mask = size - 1
        maxLength = min(64, unique.map(\.key.count).max() ?? 0)
    }

    @inlinable @inline(__always) package static func hash(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64 {
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
    @inlinable @inline(__always) package func lookup(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> Value? {
        guard range.count >= 4, range.count <= maxLength, range.lowerBound >= 0, range.upperBound <= buffer.count else { return nil }
        let h = Self.hash(buffer, range)
        var i = Int(truncatingIfNeeded: h) & mask
        return slots.withUnsafeBufferPointer { slots in
            while slots[i].value >= 0 {
                let s = slots[i]
                if s.hash == h, Int(s.keyLength) == range.count {
                    let equal = keyBytes.withUnsafeBytes { k in
                        memcmp(k.baseAddress! + Int(s.keyStart), buffer.baseAddress! + range.lowerBound, range.count) == 0
                    }
                    if equal { return values[Int(s.value)] }
                }
                i = (i + 1) & mask
            }
            return nil
        }
    }
}
