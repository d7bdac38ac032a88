/// Just enough protobuf to write OTLP trace requests and to read the collector's ForwardBatch.

/// Appends protobuf wire-format fields to a byte array.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: UInt32, _ wire: UInt8) { varint(UInt64(field) << 3 | UInt64(wire)) }

    mutating func varintField(_ field: UInt32, _ v: UInt64) {
        tag(field, 0)
        varint(v)
    }

    mutating func fixed64Field(_ field: UInt32, _ v: UInt64) {
        tag(field, 1)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func doubleField(_ field: UInt32, _ v: Double) { fixed64Field(field, v.bitPattern) }

    mutating func bytesField(_ field: UInt32, _ b: [UInt8]) {
        tag(field, 2)
        varint(UInt64(b.count))
        bytes.append(contentsOf: b)
    }

    mutating func stringField(_ field: UInt32, _ s: String) { bytesField(field, Array(s.utf8)) }

    /// A nested message.
    mutating func message(_ field: UInt32, _ build: (inout ProtoWriter) -> Void) {
        var w = ProtoWriter()
        build(&w)
        bytesField(field, w.bytes)
    }

    static func varintSize(_ v: UInt64) -> Int {
        var v = v
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }
}

/// OTLP AnyValue / KeyValue helpers (common.proto): KeyValue{key=1, value=2}; AnyValue{string=1,
/// bool=2, int=3, double=4, array=5 (ArrayValue{values=1})}.
enum OTLPAttr {
    static func string(_ key: String, _ value: String) -> [UInt8] {
        kv(key) { $0.stringField(1, value) }
    }
    static func int(_ key: String, _ value: Int64) -> [UInt8] {
        kv(key) { $0.varintField(3, UInt64(bitPattern: value)) }
    }
    static func double(_ key: String, _ value: Double) -> [UInt8] {
        kv(key) { $0.doubleField(4, value) }
    }
    static func stringArray(_ key: String, _ values: [String]) -> [UInt8] {
        kv(key) { v in
            v.message(5) { arr in
                for s in values { arr.message(1) { $0.stringField(1, s) } }
            }
        }
    }
    private static func kv(_ key: String, _ value: (inout ProtoWriter) -> Void) -> [UInt8] {
        var w = ProtoWriter()
        w.stringField(1, key)
        w.message(2, value)
        return w.bytes
    }
}

/// A forward-only reader over protobuf bytes.
struct ProtoReader {
    let b: UnsafeBufferPointer<UInt8>
    var i: Int
    let end: Int

    init(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) {
        self.b = b
        i = start
        self.end = end
    }

    mutating func varint() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while i < end, shift < 64 {
            let x = b[i]
            i += 1
            v |= UInt64(x & 0x7F) << shift
            if x < 0x80 { return v }
            shift += 7
        }
        return nil
    }

    enum Field {
        case varint(UInt64)
        case bytes(Int, Int)
        case fixed
    }

    /// The next field, or nil at the end; throws on malformed input.
    mutating func next() throws(Malformed) -> (UInt64, Field)? {
        guard i < end else { return nil }
        guard let tag = varint() else { throw Malformed() }
        switch tag & 7 {
        case 0:
            guard let v = varint() else { throw Malformed() }
            return (tag >> 3, .varint(v))
        case 1:
            i += 8
            guard i <= end else { throw Malformed() }
            return (tag >> 3, .fixed)
        case 5:
            i += 4
            guard i <= end else { throw Malformed() }
            return (tag >> 3, .fixed)
        case 2:
            guard let n = varint(), n <= UInt64(end - i) else { throw Malformed() }
            let s = i
            i += Int(n)
            return (tag >> 3, .bytes(s, i))
        default:
            throw Malformed()
        }
    }

    struct Malformed: Error {}
}

/// What one `evalforge.v1.ForwardBatch` holds: its spans_accepted (6) and spans_kept (7) counters,
/// the spans actually present in resource_spans (4) → scope_spans (2) → spans (2), and rollups (5)
/// with their request counts (Rollup.requests = 7).
struct ForwardBatchSummary {
    var accepted: UInt64 = 0
    var kept: UInt64 = 0
    var spansPresent = 0
    var rollupRows = 0
    var rollupRequests: UInt64 = 0

    static func read(_ bytes: [UInt8]) -> ForwardBatchSummary? {
        bytes.withUnsafeBufferPointer { b -> ForwardBatchSummary? in
            var s = ForwardBatchSummary()
            var r = ProtoReader(b, 0, b.count)
            do {
                while let (field, value) = try r.next() {
                    switch (field, value) {
                    case (6, .varint(let v)): s.accepted = v
                    case (7, .varint(let v)): s.kept = v
                    case (4, .bytes(let rs, let re)):
                        var rr = ProtoReader(b, rs, re)
                        while let (f2, v2) = try rr.next() {
                            guard f2 == 2, case .bytes(let ss, let se) = v2 else { continue }
                            var sr = ProtoReader(b, ss, se)
                            while let (f3, v3) = try sr.next() {
                                if f3 == 2, case .bytes = v3 { s.spansPresent += 1 }
                            }
                        }
                    case (5, .bytes(let rs, let re)):
                        s.rollupRows += 1
                        var rr = ProtoReader(b, rs, re)
                        while let (f2, v2) = try rr.next() {
                            if f2 == 7, case .varint(let n) = v2 { s.rollupRequests += n }
                        }
                    default: break
                    }
                }
            } catch {
                return nil
            }
            return s
        }
    }
}
