import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import IngestOracle
import Testing

@testable import Collector

/// A long randomized test of the decoders: valid OTLP bodies mutated (bit flips, byte changes,
/// truncation, splicing, random bytes, gzip of garbage, JSON edits) must decode or be refused with
/// a CollectorError — never crash, hang or throw anything else. EVALFORGE_FUZZ_ITERATIONS sets the
/// count (default 100,000); the count that ran is printed.
@Suite("Decoder fuzzing")
struct DecoderFuzzTests {
    struct RNG: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func seeds() throws -> [[UInt8]] {
        let t = SpanFactory.traceID()
        var rich = SpanFactory.request([SpanFactory.span(trace: t, id: 1), SpanFactory.span(trace: t, id: 2, parent: 1, error: true)])
        var nested = Opentelemetry_Proto_Common_V1_KeyValue()
        nested.key = "nested"
        var list = Opentelemetry_Proto_Common_V1_ArrayValue()
        list.values = [.init(), .init()]
        list.values[0].stringValue = "a"
        list.values[1].doubleValue = 1.5
        nested.value.arrayValue = list
        rich.resourceSpans[0].scopeSpans[0].spans[0].attributes.append(nested)
        var event = Opentelemetry_Proto_Trace_V1_Span.Event()
        event.name = "gen_ai.choice"
        event.timeUnixNano = 5
        rich.resourceSpans[0].scopeSpans[0].spans[0].events = [event]
        return [try rich.serializedBytes(), try SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 9)]).serializedBytes()]
    }

    static func mutate(_ input: [UInt8], _ rng: inout RNG) -> [UInt8] {
        var b = input
        switch rng.next() % 7 {
        case 0:  // bit flips
            for _ in 0..<(1 + Int(rng.next() % 4)) where !b.isEmpty { b[Int(rng.next() % UInt64(b.count))] ^= UInt8(1 << (rng.next() % 8)) }
        case 1:  // byte replacement with interesting values
            let interesting: [UInt8] = [0x00, 0xff, 0x7f, 0x80, 0x0a, 0x12, 0x1a, 0x22, 0x08, 0x0f]
            for _ in 0..<(1 + Int(rng.next() % 3)) where !b.isEmpty { b[Int(rng.next() % UInt64(b.count))] = interesting[Int(rng.next() % UInt64(interesting.count))] }
        case 2:  // truncation
            b = Array(b.prefix(Int(rng.next() % UInt64(max(1, b.count)))))
        case 3:  // splice a chunk elsewhere
            if b.count > 4 {
                let from = Int(rng.next() % UInt64(b.count - 2))
                let len = 1 + Int(rng.next() % UInt64(min(32, b.count - from - 1)))
                let to = Int(rng.next() % UInt64(b.count))
                b.insert(contentsOf: b[from..<(from + len)], at: to)
            }
        case 4:  // huge length prefix
            if !b.isEmpty { b.insert(contentsOf: [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], at: Int(rng.next() % UInt64(b.count))) }
        case 5:  // random bytes
            b = (0..<Int(rng.next() % 256)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        default:  // deep nesting
            var nest: [UInt8] = [0x08, 0x01]
            for _ in 0..<Int(rng.next() % 200) { nest = [0x32, UInt8(min(nest.count, 127))] + nest.prefix(127) }
            b += nest
        }
        return b
    }

    /// What the collector makes of a body: validated by the wire decoder and normalized from bytes.
    /// Throws `OTLPRequestError` for what it refuses.
    static func ingestPath(_ bytes: [UInt8], normalizer: GenAINormalizer) throws -> (NormalizedRequest, [SpanFacts?], [Range<Int>], OTLPWireRequest, NormalizedOTLPRequest) {
        try bytes.withUnsafeBytes { b in
            let wire = try OTLPWireDecoder.decode(b)
            let n = NormalizedOTLPRequest.build(wire, body: b, normalizer: normalizer, defaultProject: "p")
            return (NormalizedRequest(bytes: n.bytes, scopes: n.scopes), n.spans.map(\.facts), n.spans.map(\.range), wire, n)
        }
    }

    /// Whatever the wire decoder accepts, SwiftProtobuf (the backend's decoder) must accept too, and
    /// normalizing from bytes must give the same facts and the same span as normalizing the decoded
    /// message; and the rows the backend reads from the normalized bytes (`NormalizedOTLPRequest.rows`,
    /// its direct `/v1/traces`) must be the rows of the normalized message (`SpanRow(span:)`, the
    /// oracle). Returns a description of the first difference, nil when they agree.
    static func crossCheck(_ bytes: [UInt8], normalizer: GenAINormalizer) -> String? {
        guard let (normalized, facts, ranges, wire, n) = try? ingestPath(bytes, normalizer: normalizer) else { return nil }
        guard var request = try? ExportTraceRequest(serializedBytes: bytes) else {
            return "the wire decoder accepted a body SwiftProtobuf refuses"
        }
        var rows: [SpanRow?] = []
        do {
            try n.rows(projectID: "p") { _, _, row in rows.append(row) }
        } catch {
            return "the span-row reader refused a request the wire decoder accepted: \(error)"
        }
        var i = 0
        for r in request.resourceSpans.indices {
            let info = ResourceInfo(request.resourceSpans[r].resource, defaultProject: "p")
            for s in request.resourceSpans[r].scopeSpans.indices {
                for k in request.resourceSpans[r].scopeSpans[s].spans.indices {
                    guard i < facts.count else { return "the wire decoder found fewer spans" }
                    let f = normalizer.normalize(&request.resourceSpans[r].scopeSpans[s].spans[k], resource: info)
                    if f != facts[i] { return "facts differ for span \(i): \(String(describing: f)) vs \(String(describing: facts[i]))" }
                    if f != nil {
                        let kept = KeptSpan(request: normalized, scope: Int32(wire.spans[i].scope), range: ranges[i])
                        // Compared as bytes: a NaN double attribute never equals itself.
                        let mine: [UInt8]? = try? kept.span.serializedBytes()
                        let theirs: [UInt8]? = try? request.resourceSpans[r].scopeSpans[s].spans[k].serializedBytes()
                        if mine != theirs { return "normalized span \(i) differs: \(kept.span.textFormatString()) vs \(request.resourceSpans[r].scopeSpans[s].spans[k].textFormatString())" }
                        if (try? kept.resource.serializedBytes() as [UInt8]) != (try? request.resourceSpans[r].resource.serializedBytes() as [UInt8]) { return "resource of span \(i) differs" }
                        if (try? kept.scopeMessage.serializedBytes() as [UInt8]) != (try? request.resourceSpans[r].scopeSpans[s].scope.serializedBytes() as [UInt8]) { return "scope of span \(i) differs" }
                        let oracle = SpanRow(span: request.resourceSpans[r].scopeSpans[s].spans[k], service: info.service, projectID: "p")
                        if oracle != rows[i] { return "row of span \(i) differs: \(String(describing: rows[i])) vs \(String(describing: oracle))" }
                    }
                    i += 1
                }
            }
        }
        return i == facts.count ? nil : "the wire decoder found more spans"
    }

    @Test("mutated protobuf, gzip and JSON bodies never crash the decoders")
    func fuzz() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["EVALFORGE_FUZZ_ITERATIONS"] ?? "") ?? 100_000
        var rng = RNG(state: UInt64(ProcessInfo.processInfo.environment["EVALFORGE_FUZZ_SEED"] ?? "") ?? 0xE7A1_F0C6)
        let seeds = try Self.seeds()
        let normalizer = GenAINormalizer()
        var decoded = 0
        var refused = 0
        var mismatches: [String] = []
        let jsonSeed = Array(#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","kind":3,"attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"5"}}]}]}]}]}"#.utf8)
        for i in 0..<iterations {
            var body = Self.mutate(seeds[i % seeds.count], &rng)
            var format = OTLPRequestDecoder.Format.protobuf
            if i % 10 == 7 { body = Self.mutate(jsonSeed, &rng); format = .json }
            do {
                if i % 10 == 3 { body = try Gzip.compress(body) }
                let inflated = try OTLPRequestDecoder.inflate(body, encoding: i % 10 == 3 ? "gzip" : nil, limit: 1 << 20)
                let bytes = try OTLPRequestDecoder.protobufBytes(inflated, format: format)
                _ = try Self.ingestPath(bytes, normalizer: normalizer)
                if mismatches.count < 5, let m = Self.crossCheck(bytes, normalizer: normalizer) { mismatches.append("input \(i): \(m)") }
                decoded += 1
            } catch is OTLPRequestError {
                refused += 1
            }
        }
        print("decoder fuzzing: \(iterations) inputs ran, \(decoded) decoded, \(refused) refused with a 4xx reason")
        #expect(decoded + refused == iterations)
        #expect(refused > iterations / 10)
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test("bytes and messages normalize alike: aliases, deprecated names, messages, cost")
    func wireMatchesMessages() throws {
        let t = SpanFactory.traceID()
        var legacy = SpanFactory.span(trace: t, id: 1)
        legacy.attributes = [
            SpanFactory.kv("gen_ai.system", "anthropic"), SpanFactory.kv("llm.request.model", "claude-sonnet-4-5"),
            SpanFactory.kv("gen_ai.usage.prompt_tokens", "120"), SpanFactory.kv("llm.token_count.completion", "7"),
            SpanFactory.kv("gen_ai.usage.cache_read_input_tokens", "300"), SpanFactory.kv("gen_ai.prompt.0.role", "user"),
            SpanFactory.kv("gen_ai.prompt.0.content", "hi"), SpanFactory.kv("gen_ai.completion.0.content", "hello"),
            SpanFactory.kv("llm.user", "u1"), SpanFactory.kv("error.type", "timeout"),
        ]
        var openInference = SpanFactory.span(trace: t, id: 2, parent: 1)
        openInference.attributes = [
            SpanFactory.kv("openinference.span.kind", "llm"), SpanFactory.kv("llm.provider", "openai"), SpanFactory.kv("llm.model_name", "gpt-4o-mini"),
            SpanFactory.kv("llm.token_count.total", "50"), SpanFactory.kv("llm.token_count.completion", "20"),
        ]
        var i = Opentelemetry_Proto_Common_V1_KeyValue()
        i.key = "gen_ai.usage.input_tokens"
        i.value.intValue = 9
        openInference.attributes.append(i)
        let plain = SpanFactory.span(trace: t, id: 3, parent: 1, model: "gpt-4o", input: 1000, output: 10)
        var badID = SpanFactory.span(trace: t, id: 4)
        badID.spanID = Data([0, 0, 0, 0, 0, 0, 0, 0])
        let bytes: [UInt8] = try SpanFactory.request([legacy, openInference, plain, badID]).serializedBytes()
        #expect(Self.crossCheck(bytes, normalizer: GenAINormalizer()) == nil)
        let (_, facts, _, _, _) = try Self.ingestPath(bytes, normalizer: GenAINormalizer())
        #expect(facts.count == 4 && facts[3] == nil)
        #expect(facts[0]?.provider == "anthropic" && facts[0]?.isError == true && facts[0]?.usage.input == 420)
    }

    @Test("malformed bodies are refused with a reason naming the place")
    func refusals() throws {
        func reason(_ bytes: [UInt8]) -> String {
            do { _ = try Self.ingestPath(bytes, normalizer: GenAINormalizer()); return "" } catch { return "\(error)" }
        }
        let good: [UInt8] = try SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 1)]).serializedBytes()
        #expect(reason(good) == "")
        #expect(reason(Array(good.dropLast(3))).contains("truncated"))
        #expect(reason([0x0A, 0x02, 0x12, 0x05]).contains("truncated"))
        // resource_spans sent as a varint.
        #expect(reason([0x08, 0x01]).contains("wire type varint, expected length-delimited"))
        // A span name with invalid UTF-8.
        var span = SpanFactory.span(trace: SpanFactory.traceID(), id: 1)
        span.name = "AAAA"
        var bad: [UInt8] = try SpanFactory.request([span]).serializedBytes()
        // The name's bytes: length 4, then "AAAA" (not a lone 'A', which a random id may hold).
        let name: [UInt8] = [0x04] + Array("AAAA".utf8)
        let at = try #require(bad.indices.dropLast(name.count - 1).first { bad[$0..<($0 + name.count)].elementsEqual(name) })
        bad[at + 1] = 0xC0
        #expect(reason(bad).contains("invalid UTF-8"))
        #expect(reason(bad).contains("spans[0]"))
    }
}
