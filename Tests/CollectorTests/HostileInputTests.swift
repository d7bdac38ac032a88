import EvalForgeCore
import EvalForgeIngest
@testable import EvalForgeModel
import EvalForgeOTLP
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import Collector

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Absurd numbers through the real receiver (HTTP on loopback): the collector keeps serving, its
/// rollups stay sane (and would be accepted by the backend's checked decoder), and nothing out of
/// range reaches the WAL — a restart replays it without trapping.
@Suite("Hostile numbers: no crash, sane rollups, clean WAL")
struct HostileInputTests {
    /// A live collector on `queue` (backend unreachable, so nothing is released from the WAL).
    static func withLiveCollector(queue: String, _ body: @Sendable (_ url: String, _ pipeline: CollectorPipeline) async throws -> Void) async throws {
        var c = CollectorPipelineTests.config()
        c.queueDirectory = queue
        c.port = 0
        c.backendURL = "http://127.0.0.1:9"
        c.flushInterval = .seconds(3600)
        c.shutdownTimeout = .milliseconds(100)
        let (app, pipeline) = try CollectorApp.build(configuration: c)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await body("http://127.0.0.1:\(port)", pipeline)
        }
    }

    /// Posts `r`; returns the status and the decoded response (200) or text.
    static func post(_ url: String, _ r: ExportTraceRequest) async throws -> (Int, Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse?, String) {
        var req = URLRequest(url: URL(string: url + "/v1/traces")!)
        req.httpMethod = "POST"
        req.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
        req.httpBody = try r.serializedData()
        let (data, resp) = try await URLSession.shared.data(for: req)
        let status = (resp as? HTTPURLResponse)?.statusCode ?? 0
        let decoded = status == 200 ? try? Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(serializedBytes: [UInt8](data)) : nil
        return (status, decoded, String(decoding: data, as: UTF8.self))
    }

    static func healthy(_ url: String) async -> Bool {
        guard let (_, r) = try? await URLSession.shared.data(from: URL(string: url + "/healthz")!) else { return false }
        return (r as? HTTPURLResponse)?.statusCode == 200
    }

    /// Every rollup survives the backend's checked decoding, and its figures are within bounds.
    static func expectSane(_ table: RollupTable, maxRequests: UInt64, sourceLocation: SourceLocation = #_sourceLocation) {
        let tokenBound = UInt64(GenAILimits.maxTokens) * 3 * maxRequests  // anthropic input sums three figures
        for (k, v) in table.rows {
            let proto = RollupCoding.proto(key: k, value: v)
            #expect(throws: Never.self, "rollup \(k) must decode", sourceLocation: sourceLocation) { _ = try RollupCoding.decodeRollup(proto) }
            #expect(v.requests <= maxRequests, sourceLocation: sourceLocation)
            for t in [v.inputTokens, v.outputTokens, v.cacheReadTokens, v.cacheCreationTokens, v.reasoningTokens] {
                #expect(t <= tokenBound, "token sum \(t)", sourceLocation: sourceLocation)
            }
            #expect(v.costUSD.isFinite && v.costUSD >= 0 && v.costUSD <= GenAILimits.maxCostUSD * Double(maxRequests), "cost \(v.costUSD)", sourceLocation: sourceLocation)
            for s in [v.latencyMs, v.ttftMs] where s.count > 0 {
                #expect(s.sum.isFinite && s.min >= 0 && s.max <= DDSketch.maxValue, sourceLocation: sourceLocation)
                #expect(s.quantile(0.5).map { $0.isFinite } == true, sourceLocation: sourceLocation)
            }
        }
    }

    /// The canonical figures a forwarded span carries are within `GenAILimits` (what the backend stores).
    static func expectClean(_ span: Opentelemetry_Proto_Trace_V1_Span, sourceLocation: SourceLocation = #_sourceLocation) {
        let tokenKeys: Set<String> = [GenAIKeys.usageInputTokens, GenAIKeys.usageOutputTokens, GenAIKeys.usageCacheReadInputTokens,
                                      GenAIKeys.usageCacheCreationInputTokens, GenAIKeys.usageReasoningOutputTokens]
        for kv in span.attributes {
            if tokenKeys.contains(kv.key) {
                switch kv.value.value {
                case .intValue(let i)?: #expect(i >= 0 && i <= Int64(GenAILimits.maxTokens), "\(kv.key) = \(i)", sourceLocation: sourceLocation)
                case .doubleValue(let d)?: #expect(d.isFinite && d >= 0 && d <= Double(GenAILimits.maxTokens), "\(kv.key) = \(d)", sourceLocation: sourceLocation)
                case .stringValue(let s)?: #expect(Int(s).map { $0 >= 0 && $0 <= GenAILimits.maxTokens } == true, "\(kv.key) = \(s)", sourceLocation: sourceLocation)
                default: Issue.record("\(kv.key) holds \(kv.value)", sourceLocation: sourceLocation)
                }
            } else if kv.key == GenAIKeys.costUSD || kv.key == GenAIKeys.timeToFirstChunk {
                let d: Double? = switch kv.value.value {
                case .doubleValue(let d)?: d
                case .intValue(let i)?: Double(i)
                case .stringValue(let s)?: Double(s)
                default: nil
                }
                let bound = kv.key == GenAIKeys.costUSD ? GenAILimits.maxCostUSD : GenAILimits.maxTimeToFirstChunkSeconds
                #expect(d.map { $0.isFinite && $0 >= 0 && $0 <= bound } == true, "\(kv.key) = \(kv.value)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test("issue 14: three spans of one model and minute with input_tokens = Int64.max are served, summed without overflow, and replay after a restart")
    func int64MaxTokens() async throws {
        let queue = CollectorPipelineTests.tempDir()
        let t = SpanFactory.traceID()
        var spans = (1...3).map { SpanFactory.span(trace: t, id: UInt64($0), model: "gpt-4o") }
        for i in spans.indices {
            spans[i].attributes.removeAll { $0.key == GenAIKeys.usageInputTokens }
            spans[i].attributes.append(SpanFactory.kv(GenAIKeys.usageInputTokens, Int(Int64.max)))
        }
        let request = SpanFactory.request(spans)
        try await Self.withLiveCollector(queue: queue) { url, pipeline in
            let (status, response, _) = try await Self.post(url, request)
            #expect(status == 200)
            #expect(response?.hasPartialSuccess == false)
            #expect(await Self.healthy(url))
            // It keeps serving: a normal request afterwards is accepted too.
            let (again, _, _) = try await Self.post(url, SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 9)]))
            #expect(again == 200)
            #expect(pipeline.statistics.spansReceived == 4)
        }
        // The restart replays the record (the crash loop of the issue) and rebuilds the same sane rollup.
        let p = try CollectorPipeline(configuration: CollectorPipelineTests.config { $0.queueDirectory = queue })
        #expect(try p.replay(skipThrough: 0) == 2)
        let batch = try #require(p.seal(force: true))
        let row = try #require(batch.rollups.rows.first { $0.key.model == "gpt-4o" })
        #expect(row.value.requests == 3)
        #expect(row.value.inputTokens == 3 * UInt64(GenAILimits.maxTokens))
        Self.expectSane(batch.rollups, maxRequests: 4)
        for s in batch.kept { Self.expectClean(s.span) }
        let clamped = batch.kept.filter { $0.span.attributes.contains { $0.key == GenAIKeys.usageInputTokens && $0.value.intValue == Int64(GenAILimits.maxTokens) } }
        #expect(clamped.count == 3)
    }

    /// The extreme values tried in every numeric attribute.
    static let extremes: [Opentelemetry_Proto_Common_V1_AnyValue] = {
        var out: [Opentelemetry_Proto_Common_V1_AnyValue] = []
        for i: Int64 in [.min, .max, -1, 0, 1, Int64(GenAILimits.maxTokens) + 1] {
            var v = Opentelemetry_Proto_Common_V1_AnyValue()
            v.intValue = i
            out.append(v)
        }
        for d: Double in [.infinity, -.infinity, .nan, 1e300, -1e300, 1e19, -0.5, 5e18, .greatestFiniteMagnitude, .leastNonzeroMagnitude] {
            var v = Opentelemetry_Proto_Common_V1_AnyValue()
            v.doubleValue = d
            out.append(v)
        }
        for s in ["9223372036854775807", "-9223372036854775808", "inf", "-inf", "nan", "1e300", "-1", "abc", ""] {
            var v = Opentelemetry_Proto_Common_V1_AnyValue()
            v.stringValue = s
            out.append(v)
        }
        var b = Opentelemetry_Proto_Common_V1_AnyValue()
        b.boolValue = true
        out.append(b)
        return out
    }()

    static let numericKeys = GenAIAttributeRole.names.filter {
        switch $0.1 {
        case .inputTokens, .promptTokensAlias, .outputTokens, .completionTokensAlias, .totalTokens, .cacheRead, .cacheReadAlias,
             .cacheCreation, .cacheCreationAlias, .reasoning, .reasoningAlias, .costUSD, .costAlias, .timeToFirstChunk:
            return true
        default: return false
        }
    }.map(\.0)

    @Test("Int64.min/max, ±inf, NaN, 1e300 and negatives in every numeric GenAI attribute and in span timestamps")
    func extremeNumbers() async throws {
        #expect(Self.numericKeys.count >= 20)
        let queue = CollectorPipelineTests.tempDir()
        let sentSpans = Mutex(0)
        try await Self.withLiveCollector(queue: queue) { url, pipeline in
            for (k, key) in Self.numericKeys.enumerated() {
                let t = SpanFactory.traceID()
                var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
                for (i, value) in Self.extremes.enumerated() {
                    // Every value alone, and with an anthropic provider and all cache figures (the summing rule).
                    for variant in 0..<2 {
                        var s = SpanFactory.span(trace: t, id: UInt64(k * 1000 + i * 2 + variant + 1), model: "claude-sonnet-4-5")
                        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
                        kv.key = key
                        kv.value = value
                        s.attributes.removeAll { $0.key == key }
                        s.attributes.append(kv)
                        if variant == 1 {
                            s.attributes.removeAll { $0.key == GenAIKeys.providerName }
                            s.attributes.append(SpanFactory.kv(GenAIKeys.providerName, "anthropic"))
                            for other in Self.numericKeys where other != key {
                                var o = Opentelemetry_Proto_Common_V1_KeyValue()
                                o.key = other
                                o.value = value
                                s.attributes.append(o)
                            }
                        }
                        spans.append(s)
                    }
                }
                let (status, response, text) = try await Self.post(url, SpanFactory.request(spans))
                #expect(status == 200, "\(key): \(status) \(text)")
                #expect(response?.partialSuccess.rejectedSpans ?? 0 == 0, "\(key)")
                sentSpans.withLock { $0 += spans.count }
            }
            // Timestamps: past the Int64-nanosecond range (or negative, seen as unsigned) are refused
            // by name; the rest of the request is accepted.
            let t = SpanFactory.traceID()
            let starts: [UInt64] = [0, 1, UInt64(Int64.max), UInt64(Int64.max) + 1, .max, UInt64(bitPattern: -1_000_000_000)]
            var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
            var bad = 0
            for (i, start) in starts.enumerated() {
                for (j, end) in [start, start &+ 1, 0, .max].enumerated() {
                    var s = SpanFactory.span(trace: t, id: UInt64(900_000 + i * 10 + j))
                    s.startTimeUnixNano = start
                    s.endTimeUnixNano = end
                    if start > UInt64(Int64.max) || end > UInt64(Int64.max) { bad += 1 }
                    spans.append(s)
                }
            }
            let (status, response, _) = try await Self.post(url, SpanFactory.request(spans))
            #expect(status == 200)
            #expect(response?.partialSuccess.rejectedSpans == Int64(bad))
            #expect(response?.partialSuccess.errorMessage.contains("_time_unix_nano") == true)
            sentSpans.withLock { $0 += spans.count - bad }
            #expect(await Self.healthy(url))
            #expect(pipeline.statistics.spansRejected == bad)
        }
        let sent = sentSpans.withLock { $0 }
        // Replayed from the WAL (as after a crash), every rollup and every span is sane.
        let p = try CollectorPipeline(configuration: CollectorPipelineTests.config { $0.queueDirectory = queue })
        #expect(try p.replay(skipThrough: 0) == Self.numericKeys.count + 1)
        var table = RollupTable()
        var kept = 0
        while let b = p.seal(force: true) {
            table.merge(b.rollups)
            kept += b.kept.count
            for s in b.kept { Self.expectClean(s.span) }
        }
        #expect(kept == sent)
        Self.expectSane(table, maxRequests: UInt64(sent))
    }

    @Test("sketches: merge never traps, decoding refuses another alpha and out-of-range fields by name")
    func sketchSafety() throws {
        var saturated = DDSketch()
        for v in [Double.nan, .infinity, -.infinity, -1, 0, 1e-300, 1e300, .greatestFiniteMagnitude, 5] { saturated.add(v, count: .max) }
        #expect(saturated.count == .max)
        #expect(saturated.sum.isFinite)
        let copy = saturated
        let merged = saturated.merge(copy)
        #expect(merged)
        #expect(saturated.quantile(0.99).map { $0.isFinite } == true)
        var a = DDSketch()
        for v in [Double.nan, .infinity, -.infinity, -1, 0, 1e-300, 1e300, .greatestFiniteMagnitude, 5] { a.add(v, count: 1000) }
        #expect(a.count == 8000)
        #expect(a.sum.isFinite && a.max == DDSketch.maxValue && a.min == 0)
        var other = DDSketch(alpha: 0.05)
        other.add(10)
        let mergedOther = a.merge(other)
        #expect(mergedOther == false)
        var wire = RollupCoding.proto(other)
        #expect(throws: RollupDecodingError.self) { _ = try RollupCoding.decodeSketch(wire, field: "latency_ms") }
        do { _ = try RollupCoding.decodeSketch(wire, field: "latency_ms") } catch { #expect(error.message.hasPrefix("latency_ms.alpha")) }
        wire = RollupCoding.proto(a)
        #expect(throws: Never.self) { _ = try RollupCoding.decodeSketch(wire, field: "latency_ms") }
        var bad = wire
        bad.offset = .max
        #expect(throws: RollupDecodingError.self) { _ = try RollupCoding.decodeSketch(bad, field: "latency_ms") }
        bad = wire
        bad.counts = [.max, .max]
        bad.zeroCount = 0
        bad.count = .max
        #expect(throws: RollupDecodingError.self) { _ = try RollupCoding.decodeSketch(bad, field: "ttft_ms") }
        bad = wire
        bad.sum = .infinity
        #expect(throws: RollupDecodingError.self) { _ = try RollupCoding.decodeSketch(bad, field: "ttft_ms") }
        var rollup = RollupCoding.proto(key: RollupKey(minuteUnix: 60, project: "p", service: "s", provider: "x", model: "m", isError: false), value: RollupValue())
        rollup.costUsd = .nan
        #expect(throws: RollupDecodingError.self) { _ = try RollupCoding.decodeRollup(rollup) }
        // Saturating sums.
        var v = RollupValue()
        var big = RollupValue()
        big.requests = .max
        big.inputTokens = .max
        big.costUSD = .greatestFiniteMagnitude
        v.merge(big)
        v.merge(big)
        #expect(v.requests == .max && v.inputTokens == .max && v.costUSD == RollupValue.maxCostUSD)
        // A far-future start (older WALs may hold one) keys into the last representable minute.
        let far = SpanFacts(traceID: TraceID(high: 1, low: 1), spanID: 1, isLLMCall: true, startUnixNanos: .max, endUnixNanos: 0)
        #expect(RollupKey(far).minuteUnix <= Int64.max / 1_000_000_000)
        #expect(far.problem != nil)
    }

    @Test("Retry-After and other header values from a peer are parsed with bounds")
    func retryAfter() {
        // One parser for every peer header (EvalForgeCore's RetryAfter), bounded by the caller's maximum.
        let cap = Duration.seconds(30)
        #expect(RetryAfter.parse("2", nowUnixSeconds: 0, maximum: cap) == .seconds(2))
        #expect(RetryAfter.parse(" 0.5 ", nowUnixSeconds: 0, maximum: cap) == .milliseconds(500))
        #expect(RetryAfter.parse("99999999999999999999999", nowUnixSeconds: 0, maximum: cap) == cap)
        #expect(RetryAfter.parse("Wed, 21 Oct 2015 07:28:00 GMT", nowUnixSeconds: 1_445_412_470, maximum: cap) == .seconds(10))
        for bad in ["inf", "1e300", "-5", "nan", ""] {
            #expect(RetryAfter.parse(bad, nowUnixSeconds: 0, maximum: cap) == nil, "\(bad)")
        }
        #expect(Backoff.delay(attempt: .max, initial: .seconds(Int64.max / 2), max: .seconds(Int64.max)) > .zero)
        #expect(Forwarder.nanoseconds(.seconds(Int64.max)) == .max)
    }
}
