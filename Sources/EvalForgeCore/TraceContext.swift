/// A 128-bit W3C trace id. All-zero is invalid.
public struct TraceID: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64

    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public var isValid: Bool { high != 0 || low != 0 }

    /// 32 lowercase hex digits.
    public var hexString: String { Hex.encode(high) + Hex.encode(low) }

    /// Parses 32 hex digits; nil for anything else or the all-zero id.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 32,
            let high = Hex.decodeUInt64(utf8[0..<16]),
            let low = Hex.decodeUInt64(utf8[16..<32]),
            high != 0 || low != 0
        else { return nil }
        self.init(high: high, low: low)
    }

    /// Parses the 16 raw bytes of the OTLP wire form; nil if the length is wrong or the id is all zero.
    @inlinable public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { high = high << 8 | UInt64(b) } else { low = low << 8 | UInt64(b) }
        }
        guard high != 0 || low != 0 else { return nil }
        self.init(high: high, low: low)
    }
}

/// A 64-bit W3C span id. Zero is invalid.
public struct SpanID: Hashable, Sendable {
    public var value: UInt64

    @inlinable public init(_ value: UInt64) { self.value = value }

    public var isValid: Bool { value != 0 }
    public var hexString: String { Hex.encode(value) }

    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 16, let v = Hex.decodeUInt64(utf8[0..<16]), v != 0 else { return nil }
        self.value = v
    }

    @inlinable public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        var v: UInt64 = 0
        for b in bytes { v = v << 8 | UInt64(b) }
        guard v != 0 else { return nil }
        self.value = v
    }
}

/// The W3C Trace Context `traceparent` header: version 00, trace id, parent span id, flags.
public struct TraceParent: Hashable, Sendable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var sampled: Bool

    public init(traceID: TraceID, spanID: SpanID, sampled: Bool = true) {
        self.traceID = traceID
        self.spanID = spanID
        self.sampled = sampled
    }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; accepts future versions as the spec asks (extra fields ignored).
    public init?(header: some StringProtocol) {
        let parts = header.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4,
            parts[0].utf8.count == 2, parts[0] != "ff",
            parts[0] != "00" || parts.count == 4,
            let traceID = TraceID(hex: parts[1]),
            let spanID = SpanID(hex: parts[2]),
            parts[3].utf8.count == 2,
            let flags = Hex.decodeUInt64(Array(parts[3].utf8)[0..<2])
        else { return nil }
        self.init(traceID: traceID, spanID: spanID, sampled: flags & 1 == 1)
    }

    /// The header value.
    public var header: String {
        "00-\(traceID.hexString)-\(spanID.hexString)-\(sampled ? "01" : "00")"
    }
}

/// Lowercase hex encoding and strict decoding.
package enum Hex {
    @usableFromInline static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    package static func encode(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buf in
            var v = value
            for i in stride(from: 15, through: 0, by: -1) {
                buf[i] = digits[Int(v & 0xF)]
                v >>= 4
            }
            return 16
        }
    }

    package static func encode(bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes up to 16 hex digits (either case); nil on any other character.
    package static func decodeUInt64(_ utf8: ArraySlice<UInt8>) -> UInt64? {
        guard !utf8.isEmpty, utf8.count <= 16 else { return nil }
        var v: UInt64 = 0
        for c in utf8 {
            guard let d = nibble(c) else { return nil }
            v = v << 4 | UInt64(d)
        }
        return v
    }

    /// Decodes an even-length hex string into bytes.
    package static func decode(_ string: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(string.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let h = nibble(utf8[i]), let l = nibble(utf8[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    @inline(__always) static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
