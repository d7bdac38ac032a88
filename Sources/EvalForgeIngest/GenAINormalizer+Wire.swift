#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EvalForgeCore
import EvalForgeModel

extension GenAINormalizer {
    /// Normalizes one OTLP span read straight from its protobuf bytes (`range` of `buffer`: the
    /// payload of a `ScopeSpans.spans` field) and appends the normalized span's bytes to `out`: the
    /// original bytes, minus the deprecated attributes replaced by canonical ones, plus the added
    /// canonical attributes as extra `attributes` fields at the end (repeated fields concatenate, so
    /// this decodes to the same span as `normalize(_:resource:prices:)` produces). Nothing is
    /// appended and nil is returned when the span's trace or span id is invalid; malformed bytes
    /// never trap (unreadable fields are ignored; validate the request first).
    public func normalize(spanBytes buffer: UnsafeRawBufferPointer, range: Range<Int>, resource: ResourceInfo, prices: inout PriceCache, into out: inout [UInt8]) -> SpanFacts? {
        var traceID: TraceID?
        var spanID: UInt64?
        var parent: UInt64 = 0
        var start: UInt64 = 0
        var end: UInt64 = 0
        var statusIsError = false
        var e = GenAIExtraction()
        var removed: [Range<Int>] = []
        let table = GenAIAttributeRole.byBytes

        var c = ProtobufWireCursor(buffer, range)
        while !c.isAtEnd {
            let fieldStart = c.offset
            guard let (field, wire) = c.tag() else { break }
            switch (field, wire) {
            case (1, 2):
                guard let r = c.lengthDelimited() else { return nil }
                traceID = Self.traceID(buffer, r)
            case (2, 2):
                guard let r = c.lengthDelimited() else { return nil }
                spanID = Self.id64(buffer, r)
            case (4, 2):
                guard let r = c.lengthDelimited() else { return nil }
                parent = Self.id64(buffer, r) ?? 0
            case (7, 1):
                guard let v = c.fixed64() else { return nil }
                start = v
            case (8, 1):
                guard let v = c.fixed64() else { return nil }
                end = v
            case (9, 2):
                guard let r = c.lengthDelimited() else { return nil }
                if Self.takeAttribute(buffer, r, table: table, into: &e) { removed.append(fieldStart..<r.upperBound) }
            case (15, 2):
                guard let r = c.lengthDelimited() else { return nil }
                if let code = Self.statusCode(buffer, r) { statusIsError = code == 2 }
            default:
                guard c.skip(wireType: wire) else { return nil }
            }
        }
        guard let traceID, let spanID else { return nil }
        let added = e.complete(priceTable: priceTable, prices: &prices, startUnixNanos: start)

        if removed.isEmpty {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[range]))
        } else {
            var from = range.lowerBound
            for r in removed {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[from..<r.lowerBound]))
                from = r.upperBound
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[from..<range.upperBound]))
        }
        for (key, value) in added { Self.appendAttribute(key, value, to: &out) }
        return e.facts(traceID: traceID, spanID: spanID, parentSpanID: parent, resource: resource, statusIsError: statusIsError, start: start, end: end)
    }

    @inline(__always) static func traceID(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> TraceID? {
        guard r.count == 16 else { return nil }
        let high = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: r.lowerBound, as: UInt64.self))
        let low = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: r.lowerBound + 8, as: UInt64.self))
        guard high != 0 || low != 0 else { return nil }
        return TraceID(high: high, low: low)
    }

    @inline(__always) static func id64(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64? {
        guard r.count == 8 else { return nil }
        let v = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: r.lowerBound, as: UInt64.self))
        return v == 0 ? nil : v
    }

    /// `Status.code` (last value wins), nil when absent.
    static func statusCode(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64? {
        var c = ProtobufWireCursor(b, r)
        var code: UInt64?
        while !c.isAtEnd {
            guard let (field, wire) = c.tag() else { break }
            if field == 3, wire == 0 {
                guard let v = c.varint() else { break }
                code = v
            } else if !c.skip(wireType: wire) {
                break
            }
        }
        return code
    }

    /// Reads one `KeyValue`; true when it is an attribute to remove (deprecated, or an out-of-range figure).
    @inline(__always) static func takeAttribute(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, table: WireKeyTable<GenAIAttributeRole.Entry>, into e: inout GenAIExtraction) -> Bool {
        guard let (key, values) = keyValue(b, r) else { return false }
        if let entry = table.lookup(b, key) {
            let rewrite = e.take(entry.role, WireAttributeValue(b, values))
            return entry.removed || rewrite
        }
        // Indexed message parts (`gen_ai.prompt.0.content`, `llm.input_messages.0.message.role`, …):
        // the prefix is checked on the bytes, so other keys cost no String.
        if key.count > 14, Self.hasMessagePartPrefix(UnsafeRawBufferPointer(rebasing: b[key])) {
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: b[key]), as: UTF8.self)
            e.takeMessagePart(name, WireAttributeValue(b, values).stringValue)
        }
        return false
    }

    /// The prefixes of `GenAIExtraction.isMessagePart`, on key bytes.
    static let messagePartPrefixes: [[UInt8]] = GenAIExtraction.messagePartPrefixes.map { Array($0.utf8) }

    @inline(__always) static func hasMessagePartPrefix(_ key: UnsafeRawBufferPointer) -> Bool {
        guard let first = key.first, first == UInt8(ascii: "g") || first == UInt8(ascii: "l") else { return false }
        for p in messagePartPrefixes where key.count >= p.count {
            if p.withUnsafeBytes({ q in q.elementsEqual(UnsafeRawBufferPointer(rebasing: key[0..<p.count])) }) { return true }
        }
        return false
    }

    /// The key range and the value field's payload ranges (several when the field repeats: the
    /// messages merge) of the `KeyValue` at `r`.
    @inline(__always) static func keyValue(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> (Range<Int>, ValueRanges)? {
        var c = ProtobufWireCursor(b, r)
        var key = r.lowerBound..<r.lowerBound
        var values = ValueRanges()
        while !c.isAtEnd {
            guard let (field, wire) = c.tag() else { return nil }
            if wire == 2, field == 1 || field == 2 {
                guard let p = c.lengthDelimited() else { return nil }
                if field == 1 { key = p } else { values.add(p) }
            } else if !c.skip(wireType: wire) {
                return nil
            }
        }
        return (key, values)
    }

    /// The `value` payloads of one KeyValue (almost always exactly one).
    struct ValueRanges {
        var first: Range<Int>?
        var more: [Range<Int>] = []
        mutating func add(_ r: Range<Int>) {
            if first == nil { first = r } else { more.append(r) }
        }
    }

    static func appendAttribute(_ key: String, _ value: GenAIExtraction.Added, to out: inout [UInt8]) {
        var key = key
        key.withUTF8 { k in
            var any: [UInt8] = []
            switch value {
            case .string(let s): ProtobufWireWriter.string(1, s, into: &any)
            case .bool(let v): ProtobufWireWriter.tag(2, 0, into: &any); ProtobufWireWriter.varint(v ? 1 : 0, into: &any)
            case .int(let v): ProtobufWireWriter.tag(3, 0, into: &any); ProtobufWireWriter.varint(UInt64(bitPattern: v), into: &any)
            case .double(let v): ProtobufWireWriter.fixed64(4, v.bitPattern, into: &any)
            }
            let kvLength = ProtobufWireWriter.lengthDelimitedSize(1, k.count) + ProtobufWireWriter.lengthDelimitedSize(2, any.count)
            ProtobufWireWriter.lengthDelimitedHeader(9, kvLength, into: &out)
            ProtobufWireWriter.bytes(1, UnsafeRawBufferPointer(k), into: &out)
            any.withUnsafeBytes { ProtobufWireWriter.bytes(2, $0, into: &out) }
        }
    }
}

/// An `AnyValue` on the wire: the last value field of its payload(s) wins, as when decoding.
struct WireAttributeValue: GenAIAttributeValue {
    enum Kind { case none, string, bool, int, double, other }
    var kind = Kind.none
    var bytes: UnsafeRawBufferPointer
    var string: Range<Int> = 0..<0
    var int: Int64 = 0
    var double: Double = 0

    @inline(__always) init(_ b: UnsafeRawBufferPointer, _ values: GenAINormalizer.ValueRanges) {
        bytes = b
        guard let first = values.first else { return }
        read(first)
        for r in values.more { read(r) }
    }

    @inline(__always) private mutating func read(_ r: Range<Int>) {
        var c = ProtobufWireCursor(bytes, r)
        while !c.isAtEnd {
            guard let (field, wire) = c.tag() else { return }
            switch (field, wire) {
            case (1, 2):
                guard let p = c.lengthDelimited() else { return }
                kind = .string
                string = p
            case (2, 0):
                guard let v = c.varint() else { return }
                kind = .bool
                int = v != 0 ? 1 : 0
            case (3, 0):
                guard let v = c.varint() else { return }
                kind = .int
                int = Int64(bitPattern: v)
            case (4, 1):
                guard let v = c.fixed64() else { return }
                kind = .double
                double = Double(bitPattern: v)
            case (5, 2), (6, 2), (7, 2):
                guard c.lengthDelimited() != nil else { return }
                kind = .other
            default:
                guard c.skip(wireType: wire) else { return }
            }
        }
    }

    var stringValue: String {
        kind == .string ? String(decoding: UnsafeRawBufferPointer(rebasing: bytes[string]), as: UTF8.self) : ""
    }

    var isNumber: Bool { kind == .int || kind == .double }

    var intLike: Int? {
        switch kind {
        case .int: return Int(clamping: int)
        case .double where double.isFinite && double >= -9e15 && double <= 9e15: return Int(double)
        case .string: return Int(stringValue)
        default: return nil
        }
    }

    var doubleLike: Double? {
        switch kind {
        case .double where double.isFinite: return double
        case .int: return Double(int)
        case .string: return Double(stringValue).flatMap { $0.isFinite ? $0 : nil }
        default: return nil
        }
    }
}

extension ResourceInfo {
    /// Service and project from a `Resource`'s protobuf bytes (`ranges`: the payloads of every
    /// occurrence of the field, which merge).
    public init(resourceBytes b: UnsafeRawBufferPointer, ranges: [Range<Int>], defaultProject: String) {
        var service = "unknown_service"
        var project = defaultProject
        var named: String? = nil
        for r in ranges {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                guard let (field, wire) = c.tag() else { break }
                guard field == 1, wire == 2 else {
                    if !c.skip(wireType: wire) { break }
                    continue
                }
                guard let kv = c.lengthDelimited() else { break }
                guard let (key, values) = GenAINormalizer.keyValue(b, kv) else { continue }
                if Self.equals(b, key, "service.name") {
                    service = WireAttributeValue(b, values).stringValue
                } else if Self.equals(b, key, GenAIKeys.project) {
                    let v = WireAttributeValue(b, values).stringValue
                    if !v.isEmpty { project = v; named = v }
                }
            }
        }
        self.init(service: service, project: project)
        self.namedProject = named
    }

    private static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ s: String) -> Bool {
        var s = s
        return s.withUTF8 { ProtobufWireCursor(b, r).equals(r, UnsafeRawBufferPointer($0)) }
    }
}
