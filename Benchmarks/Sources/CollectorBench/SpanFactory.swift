#if canImport(Glibc)
import Glibc
#endif

/// A small fast PRNG (SplitMix64), seeded per connection so runs are reproducible in shape.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func nonZero() -> UInt64 {
        while true {
            let v = next()
            if v != 0 { return v }
        }
    }
}

/// One pre-encoded LLM span: the complete `ScopeSpans.spans` field (tag, length, Span message) with
/// the offsets of the bytes that are rewritten for every span sent (ids, timestamps, response id).
struct SpanTemplate {
    var bytes: [UInt8]
    var traceAt = 0
    var spanAt = 0
    var parentAt = -1
    var startAt = 0
    var endAt = 0
    var responseIDAt = -1
    var durationNanos: UInt64 = 0
    var isError = false
}

/// Builds realistic GenAI client spans (OTel GenAI semantic conventions, as OpenLLMetry/OTel
/// instrumentations emit them, without EvalForge's cost attribute so the collector prices them).
enum SpanFactory {
    struct Model {
        var provider: String
        var server: String
        var request: String
        var response: String
        var idPrefix: String
        var finishReasons: [String]
        var weight: Int
    }

    static let models: [Model] = [
        Model(provider: "openai", server: "api.openai.com", request: "gpt-4o-mini", response: "gpt-4o-mini-2024-07-18", idPrefix: "chatcmpl-", finishReasons: ["stop", "length", "tool_calls"], weight: 35),
        Model(provider: "openai", server: "api.openai.com", request: "gpt-4o", response: "gpt-4o-2024-08-06", idPrefix: "chatcmpl-", finishReasons: ["stop", "length", "tool_calls"], weight: 10),
        Model(provider: "openai", server: "api.openai.com", request: "gpt-4.1-mini", response: "gpt-4.1-mini-2025-04-14", idPrefix: "chatcmpl-", finishReasons: ["stop", "length", "tool_calls"], weight: 15),
        Model(provider: "anthropic", server: "api.anthropic.com", request: "claude-sonnet-4-5", response: "claude-sonnet-4-5-20250929", idPrefix: "msg_01", finishReasons: ["end_turn", "max_tokens", "tool_use"], weight: 25),
        Model(provider: "anthropic", server: "api.anthropic.com", request: "claude-haiku-4-5", response: "claude-haiku-4-5-20251001", idPrefix: "msg_01", finishReasons: ["end_turn", "max_tokens", "tool_use"], weight: 15),
    ]

    static let words = """
        the order customer refund policy account shipping delivery invoice payment card update address \
        please help me with my question about product warranty return window days business support team \
        summarize following document section paragraph report quarterly revenue growth forecast risk \
        search results relevant context passage answer concise accurate citation source retrieved chunk \
        assistant should respond friendly professional tone language english user request clarify detail \
        tool call function weather lookup database query schema table column value null error retry
        """.split(separator: " ").map(String.init)

    /// 24 placeholder characters in the response id, rewritten per span.
    static let responseIDPlaceholder = Array(repeating: UInt8(ascii: "X"), count: 24)

    static func text(_ rng: inout SplitMix64, chars: Int) -> String {
        var s = ""
        s.reserveCapacity(chars + 16)
        while s.utf8.count < chars {
            if !s.isEmpty { s += " " }
            s += words[rng.below(words.count)]
        }
        return s
    }

    static func inputMessages(_ rng: inout SplitMix64, chars: Int) -> String {
        let system = text(&rng, chars: min(200, chars / 4))
        let user = text(&rng, chars: max(40, chars - system.utf8.count))
        return #"[{"role":"system","parts":[{"type":"text","content":"\#(system)"}]},{"role":"user","parts":[{"type":"text","content":"\#(user)"}]}]"#
    }

    static func outputMessages(_ rng: inout SplitMix64, chars: Int, finish: String) -> String {
        #"[{"role":"assistant","parts":[{"type":"text","content":"\#(text(&rng, chars: chars))"}],"finish_reason":"\#(finish)"}]"#
    }

    /// `count` templates; `child` ones carry a parent span id. About 2 % are errors (status ERROR,
    /// error.type, no response attributes).
    static func templates(count: Int, child: Bool, seed: UInt64) -> [SpanTemplate] {
        var rng = SplitMix64(seed: seed)
        let totalWeight = models.reduce(0) { $0 + $1.weight }
        return (0..<count).map { i in
            var pick = rng.below(totalWeight)
            var m = models[0]
            for candidate in models {
                if pick < candidate.weight { m = candidate; break }
                pick -= candidate.weight
            }
            let isError = i % 50 == 7  // 2 %
            var attrs: [[UInt8]] = []
            attrs.append(OTLPAttr.string("gen_ai.operation.name", "chat"))
            attrs.append(OTLPAttr.string("gen_ai.provider.name", m.provider))
            attrs.append(OTLPAttr.string("gen_ai.request.model", m.request))
            attrs.append(OTLPAttr.double("gen_ai.request.temperature", [0.0, 0.2, 0.7, 1.0][rng.below(4)]))
            attrs.append(OTLPAttr.int("gen_ai.request.max_tokens", [256, 512, 1024, 4096][rng.below(4)]))
            attrs.append(OTLPAttr.string("server.address", m.server))
            attrs.append(OTLPAttr.string("user.id", "user-\(10_000 + rng.below(2_000))"))
            attrs.append(OTLPAttr.string("session.id", "sess-\(String(rng.next(), radix: 16))"))
            let inputChars = 300 + rng.below(700)
            attrs.append(OTLPAttr.string("gen_ai.input.messages", inputMessages(&rng, chars: inputChars)))
            if isError {
                attrs.append(OTLPAttr.string("error.type", ["rate_limit_exceeded", "timeout", "server_error"][rng.below(3)]))
            } else {
                let r = rng.unit()
                let finish = r < 0.85 ? m.finishReasons[0] : r < 0.93 ? m.finishReasons[1] : m.finishReasons[2]
                attrs.append(OTLPAttr.string("gen_ai.response.model", m.response))
                attrs.append(OTLPAttr.string("gen_ai.response.id", m.idPrefix + String(decoding: responseIDPlaceholder, as: UTF8.self)))
                attrs.append(OTLPAttr.stringArray("gen_ai.response.finish_reasons", [finish]))
                let input = Int64(inputChars / 4 + 150 + rng.below(3_000))
                attrs.append(OTLPAttr.int("gen_ai.usage.input_tokens", input))
                attrs.append(OTLPAttr.int("gen_ai.usage.output_tokens", Int64(40 + rng.below(760))))
                attrs.append(OTLPAttr.int("gen_ai.usage.cache_read.input_tokens", rng.unit() < 0.3 ? input / 2 : 0))
                attrs.append(OTLPAttr.string("gen_ai.output.messages", outputMessages(&rng, chars: 80 + rng.below(270), finish: finish)))
            }
            let u = rng.unit()
            let duration = UInt64((0.3 + u * u * 7.7) * 1e9)

            var w = ProtoWriter()
            var t = SpanTemplate(bytes: [], durationNanos: duration, isError: isError)
            w.bytesField(1, [UInt8](repeating: 0, count: 16)); t.traceAt = w.bytes.count - 16
            w.bytesField(2, [UInt8](repeating: 0, count: 8)); t.spanAt = w.bytes.count - 8
            if child { w.bytesField(4, [UInt8](repeating: 0, count: 8)); t.parentAt = w.bytes.count - 8 }
            w.stringField(5, "chat \(m.request)")
            w.varintField(6, 3)  // SPAN_KIND_CLIENT
            w.fixed64Field(7, 0); t.startAt = w.bytes.count - 8
            w.fixed64Field(8, 0); t.endAt = w.bytes.count - 8
            for a in attrs { w.bytesField(9, a) }
            if isError {
                w.message(15) { s in
                    s.stringField(2, "provider returned an error")
                    s.varintField(3, 2)  // STATUS_CODE_ERROR
                }
            }
            // Wrap as the `spans` field (2) of ScopeSpans.
            var outer = ProtoWriter()
            outer.tag(2, 2)
            outer.varint(UInt64(w.bytes.count))
            let shift = outer.bytes.count
            outer.bytes.append(contentsOf: w.bytes)
            t.bytes = outer.bytes
            t.traceAt += shift
            t.spanAt += shift
            if t.parentAt >= 0 { t.parentAt += shift }
            t.startAt += shift
            t.endAt += shift
            if !isError { t.responseIDAt = find(responseIDPlaceholder, in: t.bytes) }
            return t
        }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int {
        guard hay.count >= needle.count else { return -1 }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle {
            return i
        }
        return -1
    }

    /// The request's Resource (field 1 of ResourceSpans) and InstrumentationScope (field 1 of ScopeSpans).
    static func resource(service: String) -> [UInt8] {
        var w = ProtoWriter()
        w.message(1) { r in
            r.bytesField(1, OTLPAttr.string("service.name", service))
            r.bytesField(1, OTLPAttr.string("service.version", "1.4.2"))
            r.bytesField(1, OTLPAttr.string("deployment.environment.name", "production"))
            r.bytesField(1, OTLPAttr.string("evalforge.project", "bench"))
            r.bytesField(1, OTLPAttr.string("telemetry.sdk.name", "opentelemetry"))
            r.bytesField(1, OTLPAttr.string("telemetry.sdk.language", "python"))
            r.bytesField(1, OTLPAttr.string("telemetry.sdk.version", "1.38.0"))
            r.bytesField(1, OTLPAttr.string("host.name", "app-7f9c4d-\(service)"))
        }
        return w.bytes
    }

    static func scope() -> [UInt8] {
        var w = ProtoWriter()
        w.message(1) { s in
            s.stringField(1, "opentelemetry.instrumentation.openai_v2")
            s.stringField(2, "2.1b0")
        }
        return w.bytes
    }
}

/// Assembles ExportTraceServiceRequests for one connection: fresh spans from the templates (new
/// trace/span ids, timestamps ending now, a unique response id) in traces of 1–3 spans, plus exact
/// re-sends (byte for byte) of spans this connection sent in earlier, acknowledged requests.
struct RequestBuilder {
    let roots: [SpanTemplate]
    let children: [SpanTemplate]
    let resource: [UInt8]
    let scope: [UInt8]
    let connection: UInt64
    var rng: SplitMix64
    var counter: UInt64 = 0

    /// Earlier acknowledged bodies and the byte ranges of the fresh spans in them.
    private var history: [(body: [UInt8], spans: [Range<Int>])] = []
    private let historyDepth = 8

    init(roots: [SpanTemplate], children: [SpanTemplate], service: String, connection: Int, seed: UInt64) {
        self.roots = roots
        self.children = children
        resource = SpanFactory.resource(service: service)
        scope = SpanFactory.scope()
        self.connection = UInt64(connection)
        rng = SplitMix64(seed: seed)
    }

    struct Built {
        var body: [UInt8]
        var fresh: Int
        var duplicates: Int
        var freshRanges: [Range<Int>]
    }

    private enum Item {
        case fresh(template: Int, child: Bool, trace: (UInt64, UInt64), span: UInt64, parent: UInt64, end: UInt64)
        case duplicate(history: Int, range: Range<Int>)
    }

    mutating func build(spans n: Int, duplicateFraction: Double) -> Built {
        let dupCount = history.isEmpty ? 0 : Int((Double(n) * duplicateFraction).rounded())
        var items: [Item] = []
        items.reserveCapacity(n)
        let now = Self.wallNanos()
        while items.count < n - dupCount {
            let trace = (rng.nonZero(), rng.nonZero())
            let r = rng.unit()
            let size = min(n - dupCount - items.count, r < 0.6 ? 1 : r < 0.8 ? 2 : 3)
            let rootID = rng.nonZero()
            let root = rng.below(roots.count)
            items.append(.fresh(template: root, child: false, trace: trace, span: rootID, parent: 0, end: now &- UInt64(rng.below(50_000_000))))
            for _ in 1..<max(1, size) {
                items.append(.fresh(template: rng.below(children.count), child: true, trace: trace, span: rng.nonZero(), parent: rootID, end: now &- UInt64(50_000_000 + rng.below(200_000_000))))
            }
        }
        for _ in 0..<dupCount {
            let h = rng.below(history.count)
            let ranges = history[h].spans
            items.insert(.duplicate(history: h, range: ranges[rng.below(ranges.count)]), at: rng.below(items.count + 1))
        }

        var spanBytes = 0
        for item in items {
            switch item {
            case .fresh(let t, let child, _, _, _, _): spanBytes += (child ? children[t] : roots[t]).bytes.count
            case .duplicate(_, let range): spanBytes += range.count
            }
        }
        let scopeSpansLen = scope.count + spanBytes
        let resourceSpansLen = resource.count + 1 + ProtoWriter.varintSize(UInt64(scopeSpansLen)) + scopeSpansLen
        var w = ProtoWriter()
        w.bytes.reserveCapacity(resourceSpansLen + 16)
        w.tag(1, 2)  // ExportTraceServiceRequest.resource_spans
        w.varint(UInt64(resourceSpansLen))
        w.bytes.append(contentsOf: resource)
        w.tag(2, 2)  // ResourceSpans.scope_spans
        w.varint(UInt64(scopeSpansLen))
        w.bytes.append(contentsOf: scope)
        let headerBytes = w.bytes.count
        var body = w.bytes
        w = ProtoWriter()  // `body` now owns the reserved buffer alone
        var freshRanges: [Range<Int>] = []
        freshRanges.reserveCapacity(n)
        var fresh = 0
        for item in items {
            switch item {
            case .fresh(let ti, let child, let trace, let span, let parent, let end):
                let t = child ? children[ti] : roots[ti]
                let base = body.count
                body.append(contentsOf: t.bytes)
                counter &+= 1
                let c = counter
                body.withUnsafeMutableBufferPointer { b in
                    Self.put64be(b, base + t.traceAt, trace.0)
                    Self.put64be(b, base + t.traceAt + 8, trace.1)
                    Self.put64be(b, base + t.spanAt, span)
                    if t.parentAt >= 0 { Self.put64be(b, base + t.parentAt, parent) }
                    Self.put64le(b, base + t.startAt, end &- t.durationNanos)
                    Self.put64le(b, base + t.endAt, end)
                    if t.responseIDAt >= 0 { Self.putHex(b, base + t.responseIDAt, connection, c) }
                }
                freshRanges.append(base..<body.count)
                fresh += 1
            case .duplicate(let h, let range):
                body.append(contentsOf: history[h].body[range])
            }
        }
        precondition(body.count == headerBytes + spanBytes)
        return Built(body: body, fresh: fresh, duplicates: items.count - fresh, freshRanges: freshRanges)
    }

    /// Records an acknowledged request so later requests may re-send its spans.
    mutating func acknowledged(_ b: Built) {
        guard !b.freshRanges.isEmpty else { return }
        if history.count == historyDepth { history.removeFirst() }
        history.append((b.body, b.freshRanges))
    }

    static func wallNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    @inline(__always) static func put64be(_ b: UnsafeMutableBufferPointer<UInt8>, _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64(i))) }
    }
    @inline(__always) static func put64le(_ b: UnsafeMutableBufferPointer<UInt8>, _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
    /// 24 hex digits: 8 for the connection, 16 for its counter.
    @inline(__always) static func putHex(_ b: UnsafeMutableBufferPointer<UInt8>, _ o: Int, _ conn: UInt64, _ c: UInt64) {
        let digits: StaticString = "0123456789abcdef"
        let d = digits.utf8Start
        for i in 0..<8 { b[o + i] = d[Int((conn >> (28 - 4 * UInt64(i))) & 0xF)] }
        for i in 0..<16 { b[o + 8 + i] = d[Int((c >> (60 - 4 * UInt64(i))) & 0xF)] }
    }
}
