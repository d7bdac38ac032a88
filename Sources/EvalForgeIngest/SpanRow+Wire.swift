import EvalForgeCore
import EvalForgeModel
import Foundation

/// Why protobuf bytes could not be read into rows; the message names the place and the problem.
public struct WireFormatError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Builds `SpanRow`s straight from OTLP protobuf bytes (normalized spans, as the collector forwards
/// them), without protobuf messages: one pass over each span that validates what it reads (lengths,
/// the wire type of every known field, UTF-8 of every string it stores, value nesting ≤ 64) and
/// gives exactly the rows the test oracle `SpanRow(span:service:projectID:)` (Tests/IngestOracle)
/// gives for the decoded message. The only span-row reader in production: forwarded batches
/// (`ForwardBatchWire`) and the backend's direct OTLP (`NormalizedOTLPRequest.rows`). Strings
/// are made once from the bytes; attributes and events JSON are written into one reused buffer.
package struct SpanRowWireReader: CheckedWireFields {
    package let b: UnsafeRawBufferPointer
    let projectID: String
    /// Scratch: the JSON being written (attributes, events, non-string content).
    private var json: [UInt8] = []
    /// Scratch: the current span's attributes that go to `attributesJSON`, in span order.
    private var other: [WireKeyValue] = []
    /// Scratch: the current span's event payloads.
    private var events: [Range<Int>] = []
    /// Where we are, for error messages (-1: not inside one): resource_spans, scope_spans, spans indices.
    package var place = (resource: -1, scope: -1, span: -1)

    static let maxDepth = 64

    package init(_ b: UnsafeRawBufferPointer, projectID: String) {
        self.b = b
        self.projectID = projectID
        json.reserveCapacity(4096)
        other.reserveCapacity(32)
    }

    package func fail(_ message: String) -> WireFormatError {
        var at = ""
        if place.resource >= 0 { at += "resource_spans[\(place.resource)]" }
        if place.scope >= 0 { at += ".scope_spans[\(place.scope)]" }
        if place.span >= 0 { at += ".spans[\(place.span)]" }
        return WireFormatError(at.isEmpty ? message : at + ": " + message)
    }

    // MARK: fields (the checked readers are `CheckedWireFields`')

    @inline(__always) func text(_ r: Range<Int>) -> String {
        r.isEmpty ? "" : String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
    }

    // MARK: resources

    /// Validates a `Resource` payload (its attributes must be readable).
    func validateResource(_ r: Range<Int>) throws {
        var c = ProtobufWireCursor(b, r)
        while !c.isAtEnd {
            let (field, wire) = try tag(&c, "Resource")
            switch field {
            case 1: _ = try keyValue(try payload(&c, wire, "Resource", field))
            case 2: try scalar(&c, wire, 0, "Resource", field)
            default: try skip(&c, wire, "Resource")
            }
        }
    }

    // MARK: spans

    /// The row of the span at `r` (a `ScopeSpans.spans` payload); nil when its trace or span id is
    /// invalid (the row is skipped, as `SpanRow(span:)` does).
    package mutating func span(_ r: Range<Int>, service: String) throws -> SpanRow? {
        var traceR: Range<Int>?
        var spanR: Range<Int>?
        var parentR: Range<Int>?
        var nameR = 0..<0
        var kind: UInt64 = 0
        var start: UInt64 = 0
        var end: UInt64 = 0
        var statusMessageR = 0..<0
        var statusCode: UInt64 = 0

        var operation = "", provider = "", model = "", userID = "", sessionID = "", errorMessage = ""
        var input = "", output = ""
        var inputTokens: Int64 = 0, outputTokens: Int64 = 0, cacheRead: Int64 = 0, cacheCreation: Int64 = 0, reasoning: Int64 = 0
        var cost: Double?
        var costUnknown = false
        var ttft: Int64?
        var tags: [String] = []
        other.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        let table = SpanRowWireReader.columns

        var c = ProtobufWireCursor(b, r)
        while !c.isAtEnd {
            let (field, wire) = try tag(&c, "Span")
            switch field {
            case 1: traceR = try payload(&c, wire, "Span", field)
            case 2: spanR = try payload(&c, wire, "Span", field)
            case 3: _ = try string(&c, wire, "Span", field)
            case 4: parentR = try payload(&c, wire, "Span", field)
            case 5: nameR = try string(&c, wire, "Span", field)
            case 6: kind = try varint(&c, wire, "Span", field)
            case 7: start = try fixed64(&c, wire, "Span", field)
            case 8: end = try fixed64(&c, wire, "Span", field)
            case 9:
                let kv = try keyValue(try payload(&c, wire, "Span", field))
                let v = kv.value
                switch table.lookup(b, kv.key) {
                case .operation?: operation = stringValue(v)
                case .provider?: provider = stringValue(v)
                case .requestModel?: model = stringValue(v)
                case .responseModel?:
                    if model.isEmpty { model = stringValue(v) }
                    other.append(kv)
                case .inputTokens?: inputTokens = int64Like(v) ?? 0
                case .outputTokens?: outputTokens = int64Like(v) ?? 0
                case .cacheReadTokens?: cacheRead = int64Like(v) ?? 0
                case .cacheCreationTokens?: cacheCreation = int64Like(v) ?? 0
                case .reasoningTokens?: reasoning = int64Like(v) ?? 0
                case .costUSD?: cost = doubleLike(v)
                case .costUnknown?: costUnknown = v.kind == .bool && v.int != 0
                case .timeToFirstChunk?:
                    if let seconds = doubleLike(v) { ttft = SpanRow.ttftNanos(seconds: seconds) }
                case .userID?: userID = stringValue(v)
                case .sessionID?: sessionID = stringValue(v)
                case .tags?: tags = try tagList(v)
                case .inputMessages?: input = try content(v)
                case .outputMessages?: output = try content(v)
                case .errorMessage?: errorMessage = stringValue(v)
                case nil: other.append(kv)
                }
            case 10, 12, 14: try scalar(&c, wire, 0, "Span", field)
            case 11: events.append(try payload(&c, wire, "Span", field))
            case 13: _ = try payload(&c, wire, "Span", field)
            case 15:
                var s = ProtobufWireCursor(b, try payload(&c, wire, "Span", field))
                while !s.isAtEnd {
                    let (f, w) = try tag(&s, "Status")
                    switch f {
                    case 2: statusMessageR = try string(&s, w, "Status", f)
                    case 3: statusCode = try varint(&s, w, "Status", f)
                    default: try skip(&s, w, "Status")
                    }
                }
            case 16: try scalar(&c, wire, 5, "Span", field)
            default: try skip(&c, wire, "Span")
            }
        }

        guard let traceR, traceR.count == 16, !isZero(traceR), let spanR, spanR.count == 8, !isZero(spanR) else {
            // Still read the events, so a malformed event is an error whether or not the ids are valid.
            for e in events { _ = try event(e) }
            return nil
        }
        let parent = parentR.flatMap { $0.count == 8 && !isZero($0) ? hex($0) : nil } ?? ""
        let startNanos = Int64(clamping: start)
        let endNanos = Int64(clamping: end)
        var statusMessage = text(statusMessageR)
        if statusMessage.isEmpty, !errorMessage.isEmpty { statusMessage = errorMessage }

        json.removeAll(keepingCapacity: true)
        try object(other)
        let attributesJSON = String(decoding: json, as: UTF8.self)
        var eventsJSON = "[]"
        if !events.isEmpty {
            json.removeAll(keepingCapacity: true)
            json.append(UInt8(ascii: "["))
            for (i, e) in events.enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                let ev = try event(e)
                appendASCII("{\"name\":")
                quote(ev.name)
                appendASCII(",\"timeUnixNano\":")
                decimal(ev.time)
                appendASCII(",\"attributes\":")
                try object(ev.attributes)
                json.append(UInt8(ascii: "}"))
            }
            json.append(UInt8(ascii: "]"))
            eventsJSON = String(decoding: json, as: UTF8.self)
        }

        var row = SpanRow(
            projectID: projectID, traceID: hex(traceR), spanID: hex(spanR), parentSpanID: parent,
            startUnixNanos: startNanos, durationNanos: max(0, endNanos &- startNanos),
            service: service, name: text(nameR),
            kind: SpanKind(rawValue: Int8(clamping: Int32(truncatingIfNeeded: kind))) ?? .unspecified,
            status: SpanStatus(rawValue: Int8(clamping: Int32(truncatingIfNeeded: statusCode))) ?? .unset,
            statusMessage: statusMessage, operation: operation, provider: provider, model: model,
            inputTokens: inputTokens, outputTokens: outputTokens, cacheReadTokens: cacheRead, cacheCreationTokens: cacheCreation,
            reasoningTokens: reasoning, costUSD: costUnknown ? nil : cost, ttftNanos: ttft,
            userID: userID, sessionID: sessionID, tags: tags, attributesJSON: attributesJSON,
            input: input, output: output, eventsJSON: eventsJSON)
        row.clampNumbers()
        return row
    }

    private func event(_ r: Range<Int>) throws -> (name: Range<Int>, time: UInt64, attributes: [WireKeyValue]) {
        var c = ProtobufWireCursor(b, r)
        var name = 0..<0
        var time: UInt64 = 0
        var attributes: [WireKeyValue] = []
        while !c.isAtEnd {
            let (field, wire) = try tag(&c, "Span.Event")
            switch field {
            case 1: time = try fixed64(&c, wire, "Span.Event", field)
            case 2: name = try string(&c, wire, "Span.Event", field)
            case 3: attributes.append(try keyValue(try payload(&c, wire, "Span.Event", field)))
            case 4: try scalar(&c, wire, 0, "Span.Event", field)
            default: try skip(&c, wire, "Span.Event")
            }
        }
        return (name, time, attributes)
    }

    // MARK: attribute values

    /// A `KeyValue`: the key (last occurrence wins) and the value (occurrences merge, as protobuf
    /// merges a repeated message field).
    func keyValue(_ r: Range<Int>, depth: Int = 0) throws -> WireKeyValue {
        var c = ProtobufWireCursor(b, r)
        var kv = WireKeyValue()
        while !c.isAtEnd {
            let (field, wire) = try tag(&c, "KeyValue")
            switch field {
            case 1: kv.key = try string(&c, wire, "KeyValue", field)
            case 2: try anyValue(try payload(&c, wire, "KeyValue", field), into: &kv.value, depth: depth + 1)
            default: try skip(&c, wire, "KeyValue")
            }
        }
        return kv
    }

    /// Reads one `AnyValue` payload into `v` (merging: a later scalar replaces, arrays and key-value
    /// lists of the same kind concatenate); nested lists are validated now.
    func anyValue(_ r: Range<Int>, into v: inout WireAnyValue, depth: Int) throws {
        guard depth <= Self.maxDepth else { throw fail("attribute values nested more than \(Self.maxDepth) deep") }
        var c = ProtobufWireCursor(b, r)
        while !c.isAtEnd {
            let (field, wire) = try tag(&c, "AnyValue")
            switch field {
            case 1:
                v.kind = .string
                v.range = try string(&c, wire, "AnyValue", field)
            case 2:
                v.kind = .bool
                v.int = try varint(&c, wire, "AnyValue", field) != 0 ? 1 : 0
            case 3:
                v.kind = .int
                v.int = Int64(bitPattern: try varint(&c, wire, "AnyValue", field))
            case 4:
                v.kind = .double
                v.double = Double(bitPattern: try fixed64(&c, wire, "AnyValue", field))
            case 5, 6:
                let p = try payload(&c, wire, "AnyValue", field)
                let kind: WireAnyValue.Kind = field == 5 ? .array : .kvlist
                try validateList(p, kind: kind, depth: depth)
                if v.kind == kind {
                    v.lists.append(p)
                } else {
                    v.kind = kind
                    v.lists = WireRanges(p)
                }
            case 7:
                v.kind = .bytes
                v.range = try payload(&c, wire, "AnyValue", field)
            default: try skip(&c, wire, "AnyValue")
            }
        }
    }

    private func validateList(_ r: Range<Int>, kind: WireAnyValue.Kind, depth: Int) throws {
        let name: StaticString = kind == .array ? "ArrayValue" : "KeyValueList"
        var c = ProtobufWireCursor(b, r)
        while !c.isAtEnd {
            let (field, wire) = try tag(&c, name)
            if field == 1 {
                let item = try payload(&c, wire, name, field)
                if kind == .array {
                    var element = WireAnyValue()
                    try anyValue(item, into: &element, depth: depth + 1)
                } else {
                    _ = try keyValue(item, depth: depth)
                }
            } else {
                try skip(&c, wire, name)
            }
        }
    }

    /// Calls `body` with each element payload (field 1) of the merged lists of `v`.
    private func forEachElement(_ v: WireAnyValue, _ body: (Range<Int>) throws -> Void) throws {
        try v.lists.forEach { r in
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                guard let (field, wire) = c.tag() else { throw fail("list: malformed tag") }
                if field == 1, wire == 2, let item = c.lengthDelimited() {
                    try body(item)
                } else if !c.skip(wireType: wire) {
                    throw fail("list: truncated")
                }
            }
        }
    }

    @inline(__always) func stringValue(_ v: WireAnyValue) -> String { v.kind == .string ? text(v.range) : "" }

    func int64Like(_ v: WireAnyValue) -> Int64? {
        switch v.kind {
        case .int: return v.int
        case .double: return v.double.isFinite ? Int64(exactly: v.double.rounded()) : nil
        case .string: return Int64(text(v.range))
        default: return nil
        }
    }

    func doubleLike(_ v: WireAnyValue) -> Double? {
        switch v.kind {
        case .double: return v.double
        case .int: return Double(v.int)
        case .string: return Double(text(v.range))
        default: return nil
        }
    }

    private func tagList(_ v: WireAnyValue) throws -> [String] {
        switch v.kind {
        case .array:
            var out: [String] = []
            try forEachElement(v) { item in
                var element = WireAnyValue()
                try anyValue(item, into: &element, depth: 1)
                let s = stringValue(element)
                if !s.isEmpty { out.append(s) }
            }
            return out
        case .string:
            return text(v.range).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        default: return []
        }
    }

    private mutating func content(_ v: WireAnyValue) throws -> String {
        if v.kind == .string { return text(v.range) }
        json.removeAll(keepingCapacity: true)
        try value(v, depth: 0)
        return String(decoding: json, as: UTF8.self)
    }

    // MARK: JSON (byte for byte what `AttributeJSON` writes for the decoded values)

    /// A JSON object of `pairs`: a repeated key keeps its last value, in first-seen order.
    private mutating func object(_ pairs: [WireKeyValue], depth: Int = 0) throws {
        if pairs.isEmpty {
            appendASCII("{}")
            return
        }
        json.append(UInt8(ascii: "{"))
        var first = true
        if pairs.count <= 32 {
            for i in pairs.indices {
                let key = pairs[i].key
                var seen = false
                for j in 0..<i where sameKey(pairs[j].key, key) {
                    seen = true
                    break
                }
                if seen { continue }
                var last = i
                for j in (i + 1)..<pairs.count where sameKey(pairs[j].key, key) { last = j }
                if !first { json.append(UInt8(ascii: ",")) }
                first = false
                quote(key)
                json.append(UInt8(ascii: ":"))
                try value(pairs[last].value, depth: depth)
            }
        } else {
            var last: [String: Int] = [:]
            for (i, p) in pairs.enumerated() { last[text(p.key)] = i }
            var done = Set<String>()
            for p in pairs {
                let k = text(p.key)
                guard done.insert(k).inserted, let at = last[k] else { continue }
                if !first { json.append(UInt8(ascii: ",")) }
                first = false
                quote(p.key)
                json.append(UInt8(ascii: ":"))
                try value(pairs[at].value, depth: depth)
            }
        }
        json.append(UInt8(ascii: "}"))
    }

    private mutating func value(_ v: WireAnyValue, depth: Int) throws {
        guard depth <= Self.maxDepth else { throw fail("attribute values nested more than \(Self.maxDepth) deep") }
        switch v.kind {
        case .none: appendASCII("null")
        case .string: quote(v.range)
        case .bool: appendASCII(v.int != 0 ? "true" : "false")
        case .int:
            if v.int < 0 { json.append(UInt8(ascii: "-")) }
            decimal(v.int.magnitude)
        case .double:
            if v.double.isFinite {
                appendASCII(String(v.double))
            } else {
                quoteString(String(v.double))
            }
        case .bytes:
            quoteString(Data(UnsafeRawBufferPointer(rebasing: b[v.range])).base64EncodedString())
        case .array:
            json.append(UInt8(ascii: "["))
            var first = true
            var elements: [Range<Int>] = []
            try forEachElement(v) { elements.append($0) }
            for item in elements {
                if !first { json.append(UInt8(ascii: ",")) }
                first = false
                var element = WireAnyValue()
                try anyValue(item, into: &element, depth: depth + 1)
                try value(element, depth: depth + 1)
            }
            json.append(UInt8(ascii: "]"))
        case .kvlist:
            var pairs: [WireKeyValue] = []
            var items: [Range<Int>] = []
            try forEachElement(v) { items.append($0) }
            for item in items { pairs.append(try keyValue(item, depth: depth + 1)) }
            try object(pairs, depth: depth + 1)
        }
    }

    @inline(__always) private func sameKey(_ x: Range<Int>, _ y: Range<Int>) -> Bool {
        x.count == y.count && ProtobufWireCursor(b, x).equals(x, UnsafeRawBufferPointer(rebasing: b[y]))
    }

    @inline(__always) private mutating func appendASCII(_ s: StaticString) {
        json.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    private mutating func appendASCII(_ s: String) {
        json.append(contentsOf: s.utf8)
    }

    private mutating func decimal(_ v: UInt64) {
        if v < 10 {
            json.append(UInt8(truncatingIfNeeded: v) + 48)
            return
        }
        let from = json.count
        var x = v
        while x > 0 {
            json.append(UInt8(truncatingIfNeeded: x % 10) + 48)
            x /= 10
        }
        json[from...].reverse()
    }

    /// `JSONString.quote` of the (valid UTF-8) bytes at `r`.
    private mutating func quote(_ r: Range<Int>) {
        json.append(UInt8(ascii: "\""))
        var run = r.lowerBound
        var i = r.lowerBound
        while i < r.upperBound {
            let c = b[i]
            if c >= 0x20 && c != 0x22 && c != 0x5C {
                i += 1
                continue
            }
            if run < i { json.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[run..<i])) }
            escape(c)
            i += 1
            run = i
        }
        if run < r.upperBound { json.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[run..<r.upperBound])) }
        json.append(UInt8(ascii: "\""))
    }

    private mutating func quoteString(_ s: String) {
        json.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            if c >= 0x20 && c != 0x22 && c != 0x5C { json.append(c) } else { escape(c) }
        }
        json.append(UInt8(ascii: "\""))
    }

    @inline(__always) private mutating func escape(_ c: UInt8) {
        switch c {
        case 0x22: appendASCII("\\\"")
        case 0x5C: appendASCII("\\\\")
        case 0x0A: appendASCII("\\n")
        case 0x0D: appendASCII("\\r")
        case 0x09: appendASCII("\\t")
        default:
            appendASCII("\\u00")
            json.append(Self.hexDigit(c >> 4))
            json.append(Self.hexDigit(c & 15))
        }
    }

    // MARK: ids

    @inline(__always) static func hexDigit(_ d: UInt8) -> UInt8 { d < 10 ? 48 + d : 87 + d }

    @inline(__always) private func isZero(_ r: Range<Int>) -> Bool {
        for i in r where b[i] != 0 { return false }
        return true
    }

    /// Lowercase hex of the bytes at `r` (ids: 8 or 16 bytes).
    @inline(__always) func hex(_ r: Range<Int>) -> String {
        let b = b
        return String(unsafeUninitializedCapacity: r.count * 2) { out in
            var o = 0
            for i in r {
                out[o] = Self.hexDigit(b[i] >> 4)
                out[o + 1] = Self.hexDigit(b[i] & 15)
                o += 2
            }
            return o
        }
    }

    // MARK: the columns read from attributes

    enum Column: Sendable {
        case operation, provider, requestModel, responseModel
        case inputTokens, outputTokens, cacheReadTokens, cacheCreationTokens, reasoningTokens
        case costUSD, costUnknown, timeToFirstChunk, userID, sessionID, tags, inputMessages, outputMessages, errorMessage
    }

    static let columns = WireKeyTable<Column>([
        (GenAIKeys.operationName, .operation), (GenAIKeys.providerName, .provider),
        (GenAIKeys.requestModel, .requestModel), (GenAIKeys.responseModel, .responseModel),
        (GenAIKeys.usageInputTokens, .inputTokens), (GenAIKeys.usageOutputTokens, .outputTokens),
        (GenAIKeys.usageCacheReadInputTokens, .cacheReadTokens), (GenAIKeys.usageCacheCreationInputTokens, .cacheCreationTokens),
        (GenAIKeys.usageReasoningOutputTokens, .reasoningTokens), (GenAIKeys.costUSD, .costUSD), (GenAIKeys.costUnknown, .costUnknown),
        (GenAIKeys.timeToFirstChunk, .timeToFirstChunk), (GenAIKeys.userID, .userID), (GenAIKeys.sessionID, .sessionID),
        (GenAIKeys.tags, .tags), (GenAIKeys.inputMessages, .inputMessages), (GenAIKeys.outputMessages, .outputMessages),
        (GenAIKeys.errorMessage, .errorMessage),
    ])
}

/// One `KeyValue` on the wire.
struct WireKeyValue {
    var key = 0..<0
    var value = WireAnyValue()
}

/// An `AnyValue` on the wire, after merging every payload of it.
struct WireAnyValue {
    enum Kind: UInt8 { case none, string, bool, int, double, array, kvlist, bytes }
    var kind = Kind.none
    /// String or bytes payload.
    var range = 0..<0
    /// Int value, or 0/1 for a bool.
    var int: Int64 = 0
    var double: Double = 0
    /// Payloads of the array or key-value list (several when the field repeats: they concatenate).
    var lists = WireRanges()
}

/// Usually one range, without an allocation.
struct WireRanges {
    var first: Range<Int>?
    var more: [Range<Int>] = []

    init() {}
    init(_ r: Range<Int>) { first = r }

    mutating func append(_ r: Range<Int>) {
        if first == nil { first = r } else { more.append(r) }
    }

    func forEach(_ body: (Range<Int>) throws -> Void) rethrows {
        guard let first else { return }
        try body(first)
        for r in more { try body(r) }
    }
}

extension SpanRow {
    /// Time to first chunk in nanoseconds from seconds; nil when negative, not finite or beyond Int64.
    package static func ttftNanos(seconds: Double) -> Int64? {
        guard seconds.isFinite, seconds >= 0 else { return nil }
        return Int64(exactly: (seconds * 1e9).rounded(.towardZero))
    }
}
