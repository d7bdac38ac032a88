@testable import Backend
import Hummingbird
import EvalForgeStore
import Foundation
import HummingbirdTesting
import NIOCore
import Testing

/// The query API over HTTP against a seeded backend, on every store: SQLite always, ClickHouse 18.16
/// and a current ClickHouse (chdb) when their URLs are set. Without a URL, that server's
/// `storeIsUnderTest` test is skipped with the variable to set.
@Suite("Query API", .serialized)
struct QueryAPITests {
    typealias F = QueryFixture

    @Test("Query API runs on ClickHouse 18.16", .enabled(if: TestStore.clickHouseLegacy.isAvailable, TestStore.clickHouseLegacy.unavailableReason))
    func clickHouseLegacyIsUnderTest() async throws {
        try await Self.healthzNamesTheStore(.clickHouseLegacy, "clickhouse 18.16")
    }

    @Test("Query API runs on a current ClickHouse (chdb)", .enabled(if: TestStore.clickHouse.isAvailable, TestStore.clickHouse.unavailableReason))
    func clickHouseIsUnderTest() async throws {
        try await Self.healthzNamesTheStore(.clickHouse, "(modern schema)")
    }

    static func healthzNamesTheStore(_ store: TestStore, _ text: String) async throws {
        #expect(TestStore.available.contains(store))
        try await withQueryBackend(on: store, seed: false) { client, services in
            // The public /healthz is bare liveness; the operator listener's names the store.
            let health = try await client.get("/healthz", key: nil)
            #expect(health.status == .ok)
            #expect(!health.body.contains(text), "\(health.body)")
            try await Application(router: BackendApp.buildOperatorRouter(services: services, metricsRegistry: nil)).test(.router) { op in
                let detailed = try await op.execute(uri: "/healthz", method: .get)
                #expect(String(buffer: detailed.body).contains(text), "\(String(buffer: detailed.body))")
            }
        }
    }

    @Test(arguments: TestStore.available)
    func traceListPagesThroughEveryTraceOnceInOrder(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            var seen: [String] = []
            var starts: [Int64] = []
            var cursor: String?
            repeat {
                let page = try await client.json("/api/traces?limit=64" + (cursor.map { "&cursor=" + URLQuery.component($0) } ?? ""))
                seen += page.items.compactMap { $0["trace_id"] as? String }
                starts += page.items.compactMap { ($0["start_unix_nanos"] as? NSNumber)?.int64Value }
                cursor = page["next_cursor"] as? String
                #expect(page.keys.contains("next_cursor"))
            } while cursor != nil
            #expect(seen.count == F.traceCount)
            #expect(Set(seen).count == F.traceCount)
            #expect(starts == starts.sorted(by: >))

            let oldest = try await client.json("/api/traces?sort=start_asc&limit=1")
            #expect(oldest.items.first?["trace_id"] as? String == F.traceID(0))
            let first = try #require(oldest.items.first)
            #expect(first["span_count"] as? Int == 4)
            #expect(first["llm_calls"] as? Int == 2)
            #expect(first["status"] as? String == "ok")
            #expect(first["models"] as? [String] == ["gpt-4o-mini"])
        }
    }

    @Test(arguments: TestStore.available)
    func everyFilterNarrowsTheList(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            func ids(_ q: String) async throws -> Set<String> {
                Set(try await client.json("/api/traces?limit=1000&" + q).items.compactMap { $0["trace_id"] as? String })
            }
            let all = Set((0..<F.traceCount).map(F.traceID))
            func expected(_ pred: (Int) -> Bool) -> Set<String> { Set((0..<F.traceCount).filter(pred).map(F.traceID)) }
            func check(_ q: String, _ want: Set<String>, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let got = try await ids(q)
                #expect(got == want, "\(q): \(got.count) traces, expected \(want.count)", sourceLocation: sourceLocation)
            }
            try await check("", all)
            try await check("model=claude-sonnet-4-5", expected { $0 % 3 == 1 })
            try await check("provider=openai", expected { $0 % 3 != 1 })
            try await check("service=svc-1", expected { $0 % 2 == 1 })
            try await check("status=error", expected { $0 % 5 == 4 })
            try await check("status=ok", expected { $0 % 5 != 4 })
            try await check("user_id=user-2", expected { $0 % 4 == 2 })
            try await check("session_id=session-5", expected { $0 % 6 == 5 })
            try await check("tag=beta", expected { $0 % 2 == 0 })
            try await check("q=zebra", [F.traceID(7)])
            try await check("q=follow-up%20299", [F.traceID(299)])
            // Time range: traces start one minute apart from the base.
            try await check("from=\(F.time(600))&to=\(F.time(1200))", expected { (10..<20).contains($0) })
            try await check("from=2026-01-01T00:10:00Z&to=2026-01-01T00:20:00.000Z", expected { (10..<20).contains($0) })
            // Trace duration is the root's: 2 s + i ms.
            try await check("min_duration_ms=2250", expected { $0 >= 250 })
            // Trace cost: 0.001 × ((1 + i%3) + (2 + i%3)) except claude's unpriced second call.
            let cost: (Int) -> Double = { i in i % 3 == 1 ? 0.001 * Double(1 + i % 3) : 0.001 * Double(3 + 2 * (i % 3)) }
            try await check("min_cost_usd=0.0065", expected { cost($0) >= 0.0065 })
            try await check("score_name=relevance&min_score=0.5", expected { (5..<10).contains($0) })
            try await check("score_name=relevance&min_score=0.2&max_score=0.3", expected { (2...3).contains($0) })
            try await check("model=gpt-4o&status=error&tag=beta", expected { $0 % 3 == 2 && $0 % 5 == 4 && $0 % 2 == 0 })
            // Blank form fields select nothing.
            try await check("model=&q=&status=", all)
        }
    }

    @Test(arguments: TestStore.available)
    func sortOrders(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            let byCost = try await client.json("/api/traces?sort=cost_desc&limit=1000").items.compactMap { $0["cost_usd"] as? Double }
            #expect(byCost == byCost.sorted(by: >))
            let byDuration = try await client.json("/api/traces?sort=duration_desc&limit=5").items.compactMap { $0["trace_id"] as? String }
            #expect(byDuration.first == F.traceID(F.traceCount - 1))
            // Pages of a cost sort neither overlap nor skip.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await client.json("/api/traces?sort=cost_desc&limit=77" + (cursor.map { "&cursor=" + URLQuery.component($0) } ?? ""))
                seen += page.items.compactMap { $0["trace_id"] as? String }
                cursor = page["next_cursor"] as? String
            } while cursor != nil
            #expect(seen.count == F.traceCount && Set(seen).count == F.traceCount)
        }
    }

    @Test(arguments: TestStore.available)
    func traceDetailIsATreeWithContentAndScores(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            let d = try await client.json("/api/traces/\(F.traceID(0))")
            let trace = try #require(d["trace"] as? [String: Any])
            #expect(trace["span_count"] as? Int == 4)
            let roots = try #require(d["spans"] as? [[String: Any]])
            #expect(roots.count == 1)
            let root = roots[0]
            #expect(root["name"] as? String == "agent.run")
            #expect(root["depth"] as? Int == 0)
            #expect((root["attributes"] as? [String: Any])?["http.route"] as? String == "/chat")
            #expect((root["attributes"] as? [String: Any])?["retry"] as? Int == 2)
            let children = try #require(root["children"] as? [[String: Any]])
            #expect(children.map { $0["span_id"] as? String } == [F.spanID(0, 1), F.spanID(0, 2)])
            let llm = children[0]
            #expect(llm["model"] as? String == "gpt-4o-mini")
            #expect(llm["offset_ms"] as? Double == 100)
            #expect(llm["duration_ms"] as? Double == 510)
            #expect(llm["ttft_ms"] as? Double == 121)
            let input = try #require(llm["input"] as? [[String: Any]])
            #expect(input.last?["role"] as? String == "user")
            let output = try #require(llm["output"] as? [[String: Any]])
            #expect(output.first?["finish_reason"] as? String == "stop")
            #expect((llm["scores"] as? [[String: Any]])?.first?["name"] as? String == "json_valid")
            // The tool span hangs under the first LLM call.
            let tool = try #require((llm["children"] as? [[String: Any]])?.first)
            #expect(tool["name"] as? String == "execute_tool lookup")
            #expect(tool["depth"] as? Int == 2)
            #expect(tool["input"] is NSNull)
            #expect((d["scores"] as? [[String: Any]])?.map { $0["name"] as? String } == ["relevance"])

            #expect(try await client.get("/api/traces/" + String(repeating: "0", count: 32)).status == .notFound)
            #expect(try await client.get("/api/traces/" + F.traceID(0).uppercased()).status == .ok)
            let bad = try await client.get("/api/traces/not-a-trace-id")
            #expect(bad.status == .badRequest)
            #expect(bad.body.contains("32 hex digits"))
        }
    }

    @Test(arguments: TestStore.available)
    func sessionsAndUsers(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            let sessions = try await client.json("/api/sessions?limit=1000").items
            #expect(sessions.count == 6)
            let s5 = try #require(sessions.first { $0["session_id"] as? String == "session-5" })
            #expect(s5["trace_count"] as? Int == F.traceCount / 6)
            let byUser = try await client.json("/api/sessions?user_id=user-1").items
            #expect(!byUser.isEmpty && byUser.allSatisfy { $0["user_id"] as? String == "user-1" })

            let d = try await client.json("/api/sessions/session-5")
            let turns = try #require(d["turns"] as? [[String: Any]])
            #expect(turns.count == 2 * F.traceCount / 6)
            let starts = turns.compactMap { ($0["start_unix_nanos"] as? NSNumber)?.int64Value }
            #expect(starts == starts.sorted())
            #expect((turns.first?["output"] as? [[String: Any]])?.first?["role"] as? String == "assistant")
            #expect((d["trace_ids"] as? [String])?.count == F.traceCount / 6)
            #expect((d["session"] as? [String: Any])?["user_id"] as? String == "user-1")
            #expect(try await client.get("/api/sessions/no-such-session").status == .notFound)

            let users = try await client.json("/api/users").items
            #expect(Set(users.compactMap { $0["user_id"] as? String }) == ["user-0", "user-1", "user-2", "user-3"])
            let u = try await client.json("/api/users/user-3?limit=5")
            #expect((u["user"] as? [String: Any])?["trace_count"] as? Int == F.traceCount / 4)
            #expect((u["traces"] as? [[String: Any]])?.count == 5)
            #expect((u["sessions"] as? [[String: Any]])?.isEmpty == false)
            #expect(try await client.get("/api/users/nobody").status == .notFound)
        }
    }

    @Test(arguments: TestStore.available)
    func metricsSeriesAndBreakdowns(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            let range = "from=\(F.time(0))&to=\(F.time(Int64(F.traceCount) * 60))"
            let m = try await client.json("/api/metrics?\(range)&interval=1h&group_by=model")
            #expect(m["interval_seconds"] as? Int == 3600)
            #expect(m["group_by"] as? String == "model")
            let totals = try #require(m["totals"] as? [String: Any])
            #expect(totals["requests"] as? Int == 2 * F.traceCount)
            #expect(totals["errors"] as? Int == F.traceCount / 5)
            #expect(totals["error_rate"] as? Double == 0.1)
            let p50 = try #require(totals["latency_p50_ms"] as? Double)
            let p99 = try #require(totals["latency_p99_ms"] as? Double)
            #expect(p50 >= 500 && p50 <= 530 && p99 >= p50)
            #expect(totals["ttft_p50_ms"] is Double)
            let series = try #require(m["series"] as? [[String: Any]])
            #expect(Set(series.compactMap { $0["group"] as? String }) == Set(F.models))
            for s in series {
                let points = s["points"] as? [[String: Any]] ?? []
                #expect(points.count == 5)  // 300 minutes = 5 hourly buckets
                let sum = points.reduce(0) { $0 + (($1["values"] as? [String: Any])?["requests"] as? Int ?? 0) }
                #expect(sum == (s["totals"] as? [String: Any])?["requests"] as? Int)
            }
            #expect((m["overall"] as? [[String: Any]])?.count == 5)

            let byProvider = try await client.json("/api/metrics?\(range)&interval=300&group_by=provider")
            #expect(Set((byProvider["series"] as? [[String: Any]] ?? []).compactMap { $0["group"] as? String }) == ["openai", "anthropic"])
            let byUser = try await client.json("/api/metrics?\(range)&interval=1d&group_by=user")
            #expect((byUser["series"] as? [[String: Any]])?.count == 4)
            let filtered = try await client.json("/api/metrics?\(range)&interval=5m&model=gpt-4o")
            #expect((filtered["totals"] as? [String: Any])?["requests"] as? Int == 2 * F.traceCount / 3)
            // Default range is the last 24 hours: nothing there.
            let recent = try await client.json("/api/metrics")
            #expect((recent["totals"] as? [String: Any])?["requests"] as? Int == 0)
        }
    }

    @Test(arguments: TestStore.available)
    func exportsStreamEveryRowAsCSVAndJSONL(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            // 1,200 spans: more than one store page (1,000).
            let jsonl = try await client.get("/api/export/spans?format=jsonl")
            #expect(jsonl.status == .ok)
            #expect(jsonl.headers[.contentType] == "application/x-ndjson")
            let lines = jsonl.body.split(separator: "\n")
            #expect(lines.count == F.traceCount * 4)
            let ids = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }.compactMap { $0["span_id"] as? String }
            #expect(Set(ids).count == F.traceCount * 4)

            let csv = try await client.get("/api/export/spans?format=csv&model=gpt-4o&llm_only=true")
            #expect(csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            let rows = csv.body.components(separatedBy: "\r\n").filter { !$0.isEmpty }
            #expect(rows.first?.hasPrefix("trace_id,span_id,parent_span_id,start_time") == true)
            #expect(rows.count == 1 + 2 * F.traceCount / 3)
            // JSON content with quotes and commas is quoted CSV.
            #expect(rows[1].contains("\"[{\"\"role\"\":\"\"system\"\""))

            let one = try await client.get("/api/export/spans?trace_id=\(F.traceID(3))&format=jsonl")
            #expect(one.body.split(separator: "\n").count == 4)
            let capped = try await client.get("/api/export/spans?max_rows=1500&format=jsonl")
            #expect(capped.body.split(separator: "\n").count == 1200)
            let capped2 = try await client.get("/api/export/spans?max_rows=1001&format=jsonl")
            #expect(capped2.body.split(separator: "\n").count == 1001)

            let traces = try await client.get("/api/export/traces?format=csv&status=error")
            #expect(traces.body.components(separatedBy: "\r\n").filter { !$0.isEmpty }.count == 1 + F.traceCount / 5)
            let tj = try await client.get("/api/export/traces?format=jsonl&sort=start_asc")
            #expect(tj.body.split(separator: "\n").first.map { $0.contains(F.traceID(0)) } == true)
        }
    }

    static let badInputs: [(uri: String, reason: String)] = [
        ("/api/traces?cursor=garbage", "invalid cursor"),
        ("/api/traces?limit=0", "limit"),
        ("/api/traces?limit=abc", "limit"),
        ("/api/traces?min_cost_usd=abc", "min_cost_usd"),
        ("/api/traces?min_cost_usd=-1", "min_cost_usd"),
        ("/api/traces?min_duration_ms=nan", "min_duration_ms"),
        ("/api/traces?from=yesterday", "RFC 3339"),
        ("/api/traces?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("/api/traces?status=broken", "status"),
        ("/api/traces?sort=random", "sort"),
        ("/api/traces?min_score=0.5", "score_name"),
        ("/api/traces?score_name=x&min_score=0.9&max_score=0.1", "score range"),
        ("/api/traces?modle=gpt-4o", "unknown query parameter 'modle'"),
        ("/api/metrics?interval=90", "multiple of 60"),
        ("/api/metrics?interval=5x", "interval"),
        ("/api/metrics?interval=0", "interval"),
        ("/api/metrics?group_by=color", "group_by"),
        ("/api/metrics?from=0&to=100000000&interval=60", "400 days"),
        ("/api/metrics?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&interval=60", "too many buckets"),
        ("/api/export/spans?format=xml", "format"),
        ("/api/export/spans?trace_id=zz", "32 hex digits"),
        ("/api/export/spans?llm_only=maybe", "llm_only"),
        ("/api/sessions?limit=100000", "limit"),
        ("/api/users?from=x", "from"),
    ]

    @Test(arguments: TestStore.available)
    func badInputIs400WithTheReason(_ store: TestStore) async throws {
        try await withQueryBackend(on: store, seed: false) { client, _ in
            for (uri, reason) in Self.badInputs {
                let r = try await client.get(uri)
                #expect(r.status == .badRequest, "\(uri) → \(r.status)")
                #expect(r.body.contains(reason), "\(uri): \(r.body)")
            }
        }
    }

    @Test(arguments: TestStore.available)
    func cursorsAreBoundToTheirQuery(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            let page = try await client.json("/api/traces?limit=10&model=gpt-4o")
            let cursor = try #require(page["next_cursor"] as? String)
            let ok = try await client.get("/api/traces?limit=10&model=gpt-4o&cursor=\(URLQuery.component(cursor))")
            #expect(ok.status == .ok)
            let other = try await client.get("/api/traces?limit=10&model=gpt-4o-mini&cursor=\(URLQuery.component(cursor))")
            #expect(other.status == .badRequest)
            #expect(other.body.contains("different query"))
            // Another project's key cannot use project A's cursor to read project A's rows.
            let foreign = try await client.get("/api/traces?limit=10&model=gpt-4o&cursor=\(URLQuery.component(cursor))", key: F.keyB)
            #expect(foreign.status == .badRequest)
        }
    }

    @Test(arguments: TestStore.available)
    func oneProjectsKeyNeverReadsAnothersData(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            let b = try await client.json("/api/traces?limit=1000", key: F.keyB).items
            #expect(b.map { $0["trace_id"] as? String } == [String(format: "%032x", 0xfeed)])
            let a = try await client.json("/api/traces?limit=1000").items
            #expect(!a.contains { $0["trace_id"] as? String == String(format: "%032x", 0xfeed) })
            #expect(try await client.get("/api/traces/\(F.traceID(0))", key: F.keyB).status == .notFound)
            #expect(try await client.get("/api/traces/" + String(format: "%032x", 0xfeed)).status == .notFound)
            #expect(try await client.get("/api/sessions/session-0", key: F.keyB).status == .notFound)
            #expect(try await client.get("/api/sessions/other-session").status == .notFound)
            #expect(try await client.get("/api/users/user-0", key: F.keyB).status == .notFound)
            #expect(try await client.get("/api/users/other-user").status == .notFound)
            #expect(try await client.json("/api/sessions", key: F.keyB).items.map { $0["session_id"] as? String } == ["other-session"])
            #expect(try await client.json("/api/users", key: F.keyB).items.map { $0["user_id"] as? String } == ["other-user"])
            let m = try await client.json("/api/metrics?from=\(F.time(0))&to=\(F.time(86_400))&interval=1d", key: F.keyB)
            #expect((m["totals"] as? [String: Any])?["requests"] as? Int == 2)
            let textA = try await client.get("/api/traces?q=other-project-secret")
            #expect(textA.body.contains("\"items\":[]"))
            let exportA = try await client.get("/api/export/spans?format=csv")
            #expect(!exportA.body.contains("other-project-secret"))
            let exportB = try await client.get("/api/export/spans?format=jsonl&trace_id=\(F.traceID(1))", key: F.keyB)
            #expect(exportB.body.isEmpty)
            // No key or a wrong key: 401 on every route.
            for uri in ["/api/traces", "/api/traces/\(F.traceID(0))", "/api/sessions", "/api/users", "/api/metrics", "/api/export/spans"] {
                #expect(try await client.get(uri, key: nil).status == .unauthorized)
                #expect(try await client.get(uri, key: "wrong").status == .unauthorized)
            }
        }
    }

    @Test(arguments: TestStore.available)
    func sqlLookingInputIsJustText(_ store: TestStore) async throws {
        try await withQueryBackend(on: store) { client, _ in
            let hostile = ["x' OR '1'='1", "'; DROP TABLE spans; --", "%' OR 1=1 --", "\" OR \"\"=\"", "_%", "\\", "1) UNION SELECT * FROM api_keys --"]
            for h in hostile {
                let e = URLQuery.component(h)
                for param in ["model", "service", "provider", "user_id", "session_id", "tag", "q", "score_name"] {
                    let r = try await client.get("/api/traces?\(param)=\(e)")
                    #expect(r.status == .ok, "\(param)=\(h): \(r.status) \(r.body.prefix(200))")
                    #expect(r.body.contains("\"items\":[]"), "\(param)=\(h) matched rows: \(r.body.prefix(200))")
                }
                #expect(try await client.get("/api/sessions/\(e)").status == .notFound)
                #expect(try await client.get("/api/users/\(e)").status == .notFound)
                #expect(try await client.get("/api/metrics?model=\(e)&group_by=model").status == .ok)
                #expect(try await client.get("/api/export/spans?model=\(e)").body.isEmpty)
            }
            // Everything is still there.
            let all = try await client.json("/api/traces?limit=1000").items
            #expect(all.count == F.traceCount)
        }
    }

    @Test(arguments: TestStore.available)
    func otlpIngestedThroughHTTPIsQueryable(_ store: TestStore) async throws {
        try await withQueryBackend(on: store, seed: false) { client, _ in
            let now = UInt64(Date().timeIntervalSince1970 * 1e9)
            let traceID = "0af7651916cd43dd8448eb211c80319c"
            let body = """
            {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout-api"}}]},
             "scopeSpans":[{"scope":{"name":"test"},"spans":[
              {"traceId":"\(traceID)","spanId":"b7ad6b7169203331","name":"POST /chat","kind":2,
               "startTimeUnixNano":"\(now)","endTimeUnixNano":"\(now + 900_000_000)","status":{"code":1},
               "attributes":[{"key":"session.id","value":{"stringValue":"conv-42"}},{"key":"user.id","value":{"stringValue":"alice"}}]},
              {"traceId":"\(traceID)","spanId":"00f067aa0ba902b7","parentSpanId":"b7ad6b7169203331","name":"chat gpt-4o-mini","kind":3,
               "startTimeUnixNano":"\(now + 100_000_000)","endTimeUnixNano":"\(now + 800_000_000)","status":{"code":1},
               "attributes":[
                {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
                {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
                {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-mini"}},
                {"key":"gen_ai.usage.input_tokens","value":{"intValue":"42"}},
                {"key":"gen_ai.usage.output_tokens","value":{"intValue":"7"}},
                {"key":"session.id","value":{"stringValue":"conv-42"}},
                {"key":"user.id","value":{"stringValue":"alice"}},
                {"key":"gen_ai.input.messages","value":{"stringValue":"[{\\"role\\":\\"user\\",\\"parts\\":[{\\"type\\":\\"text\\",\\"content\\":\\"Where is my order?\\"}]}]"}},
                {"key":"gen_ai.output.messages","value":{"stringValue":"[{\\"role\\":\\"assistant\\",\\"parts\\":[{\\"type\\":\\"text\\",\\"content\\":\\"It ships today.\\"}]}]"}}
               ]}
             ]}]}]}
            """
            let post = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(F.keyA)", .contentType: "application/json"], body: ByteBuffer(string: body)) { $0.status }
            #expect(post == .ok)
            let list = try await client.json("/api/traces?service=checkout-api")
            #expect(list.items.first?["trace_id"] as? String == traceID)
            #expect(list.items.first?["user_id"] as? String == "alice")
            let detail = try await client.json("/api/traces/\(traceID)")
            let llm = try #require(((detail["spans"] as? [[String: Any]])?.first?["children"] as? [[String: Any]])?.first)
            #expect(llm["input_tokens"] as? Int == 42)
            #expect(llm["cost_usd"] is Double)  // priced from the model table
            #expect(((llm["output"] as? [[String: Any]])?.first?["parts"] as? [[String: Any]])?.first?["content"] as? String == "It ships today.")
            let session = try await client.json("/api/sessions/conv-42")
            #expect((session["turns"] as? [[String: Any]])?.count == 1)
            let metrics = try await client.json("/api/metrics?interval=1h&group_by=model")
            #expect((metrics["totals"] as? [String: Any])?["requests"] as? Int == 1)
        }
    }
}
