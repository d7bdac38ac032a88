import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation
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

    @Test("mutated protobuf, gzip and JSON bodies never crash the decoders")
    func fuzz() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["EVALFORGE_FUZZ_ITERATIONS"] ?? "") ?? 100_000
        var rng = RNG(state: UInt64(ProcessInfo.processInfo.environment["EVALFORGE_FUZZ_SEED"] ?? "") ?? 0xE7A1_F0C6)
        let seeds = try Self.seeds()
        let normalizer = GenAINormalizer()
        var decoded = 0
        var refused = 0
        let jsonSeed = Array(#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","kind":3,"attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"5"}}]}]}]}]}"#.utf8)
        for i in 0..<iterations {
            var body = Self.mutate(seeds[i % seeds.count], &rng)
            var format = OTLPRequestDecoder.Format.protobuf
            if i % 10 == 7 { body = Self.mutate(jsonSeed, &rng); format = .json }
            do {
                if i % 10 == 3 { body = try Gzip.compress(body) }
                let inflated = try OTLPRequestDecoder.inflate(body, encoding: i % 10 == 3 ? "gzip" : nil, limit: 1 << 20)
                var (request, _) = try OTLPRequestDecoder.decode(inflated, format: format)
                for r in request.resourceSpans.indices {
                    let info = ResourceInfo(request.resourceSpans[r].resource, defaultProject: "p")
                    for s in request.resourceSpans[r].scopeSpans.indices {
                        for k in request.resourceSpans[r].scopeSpans[s].spans.indices {
                            _ = normalizer.normalize(&request.resourceSpans[r].scopeSpans[s].spans[k], resource: info)
                        }
                    }
                }
                decoded += 1
            } catch is CollectorError {
                refused += 1
            }
        }
        print("decoder fuzzing: \(iterations) inputs ran, \(decoded) decoded, \(refused) refused with a 4xx reason")
        #expect(decoded + refused == iterations)
        #expect(refused > iterations / 10)
    }
}
