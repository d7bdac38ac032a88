@testable import Backend
import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwiftProtobuf
import Testing

/// Extreme numbers everywhere a number comes from outside: query parameters, span attributes and
/// forwarded rollups, through the backend's real routes; every answer renders and the process keeps
/// serving (before these fixes, several of these requests ended the test process).
@Suite("Hostile numbers")
struct HostileNumbersTests {
    typealias F = QueryFixture
    static let auth: HTTPFields = [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"]

    static let ints: [Int64] = [.min, .max, -1, 0, 5_000_000_000_000_000_000, (1 << 40) + 1, 1_000]
    static let doubles: [Double] = [.infinity, -.infinity, .nan, 1e300, -1e300, -1, 1e19, 5e18, -0.0, 0.25]

    /// Every numeric attribute the backend reads, each span with another extreme (as an int on even
    /// spans, as a double on odd ones). `normalized` spans use the keys a collector forwards.
    static func spans(trace: TraceID, count: Int, nowNanos: UInt64, normalized: Bool) -> [Opentelemetry_Proto_Trace_V1_Span] {
        let numeric = normalized
            ? [GenAIKeys.usageInputTokens, GenAIKeys.usageOutputTokens, GenAIKeys.usageCacheReadInputTokens, GenAIKeys.usageCacheCreationInputTokens,
               GenAIKeys.usageReasoningOutputTokens, GenAIKeys.costUSD, GenAIKeys.timeToFirstChunk, "gen_ai.usage.cost", GenAIKeys.requestMaxTokens, GenAIKeys.requestTemperature]
            : [GenAIKeys.usageInputTokens, GenAIKeys.usageOutputTokens, GenAIKeys.usagePromptTokens, GenAIKeys.usageCompletionTokens,
               GenAIKeys.usageCacheReadInputTokens, GenAIKeys.usageCacheCreationInputTokens, GenAIKeys.usageReasoningOutputTokens,
               "gen_ai.usage.cost", GenAIKeys.costUSD, GenAIKeys.timeToFirstChunk, GenAIKeys.requestMaxTokens, GenAIKeys.requestTemperature]
        return (0..<count).map { i in
            var s = Opentelemetry_Proto_Trace_V1_Span()
            s.traceID = OTLPFixtures.bytes(trace)
            s.spanID = OTLPFixtures.bytes(UInt64(i + 1))
            if i > 0 { s.parentSpanID = OTLPFixtures.bytes(1) }
            s.name = "chat extreme \(i)"
            s.kind = .client
            s.startTimeUnixNano = nowNanos - 120_000_000_000 + UInt64(i) * 1_000_000
            // Durations from nothing to just inside the window's end.
            s.endTimeUnixNano = s.startTimeUnixNano + [0, 1, 400_000_000, 80_000_000_000_000][i % 4]
            var attributes = [OTLPFixtures.kv(GenAIKeys.providerName, "openai"), OTLPFixtures.kv(GenAIKeys.requestModel, "gpt-extreme-\(i % 3)"),
                              OTLPFixtures.kv(GenAIKeys.operationName, "chat"), OTLPFixtures.kv("user.id", "user-x"), OTLPFixtures.kv("session.id", "session-x")]
            for (k, key) in numeric.enumerated() {
                attributes.append(i % 2 == 0 ? OTLPFixtures.kv(key, int: ints[(i + k) % ints.count]) : OTLPFixtures.kv(key, double: doubles[(i + k) % doubles.count]))
            }
            s.attributes = attributes
            if i % 5 == 0 { s.status.code = .error }
            return s
        }
    }

    /// Rollups with every counter at an extreme, a huge cost, and sketches holding huge values;
    /// twice per key, so the readers sum them. (A non-finite or negative cost is refused with a 400
    /// naming the field: `hostileRollupsAreRefused`.)
    static func rollups(minute: Int64, costs: [Double] = [1e300, 1e19, 0.5, 0, 1e300, 1e19]) -> [Evalforge_V1_Rollup] {
        return costs.enumerated().flatMap { i, cost -> [Evalforge_V1_Rollup] in
            let key = RollupKey(minuteUnix: minute - Int64(i % 2) * 60, project: "elsewhere", service: "svc", provider: "openai", model: "gpt-extreme-\(i % 3)", isError: i % 2 == 1)
            var v = RollupValue()
            v.requests = .max
            v.errors = .max
            v.inputTokens = .max
            v.outputTokens = UInt64(Int64.max)
            v.cacheReadTokens = .max
            v.cacheCreationTokens = 5_000_000_000_000_000_000
            v.reasoningTokens = .max
            v.costUSD = cost
            v.costUnknownRequests = .max
            for x in [1e12, 1e-300, 0, 1] { v.latencyMs.add(x, count: 1 << 40) }
            v.ttftMs.add(1e12, count: 3)
            let p = RollupCoding.proto(key: key, value: v)
            return [p, p]
        }
    }

    static func forwardBatch(id: String, spans: [Opentelemetry_Proto_Trace_V1_Span], rollups: [Evalforge_V1_Rollup]) throws -> [UInt8] {
        var b = Evalforge_V1_ForwardBatch()
        b.batchID = id
        b.collectorID = "hostile"
        b.resourceSpans = OTLPFixtures.request(spans, service: "extreme").resourceSpans
        b.rollups = rollups
        b.spansAccepted = UInt64(spans.count)
        b.spansKept = UInt64(spans.count)
        return try b.serializedBytes()
    }

    static var nowNanos: UInt64 { UInt64(Date().timeIntervalSince1970 * 1e9) }

    @Test("extreme numbers in every span attribute and rollup, through /v1/traces and /v1/batches: every page and API route renders", arguments: TestStore.available)
    func extremeNumbersRender(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        let now = Self.nowNanos
        let direct = OTLPFixtures.traceID(), forwarded = OTLPFixtures.traceID()
        try await app.test(.router) { client in
            let otlp = OTLPFixtures.request(Self.spans(trace: direct, count: 40, nowNanos: now, normalized: false), service: "extreme")
            let r1 = try await client.execute(uri: "/v1/traces", method: .post, headers: Self.auth, body: ByteBuffer(bytes: try otlp.serializedBytes() as [UInt8]))
            #expect(r1.status == .ok, "\(String(buffer: r1.body))")
            let minute = Int64(now / 1_000_000_000) / 60 * 60
            let batch = try Self.forwardBatch(id: "hostile-1", spans: Self.spans(trace: forwarded, count: 40, nowNanos: now, normalized: true), rollups: Self.rollups(minute: minute))
            let r2 = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(bytes: batch))
            #expect(r2.status == .ok, "\(String(buffer: r2.body))")
            // The same rollups again in another batch: the readers sum them across batches.
            let again = try Self.forwardBatch(id: "hostile-2", spans: [], rollups: Self.rollups(minute: minute))
            let r3 = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(bytes: again))
            #expect(r3.status == .ok, "\(String(buffer: r3.body))")
            // Costs that are not finite non-negative numbers: refused, naming the field; nothing stored.
            for cost in [Double.infinity, .nan, -5] {
                let bad = try Self.forwardBatch(id: "hostile-bad-\(cost)", spans: [], rollups: Self.rollups(minute: minute, costs: [cost]))
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(bytes: bad))
                #expect(r.status == .badRequest && String(buffer: r.body).contains("rollups[0].cost_usd"), "\(cost): \(r.status) \(String(buffer: r.body))")
            }

            let headers: HTTPFields = [.authorization: "Bearer \(TestBackend.apiKey)", .cookie: "evalforge_session=\(try await client.signIn(TestBackend.apiKey).sessionID)"]
            let uris = [
                "/", "/?range=1h", "/?range=30d", "/traces", "/traces?sort=cost_desc", "/traces?sort=duration_desc", "/traces?range=1h&min_cost_usd=0",
                "/traces/\(direct.hexString)", "/traces/\(forwarded.hexString)", "/sessions", "/sessions/session-x", "/users",
                "/api/traces", "/api/traces?sort=cost_desc&min_duration_ms=1e300", "/api/traces/\(direct.hexString)", "/api/traces/\(forwarded.hexString)",
                "/api/sessions", "/api/sessions/session-x", "/api/users", "/api/users/user-x",
                "/api/metrics", "/api/metrics?group_by=model", "/api/metrics?group_by=user", "/api/metrics?interval=1m&from=\(minute - 3600)",
                "/api/usage", "/api/usage?from=\(minute - 3600)&to=\(minute + 120)",
                "/api/export/traces?format=csv", "/api/export/traces?format=jsonl", "/api/export/spans?format=csv", "/api/export/spans?format=jsonl",
            ]
            for uri in uris {
                let r = try await client.execute(uri: uri, method: .get, headers: headers, body: nil)
                #expect(r.status == .ok, "\(uri): \(r.status) \(String(buffer: r.body).prefix(300))")
            }
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
        // What was stored is bounded: tokens within 0…2^40, costs finite and non-negative or unknown.
        for t in [direct, forwarded] {
            let rows = try await services.store.trace(projectID: "default", traceID: t.hexString)
            #expect(rows.count == 40)
            for s in rows {
                for n in [s.inputTokens, s.outputTokens, s.cacheReadTokens, s.cacheCreationTokens, s.reasoningTokens] {
                    #expect(n >= 0 && n <= IngestBounds.maxTokens, "\(s.spanID): \(n)")
                }
                if let c = s.costUSD { #expect(c.isFinite && c >= 0 && c <= IngestBounds.maxCostUSD, "\(s.spanID): cost \(c)") }
                if let t = s.ttftNanos { #expect(t >= 0) }
            }
        }
        await TestStore.tearDown(services)
    }

    @Test("rows stored before the ingest bounds (5e18 tokens, a $1e19 cost, Int64.max durations) render on every page and API route", arguments: TestStore.available)
    func poisonedRowsRender(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        let now = Int64(Self.nowNanos)
        let trace = OTLPFixtures.traceID().hexString
        // Straight into the store, as an older version (without IngestBounds) would have stored them.
        let durations: [Int64] = [.max, 0, -5, 1_000]
        let costs: [Double] = [1e19, .infinity, -.infinity, .nan]
        let ttfts: [Int64] = [.max, -1, .min, 0]
        var spans: [SpanRow] = []
        for j in 0..<4 {
            let id = String(format: "%016x", j + 1)
            let parent = j == 0 ? "" : String(format: "%016x", 1)
            let output: Int64 = j == 1 ? .min : .max
            spans.append(SpanRow(projectID: "default", traceID: trace, spanID: id, parentSpanID: parent,
                                 startUnixNanos: now - 60_000_000_000 + Int64(j), durationNanos: durations[j], name: "poisoned", kind: .client,
                                 operation: "chat", provider: "openai", model: "gpt-poison", inputTokens: 5_000_000_000_000_000_000, outputTokens: output,
                                 cacheReadTokens: 5_000_000_000_000_000_000, reasoningTokens: .max, costUSD: costs[j], ttftNanos: ttfts[j],
                                 userID: "user-p", sessionID: "session-p"))
        }
        var v = RollupValue()
        v.requests = .max
        v.inputTokens = .max
        v.outputTokens = .max
        v.costUSD = 1e19
        let rollup = RollupRow(key: RollupKey(minuteUnix: now / 1_000_000_000 / 60 * 60, project: "default", service: "", provider: "openai", model: "gpt-poison", isError: false), value: v)
        _ = try await services.store.insert(StoreBatch(projectID: "default", batchID: "poisoned", spans: spans, rollups: [rollup]))
        try await app.test(.router) { client in
            let headers: HTTPFields = [.authorization: "Bearer \(TestBackend.apiKey)", .cookie: "evalforge_session=\(try await client.signIn(TestBackend.apiKey).sessionID)"]
            for uri in ["/", "/traces", "/traces?sort=cost_desc", "/traces?sort=duration_desc", "/traces/\(trace)", "/sessions", "/sessions/session-p", "/users",
                        "/api/traces", "/api/traces/\(trace)", "/api/sessions", "/api/sessions/session-p", "/api/users", "/api/users/user-p",
                        "/api/metrics", "/api/metrics?group_by=user", "/api/metrics?group_by=model", "/api/usage",
                        "/api/export/traces?format=csv", "/api/export/spans?format=jsonl"] {
                let r = try await client.execute(uri: uri, method: .get, headers: headers, body: nil)
                #expect(r.status == .ok, "\(uri): \(r.status) \(String(buffer: r.body).prefix(300))")
            }
        }
        await TestStore.tearDown(services)
    }

    @Test("spans and rollups outside the time window are refused at ingest, naming the field; the rest of an OTLP request is stored", arguments: TestStore.available)
    func absurdTimesAreRefused(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: TestBackend.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        let now = Self.nowNanos
        let good = OTLPFixtures.traceID()
        try await app.test(.router) { client in
            // Forwarded: one span from 1970, one from the far future, one ending past tomorrow.
            for (i, (start, end)) in [(UInt64(5), UInt64(10)), (UInt64.max, UInt64.max), (now, now + 3 * 86_400_000_000_000)].enumerated() {
                var spans = Self.spans(trace: OTLPFixtures.traceID(), count: 3, nowNanos: now, normalized: true)
                spans[1].startTimeUnixNano = start
                spans[1].endTimeUnixNano = end
                let body = try Self.forwardBatch(id: "time-\(i)", spans: spans, rollups: [])
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(bytes: body))
                #expect(r.status == .badRequest)
                let text = String(buffer: r.body)
                #expect(text.contains("spans[1]") && text.contains(i == 2 ? "end_time_unix_nano" : "start_time_unix_nano"), "\(text)")
            }
            // A rollup of 1970 and one whose sketch has another alpha.
            var old = Self.rollups(minute: 0)[5]
            old.minuteUnix = 60
            var alpha = Self.rollups(minute: Int64(now / 1_000_000_000) / 60 * 60)[5]
            alpha.latencyMs.alpha = 0.05
            for (rollup, field) in [(old, "minute_unix"), (alpha, "rollups[0]")] {
                let body = try Self.forwardBatch(id: "rollup-\(field)", spans: [], rollups: [rollup])
                let r = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(bytes: body))
                #expect(r.status == .badRequest)
                #expect(String(buffer: r.body).contains(field), "\(String(buffer: r.body))")
            }
            // Spans in 30 calendar months in one batch: refused (ClickHouse partitions by month).
            var months = Self.spans(trace: OTLPFixtures.traceID(), count: 30, nowNanos: now, normalized: true)
            for i in months.indices {
                months[i].startTimeUnixNano = 1_600_000_000_000_000_000 + UInt64(i) * 32 * 86_400_000_000_000
                months[i].endTimeUnixNano = months[i].startTimeUnixNano + 1_000
            }
            let many = try await client.execute(uri: "/v1/batches", method: .post, headers: Self.auth, body: ByteBuffer(bytes: try Self.forwardBatch(id: "months", spans: months, rollups: [])))
            #expect(many.status == .badRequest)
            #expect(String(buffer: many.body).contains("calendar months"))

            // Direct OTLP: the absurd spans are rejected through partial_success, the others stored.
            var spans = Self.spans(trace: good, count: 4, nowNanos: now, normalized: false)
            spans[2].startTimeUnixNano = 0
            spans[3].startTimeUnixNano = UInt64.max
            spans[3].endTimeUnixNano = UInt64.max
            let r = try await client.execute(uri: "/v1/traces", method: .post, headers: Self.auth,
                                             body: ByteBuffer(bytes: try OTLPFixtures.request(spans).serializedBytes() as [UInt8]))
            #expect(r.status == .ok)
            let response = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(serializedBytes: Array(r.body.readableBytesView))
            #expect(response.partialSuccess.rejectedSpans == 2)
            #expect(response.partialSuccess.errorMessage.contains("spans[2]: start_time_unix_nano"), "\(response.partialSuccess.errorMessage)")
        }
        let stored = try await services.store.trace(projectID: "default", traceID: good.hexString)
        #expect(Set(stored.map(\.spanID)) == [String(format: "%016x", 1), String(format: "%016x", 2)])
        await TestStore.tearDown(services)
    }

    @Test("query parameters out of range are a 400 naming the parameter, on the API and the pages")
    func parametersOutOfRange() async throws {
        try await withQueryBackend(seed: false) { client, _ in
            let cases: [(String, String)] = [
                ("/api/traces?from=10000000000", "'from'"), ("/api/traces?to=-1e300", "'to'"), ("/api/traces?from=nan", "'from'"),
                ("/api/traces?from=2262-04-12T00:00:00Z", "'from'"), ("/api/traces?min_cost_usd=inf", "'min_cost_usd'"),
                ("/api/traces?score_name=x&min_score=nan", "'min_score'"), ("/api/traces?limit=99999999999999999999", "'limit'"),
                ("/api/usage?from=9300000000", "'from'"), ("/api/usage?to=99999999999999999999", "'to'"), ("/api/usage?from=-1", "'from'"), ("/api/usage?form=1", "'form'"),
                ("/api/metrics?from=1e19", "'from'"), ("/api/metrics?interval=153722867280912930m", "'interval'"),
                ("/api/metrics?interval=9223372036854775800", "'interval'"), ("/api/sessions?to=1e10", "'to'"), ("/api/users?from=-9.3e9", "'from'"),
                ("/api/export/traces?from=10000000000", "'from'"), ("/api/export/spans?max_rows=1e300", "'max_rows'"),
            ]
            for (uri, name) in cases {
                let r = try await client.get(uri)
                #expect(r.status == .badRequest, "\(uri): \(r.status)")
                #expect(r.body.contains(name), "\(uri): \(r.body.prefix(300))")
            }
            for uri in ["/traces?from=10000000000", "/sessions?to=1e300", "/traces?min_duration_ms=inf"] {
                let r = try await client.page(uri, signedInWith: F.keyA)
                #expect(r.status == .badRequest, "\(uri): \(r.status)")
            }
            // In range but extreme: answered.
            for uri in ["/api/traces?min_duration_ms=1e300", "/api/traces?from=-9000000000&to=9000000000", "/api/usage?from=0&to=9200000000",
                        "/api/metrics?from=9199000000&to=9200000000&interval=400d"] {
                let r = try await client.get(uri)
                #expect(r.status == .ok || r.status == .badRequest, "\(uri): \(r.status)")
                #expect(r.status != .internalServerError)
            }
            #expect(try await client.get("/api/traces").status == .ok)
        }
    }
}
