import EvalForgeIngest
@testable import EvalForgeStore
import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import IngestOracle
import Logging
import Testing

/// The byte-level reader of forwarded batches (`ForwardBatchWire`) against the SwiftProtobuf path it
/// replaced (decode the message, then `SpanRow.rows(from:projectID:)`): the same rows for varied
/// batches, including wire layouts a serializer never writes but a decoder must merge; a clear error
/// and no crash for malformed input; and the rows it makes stored and read back alike on every store.
@Suite("Forwarded batch wire decoding")
struct ForwardBatchWireTests {
    // MARK: the reference path

    /// What the backend did before: SwiftProtobuf messages, then rows.
    static func messagePath(_ bytes: [UInt8], projectID: String) throws -> StoreBatch {
        let message = try Evalforge_V1_ForwardBatch(serializedBytes: bytes)
        var spans: [SpanRow] = []
        for rs in message.resourceSpans { spans += SpanRow.rows(from: rs, projectID: projectID) }
        var rollups: [RollupRow] = []
        for r in message.rollups {
            guard let (decodedKey, value) = RollupCoding.rollup(r) else { throw WireFormatError("bad rollup") }
            var key = decodedKey
            key.project = projectID
            rollups.append(RollupRow(key: key, value: value))
        }
        return StoreBatch(projectID: projectID, batchID: message.batchID, spans: spans, rollups: rollups)
    }

    /// Rows equal, a NaN cost equal to a NaN cost.
    static func same(_ a: SpanRow, _ b: SpanRow) -> Bool {
        var a = a, b = b
        if a.costUSD?.isNaN == true, b.costUSD?.isNaN == true { a.costUSD = 0; b.costUSD = 0 }
        return a == b
    }

    static func expectSame(_ wire: StoreBatch, _ message: StoreBatch, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(wire.batchID == message.batchID, "\(context)", sourceLocation: sourceLocation)
        #expect(wire.spans.count == message.spans.count, "\(context): span count", sourceLocation: sourceLocation)
        for (i, (w, m)) in zip(wire.spans, message.spans).enumerated() where !same(w, m) {
            Issue.record("\(context): span \(i) differs:\n wire:    \(w)\n message: \(m)", sourceLocation: sourceLocation)
            break
        }
        #expect(wire.rollups == message.rollups, "\(context): rollups", sourceLocation: sourceLocation)
    }

    // MARK: generating batches

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

    static let strings = ["", "plain", "quote\"and\\back", "ctl\u{01}\u{1F}\n\r\t\u{7F}", "unicode ✓ 日本 🚀", "42", "-7", "3.5", "1e400",
                          " a, b ,,c ", "gpt-4o-mini", "claude-haiku-4-5", "{\"json\":true}", "x"]
    static let knownKeys = [GenAIKeys.operationName, GenAIKeys.providerName, GenAIKeys.requestModel, GenAIKeys.responseModel,
                            GenAIKeys.usageInputTokens, GenAIKeys.usageOutputTokens, GenAIKeys.usageCacheReadInputTokens,
                            GenAIKeys.usageCacheCreationInputTokens, GenAIKeys.usageReasoningOutputTokens, GenAIKeys.costUSD,
                            GenAIKeys.costUnknown, GenAIKeys.timeToFirstChunk, GenAIKeys.userID, GenAIKeys.sessionID, GenAIKeys.tags,
                            GenAIKeys.inputMessages, GenAIKeys.outputMessages, GenAIKeys.errorMessage]
    static let otherKeys = ["server.address", "gen_ai.response.id", "evalforge.metadata.tier", "k", "ünïcode.key", "quote\"key", "", "evalforge.content.truncated"]

    typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue
    typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
    typealias Span = Opentelemetry_Proto_Trace_V1_Span

    static func value(_ r: inout RNG, depth: Int = 0) -> AnyValue {
        var v = AnyValue()
        switch Int.random(in: 0..<(depth < 3 ? 10 : 7), using: &r) {
        case 0: break  // no value: null
        case 1, 2: v.stringValue = strings.randomElement(using: &r) ?? ""
        case 3: v.intValue = [0, 1, -1, 420, Int64.max, Int64.min, 1_000_000_007].randomElement(using: &r) ?? 0
        case 4: v.doubleValue = [0.1, -2.5e-7, 1e300, 100, 12_345_678.9, .nan, .infinity, -.infinity, 0.75].randomElement(using: &r) ?? 0
        case 5: v.boolValue = Bool.random(using: &r)
        case 6: v.bytesValue = Data((0..<Int.random(in: 0..<6, using: &r)).map { _ in UInt8.random(in: 0...255, using: &r) })
        case 7, 8:
            var a = Opentelemetry_Proto_Common_V1_ArrayValue()
            a.values = (0..<Int.random(in: 0..<4, using: &r)).map { _ in value(&r, depth: depth + 1) }
            v.arrayValue = a
        default:
            var l = Opentelemetry_Proto_Common_V1_KeyValueList()
            l.values = (0..<Int.random(in: 0..<4, using: &r)).map { _ in
                var kv = KeyValue()
                kv.key = ["a", "b", "a", "c d"].randomElement(using: &r) ?? "a"
                kv.value = value(&r, depth: depth + 1)
                return kv
            }
            v.kvlistValue = l
        }
        return v
    }

    static func id(_ r: inout RNG, _ n: Int) -> Data {
        switch Int.random(in: 0..<20, using: &r) {
        case 0: return Data(repeating: 0, count: n)
        case 1: return Data(repeating: 7, count: n - 1)
        default: return Data((0..<n).map { _ in UInt8.random(in: 0...255, using: &r) })
        }
    }

    static func span(_ r: inout RNG) -> Span {
        var s = Span()
        s.traceID = id(&r, 16)
        s.spanID = id(&r, 8)
        if Bool.random(using: &r) { s.parentSpanID = id(&r, 8) }
        s.name = strings.randomElement(using: &r) ?? ""
        s.kind = Span.SpanKind(rawValue: [0, 1, 2, 3, 4, 5, 99].randomElement(using: &r) ?? 0) ?? .unspecified
        s.startTimeUnixNano = [UInt64(1_767_225_600_000_000_000), UInt64.max, 5].randomElement(using: &r) ?? 0
        s.endTimeUnixNano = s.startTimeUnixNano &+ UInt64.random(in: 0...3_000_000_000, using: &r)
        if Int.random(in: 0..<5, using: &r) == 0 { s.endTimeUnixNano = 1 }
        s.status.code = Opentelemetry_Proto_Trace_V1_Status.StatusCode(rawValue: [0, 1, 2, 9].randomElement(using: &r) ?? 0) ?? .unset
        if Bool.random(using: &r) { s.status.message = strings.randomElement(using: &r) ?? "" }
        for _ in 0..<Int.random(in: 0..<16, using: &r) {
            var kv = KeyValue()
            kv.key = (Bool.random(using: &r) ? knownKeys : otherKeys).randomElement(using: &r) ?? ""
            kv.value = value(&r)
            s.attributes.append(kv)
        }
        for _ in 0..<Int.random(in: 0..<3, using: &r) {
            var e = Span.Event()
            e.name = strings.randomElement(using: &r) ?? ""
            e.timeUnixNano = UInt64.random(in: 0...UInt64.max, using: &r)
            e.attributes = (0..<Int.random(in: 0..<3, using: &r)).map { _ in
                var kv = KeyValue()
                kv.key = otherKeys.randomElement(using: &r) ?? ""
                kv.value = value(&r)
                return kv
            }
            s.events.append(e)
        }
        if Int.random(in: 0..<4, using: &r) == 0 {
            var l = Span.Link()
            l.traceID = id(&r, 16)
            l.spanID = id(&r, 8)
            s.links.append(l)
        }
        return s
    }

    static func ld(_ field: UInt64, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        ProtobufWireWriter.tag(field, 2, into: &out)
        ProtobufWireWriter.varint(UInt64(payload.count), into: &out)
        return out + payload
    }

    /// One span's bytes, sometimes followed by fields that merge into it (a repeated attribute value
    /// that merges, a second status).
    static func spanBytes(_ r: inout RNG) throws -> [UInt8] {
        var bytes: [UInt8] = try span(&r).serializedBytes()
        if Int.random(in: 0..<3, using: &r) == 0 {
            var first = KeyValue()
            first.key = (Bool.random(using: &r) ? knownKeys : otherKeys).randomElement(using: &r) ?? ""
            first.value = value(&r)
            var second = KeyValue()
            second.value = value(&r)
            bytes += ld(9, try first.serializedBytes() + second.serializedBytes())
        }
        if Int.random(in: 0..<4, using: &r) == 0 {
            var status = Opentelemetry_Proto_Trace_V1_Status()
            status.code = .error
            bytes += ld(15, try status.serializedBytes())
        }
        return bytes
    }

    static func resource(_ r: inout RNG) -> Opentelemetry_Proto_Resource_V1_Resource {
        var res = Opentelemetry_Proto_Resource_V1_Resource()
        if Int.random(in: 0..<4, using: &r) > 0 {
            var kv = KeyValue()
            kv.key = "service.name"
            kv.value.stringValue = ["checkout", "", "ünï"].randomElement(using: &r) ?? "checkout"
            res.attributes.append(kv)
        }
        var p = KeyValue()
        p.key = GenAIKeys.project
        p.value.stringValue = "from-the-span"
        res.attributes.append(p)
        return res
    }

    /// A forwarded batch as bytes: resources before or after their scopes, several scopes, rollups.
    static func batchBytes(seed: UInt64, spans: Int = 12) throws -> [UInt8] {
        var r = RNG(state: seed)
        var out = ld(1, Array("c-\(seed)-1-\(spans)".utf8))
        var left = spans
        var rsCount = 0
        while left > 0 || rsCount == 0 {
            var scopes: [UInt8] = []
            for _ in 0..<Int.random(in: 1...2, using: &r) {
                var scope = ld(1, try Opentelemetry_Proto_Common_V1_InstrumentationScope.with { $0.name = "evalforge" }.serializedBytes())
                for _ in 0..<min(left, Int.random(in: 0...6, using: &r)) {
                    scope += ld(2, try spanBytes(&r))
                    left -= 1
                }
                scopes += ld(2, scope)
            }
            let res = ld(1, try resource(&r).serializedBytes())
            out += ld(4, Bool.random(using: &r) ? res + scopes : scopes + res)
            rsCount += 1
        }
        var table = RollupTable()
        for i in 0..<3 {
            table.add(SpanFacts(traceID: TraceID(high: 1, low: UInt64(i + 1)), spanID: UInt64(i + 1), project: "p", service: "checkout",
                                provider: "openai", model: "gpt-4o-mini", operation: "chat", isLLMCall: true, isError: i == 2,
                                startUnixNanos: 1_767_225_600_000_000_000, endUnixNanos: 1_767_225_601_000_000_000,
                                usage: TokenUsage(input: 100, output: 20), costUSD: 0.001, timeToFirstChunkSeconds: 0.2))
        }
        for row in table.rows { out += ld(5, try RollupCoding.proto(key: row.key, value: row.value).serializedBytes()) }
        ProtobufWireWriter.tag(7, 0, into: &out)
        ProtobufWireWriter.varint(UInt64(spans), into: &out)
        return out
    }

    // MARK: tests

    @Test("the byte-level reader gives the SwiftProtobuf path's rows for varied batches")
    func sameRowsAsMessages() throws {
        var spans = 0
        for seed in UInt64(1)...300 {
            let bytes = try Self.batchBytes(seed: seed)
            let message = try Self.messagePath(bytes, projectID: "proj")
            let wire = try ForwardBatchWire.decode(bytes, projectID: "proj")
            Self.expectSame(wire, message, "seed \(seed)")
            #expect(wire.spans.allSatisfy { $0.projectID == "proj" })
            #expect(wire.rollups.allSatisfy { $0.key.project == "proj" })
            spans += wire.spans.count
        }
        #expect(spans > 2_000)  // most generated ids are valid: the comparison covered real rows
    }

    @Test("the SDK's own spans (what the load generator sends) decode alike")
    func realisticBatch() throws {
        var b = Evalforge_V1_ForwardBatch()
        b.batchID = "c-1-1-2"
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        var r = RNG(state: 42)
        rs.resource = Self.resource(&r)
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        for i in 0..<50 {
            var s = Span()
            s.traceID = Data((0..<16).map { UInt8(($0 + i) % 250 + 1) })
            s.spanID = Data((0..<8).map { UInt8(($0 * 3 + i) % 250 + 1) })
            s.name = "chat gpt-4o-mini"
            s.kind = .client
            s.startTimeUnixNano = 1_767_225_600_000_000_000 + UInt64(i)
            s.endTimeUnixNano = s.startTimeUnixNano + 900_000_000
            func kv(_ k: String, _ set: (inout AnyValue) -> Void) -> KeyValue {
                var kv = KeyValue()
                kv.key = k
                set(&kv.value)
                return kv
            }
            s.attributes = [
                kv(GenAIKeys.operationName) { $0.stringValue = "chat" }, kv(GenAIKeys.providerName) { $0.stringValue = "openai" },
                kv(GenAIKeys.requestModel) { $0.stringValue = "gpt-4o-mini" }, kv(GenAIKeys.usageInputTokens) { $0.intValue = 420 },
                kv(GenAIKeys.usageOutputTokens) { $0.intValue = 96 }, kv(GenAIKeys.usageCacheReadInputTokens) { $0.intValue = 128 },
                kv(GenAIKeys.costUSD) { $0.doubleValue = 0.000123 }, kv(GenAIKeys.userID) { $0.stringValue = "user-\(i)" },
                kv(GenAIKeys.sessionID) { $0.stringValue = "session-\(i / 4)" }, kv("server.address") { $0.stringValue = "api.openai.com" },
                kv(GenAIKeys.inputMessages) { $0.stringValue = "[{\"role\":\"user\",\"content\":\"Summarise \\\"this\\\"\\n\"}]" },
                kv(GenAIKeys.outputMessages) { $0.stringValue = "[{\"role\":\"assistant\",\"content\":\"ok\"}]" },
                kv(GenAIKeys.tags) { $0.arrayValue.values = [AnyValue.with { $0.stringValue = "a" }, AnyValue.with { $0.stringValue = "" }] },
            ]
            scope.spans.append(s)
        }
        rs.scopeSpans = [scope]
        b.resourceSpans = [rs]
        let bytes: [UInt8] = try b.serializedBytes()
        let wire = try ForwardBatchWire.decode(bytes, projectID: "p1")
        Self.expectSame(wire, try Self.messagePath(bytes, projectID: "p1"), "realistic")
        #expect(wire.spans.count == 50)
        #expect(wire.spans.first?.tags == ["a"])
        #expect(wire.spans.first?.inputTokens == 420)
    }

    @Test("truncated and corrupted batches: a clear error or the same rows, never a crash")
    func malformedInput() throws {
        let bytes = try Self.batchBytes(seed: 7, spans: 6)
        var errors = 0
        for n in 0..<bytes.count {
            let prefix = Array(bytes[0..<n])
            do {
                let wire = try ForwardBatchWire.decode(prefix, projectID: "p")
                if let message = try? Self.messagePath(prefix, projectID: "p") { Self.expectSame(wire, message, "prefix \(n)") }
            } catch let e as WireFormatError {
                #expect(!e.message.isEmpty)
                errors += 1
            }
        }
        #expect(errors > bytes.count / 2)
        var r = RNG(state: 99)
        for round in 0..<3_000 {
            var mutated = try Self.batchBytes(seed: UInt64(round % 40) + 1, spans: 4)
            for _ in 0..<Int.random(in: 1...3, using: &r) {
                let i = Int.random(in: 0..<mutated.count, using: &r)
                mutated[i] = UInt8.random(in: 0...255, using: &r)
            }
            do {
                let wire = try ForwardBatchWire.decode(mutated, projectID: "p")
                if let message = try? Self.messagePath(mutated, projectID: "p") { Self.expectSame(wire, message, "mutation round \(round)") }
            } catch is WireFormatError {
                // refused with a message: fine
            }
        }
    }

    @Test("invalid UTF-8, wrong wire types and deep nesting are refused naming the place")
    func specificErrors() throws {
        func batch(span: [UInt8]) -> [UInt8] {
            Self.ld(1, Array("b".utf8)) + Self.ld(4, Self.ld(2, Self.ld(2, Self.validSpan) + Self.ld(2, span)))
        }
        // Invalid UTF-8 in an attribute's string value.
        var kv = Self.ld(1, Array("k".utf8)) + Self.ld(2, Self.ld(1, [0x61, 0xC3, 0x28]))
        var e = #expect(throws: WireFormatError.self) { try ForwardBatchWire.decode(batch(span: Self.validSpan + Self.ld(9, kv)), projectID: "p") }
        #expect(e?.message.contains("resource_spans[0].scope_spans[0].spans[1]") == true)
        #expect(e?.message.contains("invalid UTF-8") == true)
        // The span name (a string) sent as a varint.
        e = #expect(throws: WireFormatError.self) { try ForwardBatchWire.decode(batch(span: Self.validSpan + [5 << 3, 1]), projectID: "p") }
        #expect(e?.message.contains("Span field 5 has wire type varint, expected length-delimited") == true)
        // A length running past the end.
        e = #expect(throws: WireFormatError.self) { try ForwardBatchWire.decode(batch(span: Self.validSpan + [9 << 3 | 2, 100, 1]), projectID: "p") }
        #expect(e?.message.contains("truncated") == true)
        // Arrays nested 200 deep.
        var nested = Self.ld(1, Array("leaf".utf8))
        for _ in 0..<200 { nested = Self.ld(5, Self.ld(1, nested)) }
        kv = Self.ld(1, Array("deep".utf8)) + Self.ld(2, nested)
        e = #expect(throws: WireFormatError.self) { try ForwardBatchWire.decode(batch(span: Self.validSpan + Self.ld(9, kv)), projectID: "p") }
        #expect(e?.message.contains("nested more than 64 deep") == true)
        // 30 deep is fine, and renders like the message path (SwiftProtobuf stops at 100 message levels).
        nested = Self.ld(1, Array("leaf".utf8))
        for _ in 0..<30 { nested = Self.ld(5, Self.ld(1, nested)) }
        kv = Self.ld(1, Array("deep".utf8)) + Self.ld(2, nested)
        let ok = batch(span: Self.validSpan + Self.ld(9, kv))
        Self.expectSame(try ForwardBatchWire.decode(ok, projectID: "p"), try Self.messagePath(ok, projectID: "p"), "30 deep")
        // Invalid UTF-8 in the batch id.
        e = #expect(throws: WireFormatError.self) { try ForwardBatchWire.decode(Self.ld(1, [0xFF]), projectID: "p") }
        #expect(e?.message.contains("ForwardBatch field 1") == true)
        // A rollup that is not one.
        e = #expect(throws: WireFormatError.self) { try ForwardBatchWire.decode(Self.ld(1, [0x62]) + Self.ld(5, [0x0A, 0x05]), projectID: "p") }
        #expect(e?.message.contains("rollups[0]") == true)
    }

    static let validSpan: [UInt8] = {
        var s = Span()
        s.traceID = Data(repeating: 1, count: 16)
        s.spanID = Data(repeating: 2, count: 8)
        s.name = "ok"
        return (try? s.serializedBytes()) ?? []
    }()

    // MARK: on every store

    /// Stores the wire-decoded rows of varied batches and reads every trace back: what comes back
    /// equals what the SwiftProtobuf path made of the same bytes.
    static func storedAlike(_ store: any SpanStore) async throws {
        let project = "wire-\(UInt32.random(in: 0...UInt32.max))"
        var expected: [String: [SpanRow]] = [:]
        for seed in UInt64(1000)..<1012 {
            let bytes = try batchBytes(seed: seed, spans: 20)
            let wire = try ForwardBatchWire.decode(bytes, projectID: project)
            let message = try messagePath(bytes, projectID: project)
            expectSame(wire, message, "seed \(seed)")
            // Spans with the same ids across seeds would be deduplicated by the store: keep the first.
            // Starts past 2106 do not fit ClickHouse 18.16's UInt32 seconds, and SQLite stores a NaN as NULL.
            var batch = wire
            batch.spans = wire.spans.filter { s in
                !(expected[s.traceID]?.contains { $0.spanID == s.spanID } ?? false) && s.startUnixNanos < 4_000_000_000 * 1_000_000_000 && s.costUSD?.isNaN != true
            }
            for s in batch.spans { expected[s.traceID, default: []].append(message.spans.first { $0.traceID == s.traceID && $0.spanID == s.spanID } ?? s) }
            #expect(try await store.insert(batch) == .stored)
        }
        for (traceID, spans) in expected {
            let got = try await store.trace(projectID: project, traceID: traceID)
            let byID = Dictionary(got.map { ($0.spanID, $0) }, uniquingKeysWith: { a, _ in a })
            #expect(got.count == spans.count, "trace \(traceID)")
            for s in spans {
                guard let g = byID[s.spanID] else {
                    Issue.record("span \(s.spanID) of trace \(traceID) was not stored")
                    continue
                }
                #expect(same(g, s), "span \(s.spanID) differs after storing:\n stored: \(g)\n sent:   \(s)")
            }
        }
    }

    @Test("rows from the byte-level reader round-trip through SQLite")
    func storedOnSQLite() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wire-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteStore(path: dir.appendingPathComponent("t.sqlite").path, logger: Logger(label: "test.sqlite"))
        try await store.migrate()
        try await Self.storedAlike(store)
        await store.shutdown()
    }

    @Test("rows from the byte-level reader round-trip through ClickHouse", arguments: ClickHouseTestServers.Server.allCases)
    func storedOnClickHouse(_ server: ClickHouseTestServers.Server) async throws {
        guard server.url != nil else { return }
        let store = try await ClickHouseTestServers.makeStore(server, flushMs: 50)
        try await Self.storedAlike(store)
        await ClickHouseTestServers.drop(store)
    }
}
