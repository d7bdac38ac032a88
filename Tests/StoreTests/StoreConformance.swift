import EvalForgeModel
import EvalForgeStore
import Foundation
import Testing

/// The behaviour every `SpanStore` must have. Each store's test file runs `runAll(store)` (or the
/// checks one by one) against a real instance: SQLite on a temporary file, ClickHouse 18.16 and a
/// current ClickHouse engine (chdb) over HTTP.
enum StoreConformance {
    static let traces = 30

    static func runAll(_ store: any SpanStore) async throws {
        try await idempotentInsert(store)
        try await traceRoundTrip(store)
        try await projectIsolation(store)
        try await traceListFiltersAndPages(store)
        try await traceListAcrossBatches(store)
        try await metricsAreExact(store)
        try await sessionsUsersAndSpans(store)
        try await scores(store)
        try await badArguments(store)
    }

    /// A batch stored twice is stored once: spans and rollups are not doubled.
    static func idempotentInsert(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("idem")
        let batch = StoreFixtures.batch(0..<10, projectID: p, batchID: "b-1")
        #expect(try await store.insert(batch) == .stored)
        #expect(try await store.insert(batch) == .duplicate)
        // The same spans under another batch id (an overlapping resend) add no span rows.
        let overlap = StoreBatch(projectID: p, batchID: "b-2", spans: Array(batch.spans.prefix(8)), rollups: [])
        #expect(try await store.insert(overlap) == .stored)
        let page = try await store.listSpans(SpanFilter(trace: TraceFilter(projectID: p)), limit: 1000, cursor: nil)
        #expect(page.items.count == batch.spans.count)
        let m = try await store.metrics(MetricsQuery(projectID: p, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 86_400, intervalSeconds: 86_400))
        let requests = m.reduce(0) { $0 + $1.value.requests }
        #expect(requests == UInt64(batch.spans.filter(\.isLLMCall).count))
    }

    /// Every field of a span comes back as stored, spans ordered by start.
    static func traceRoundTrip(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("rt")
        let batch = StoreFixtures.batch(0..<3, projectID: p, batchID: "rt")
        _ = try await store.insert(batch)
        let tid = StoreFixtures.traceID(1)
        let got = try await store.trace(projectID: p, traceID: tid)
        let want = batch.spans.filter { $0.traceID == tid }.sorted { ($0.startUnixNanos, $0.spanID) < ($1.startUnixNanos, $1.spanID) }
        #expect(got.count == want.count)
        for (g, w) in zip(got, want) {
            #expect(g == w, "span \(w.spanID) differs after a round trip")
        }
        #expect(try await store.trace(projectID: p, traceID: String(repeating: "0", count: 31) + "9").isEmpty)
    }

    /// One project's data is invisible to another.
    static func projectIsolation(_ store: any SpanStore) async throws {
        let a = StoreFixtures.uniqueProject("iso-a")
        let b = StoreFixtures.uniqueProject("iso-b")
        _ = try await store.insert(StoreFixtures.batch(0..<5, projectID: a, batchID: "same-id"))
        // The same batch id in another project is a different batch.
        #expect(try await store.insert(StoreFixtures.batch(100..<101, projectID: b, batchID: "same-id")) == .stored)
        #expect(try await store.trace(projectID: b, traceID: StoreFixtures.traceID(0)).isEmpty)
        let list = try await store.listTraces(TraceFilter(projectID: b), sort: .startDesc, limit: 100, cursor: nil)
        #expect(list.items.map(\.traceID) == [StoreFixtures.traceID(100)])
        try await store.insertScores([ScoreRow(id: "s-iso", projectID: a, traceID: StoreFixtures.traceID(0), name: "quality", value: 1, createdUnixNanos: 1)])
        #expect(try await store.scores(projectID: b, traceIDs: [StoreFixtures.traceID(0)]).isEmpty)
        let m = try await store.metrics(MetricsQuery(projectID: b, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 7 * 86_400, intervalSeconds: 86_400))
        #expect(m.reduce(0) { $0 + $1.value.requests } == 2)
    }

    static func allPages(_ store: any SpanStore, _ filter: TraceFilter, sort: TraceSort, limit: Int) async throws -> [TraceSummary] {
        var out: [TraceSummary] = []
        var cursor: String?
        repeat {
            let page = try await store.listTraces(filter, sort: sort, limit: limit, cursor: cursor)
            out += page.items
            cursor = page.nextCursor
        } while cursor != nil && out.count < 10_000
        return out
    }

    /// Filters select the right traces; pages are complete, ordered and never overlap.
    static func traceListFiltersAndPages(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("list")
        let batch = StoreFixtures.batch(0..<traces, projectID: p, batchID: "list")
        _ = try await store.insert(batch)
        let all = try await allPages(store, TraceFilter(projectID: p), sort: .startDesc, limit: 7)
        #expect(all.count == traces)
        #expect(Set(all.map(\.traceID)).count == traces)
        #expect(all.map(\.startUnixNanos) == all.map(\.startUnixNanos).sorted(by: >))
        let first = try #require(all.last)
        #expect(first.traceID == StoreFixtures.traceID(0))
        #expect(first.name == "agent.run")
        #expect(first.spanCount == 4)
        #expect(first.llmCalls == 2)
        #expect(first.userID == "user-0" && first.sessionID == "session-0")
        #expect(first.inputTokens == 200 && first.outputTokens == 43)
        #expect(Set(first.models) == ["gpt-4o-mini"])
        #expect(abs(first.costUSD - 0.003) < 1e-9)
        #expect(first.durationNanos == 2_000_000_000)

        let asc = try await allPages(store, TraceFilter(projectID: p), sort: .startAsc, limit: 8)
        #expect(asc.map(\.traceID) == all.map(\.traceID).reversed())
        let byCost = try await allPages(store, TraceFilter(projectID: p), sort: .costDesc, limit: 4)
        #expect(byCost.count == traces)
        #expect(byCost.map(\.costUSD) == byCost.map(\.costUSD).sorted(by: >))
        let byDuration = try await allPages(store, TraceFilter(projectID: p), sort: .durationDesc, limit: 9)
        #expect(byDuration.first?.traceID == StoreFixtures.traceID(traces - 1))

        func ids(_ f: TraceFilter) async throws -> Set<String> { Set(try await allPages(store, f, sort: .startDesc, limit: 50).map(\.traceID)) }
        func expected(_ pred: (Int) -> Bool) -> Set<String> { Set((0..<traces).filter(pred).map(StoreFixtures.traceID)) }
        #expect(try await ids(TraceFilter(projectID: p, model: "claude-sonnet-4-5")) == expected { $0 % 3 == 1 })
        #expect(try await ids(TraceFilter(projectID: p, provider: "openai")) == expected { $0 % 3 != 1 })
        #expect(try await ids(TraceFilter(projectID: p, service: "svc-1")) == expected { $0 % 2 == 1 })
        #expect(try await ids(TraceFilter(projectID: p, status: .error)) == expected { $0 % 5 == 4 })
        #expect(try await ids(TraceFilter(projectID: p, status: .ok)) == expected { $0 % 5 != 4 })
        #expect(try await ids(TraceFilter(projectID: p, userID: "user-2")) == expected { $0 % 4 == 2 })
        #expect(try await ids(TraceFilter(projectID: p, sessionID: "session-5")) == expected { $0 % 6 == 5 })
        #expect(try await ids(TraceFilter(projectID: p, tag: "beta")) == expected { $0 % 2 == 0 })
        #expect(try await ids(TraceFilter(projectID: p, text: "zebra")) == [StoreFixtures.traceID(7)])
        let from = (StoreFixtures.baseUnix + 10 * 60) * 1_000_000_000
        let to = (StoreFixtures.baseUnix + 20 * 60) * 1_000_000_000
        #expect(try await ids(TraceFilter(projectID: p, from: from, to: to)) == expected { (10..<20).contains($0) })
        #expect(try await ids(TraceFilter(projectID: p, minDurationNanos: 2_025_000_000)) == expected { $0 >= 25 })
        // Cost per trace: 0.001 * (1 + i%3) + (claude's second call unknown ? 0 : 0.001 * (2 + i%3)).
        let costs = Dictionary(uniqueKeysWithValues: all.map { ($0.traceID, $0.costUSD) })
        let expensive = Set(costs.filter { $0.value >= 0.007 - 1e-9 }.map(\.key))
        #expect(try await ids(TraceFilter(projectID: p, minCostUSD: 0.007 - 1e-9)) == expensive)
        #expect(!expensive.isEmpty)
        try await store.insertScores([
            ScoreRow(id: "sc-1", projectID: p, traceID: StoreFixtures.traceID(3), name: "relevance", value: 0.9, createdUnixNanos: 1),
            ScoreRow(id: "sc-2", projectID: p, traceID: StoreFixtures.traceID(4), name: "relevance", value: 0.2, createdUnixNanos: 2),
        ])
        #expect(try await ids(TraceFilter(projectID: p, scoreName: "relevance", minScore: 0.5)) == [StoreFixtures.traceID(3)])
        #expect(try await ids(TraceFilter(projectID: p, scoreName: "relevance", maxScore: 0.5)) == [StoreFixtures.traceID(4)])
        #expect(try await ids(TraceFilter(projectID: p, model: "gpt-4o", status: .error, userID: "user-0")) == expected { $0 % 3 == 2 && $0 % 5 == 4 && $0 % 4 == 0 })

        // A cursor from another query is refused.
        let page = try await store.listTraces(TraceFilter(projectID: p), sort: .startDesc, limit: 5, cursor: nil)
        let cursor = try #require(page.nextCursor)
        await #expect(throws: StoreError.self) {
            _ = try await store.listTraces(TraceFilter(projectID: p, model: "gpt-4o"), sort: .startDesc, limit: 5, cursor: cursor)
        }
        await #expect(throws: StoreError.self) {
            _ = try await store.listTraces(TraceFilter(projectID: p), sort: .startDesc, limit: 5, cursor: "not-a-cursor")
        }
    }

    /// What the trace list must say about `spans` (duplicates by trace and span id already removed).
    static func expectedSummaries(_ spans: [SpanRow]) -> [String: TraceSummary] {
        var out: [String: TraceSummary] = [:]
        for (id, rows) in Dictionary(grouping: spans, by: \.traceID) {
            let ordered = rows.sorted { ($0.startUnixNanos, $0.spanID) < ($1.startUnixNanos, $1.spanID) }
            let head = ordered.first { $0.parentSpanID.isEmpty } ?? ordered[0]
            let start = ordered[0].startUnixNanos
            let end = rows.map { $0.startUnixNanos + $0.durationNanos }.max() ?? start
            let user = head.parentSpanID.isEmpty && !head.userID.isEmpty ? head.userID : (rows.first { !$0.userID.isEmpty }?.userID ?? "")
            let session = head.parentSpanID.isEmpty && !head.sessionID.isEmpty ? head.sessionID : (rows.first { !$0.sessionID.isEmpty }?.sessionID ?? "")
            out[id] = TraceSummary(
                traceID: id, name: head.name, service: head.service, startUnixNanos: start, durationNanos: end - start, spanCount: rows.count,
                llmCalls: rows.filter(\.isLLMCall).count, errorCount: rows.filter(\.isError).count,
                inputTokens: rows.reduce(0) { $0 + $1.inputTokens }, outputTokens: rows.reduce(0) { $0 + $1.outputTokens },
                costUSD: rows.reduce(0) { $0 + ($1.costUSD ?? 0) }, costUnknownSpans: rows.filter { $0.isLLMCall && $0.costUSD == nil }.count,
                userID: user, sessionID: session, tags: Set(rows.flatMap(\.tags)).sorted(), models: Set(rows.map(\.model).filter { !$0.isEmpty }).sorted())
        }
        return out
    }

    /// Traces whose spans arrive in several batches (some a day apart), a batch holding a span twice
    /// and overlapping resends: every filter and sort, page by page, gives exactly the traces, order
    /// and totals of the distinct spans (a brute-force expectation), also after the store has
    /// answered queries on the first batch alone.
    static func traceListAcrossBatches(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("split")
        let n = 24
        // Costs are multiples of 1/1024 so sums are exact in binary floating point on every store.
        func spans(_ i: Int) -> [SpanRow] {
            var rows = StoreFixtures.spans(trace: i, projectID: p)
            for j in rows.indices where rows[j].costUSD != nil { rows[j].costUSD = Double((i * 7 + j * 3) % 11 + 1) / 1024 }
            if (6...17).contains(i) {
                // Twelve traces (four single-row, eight multi-row) with the same start and mostly the same
                // duration: ties across page boundaries, broken by trace id.
                for j in rows.indices { rows[j].startUnixNanos -= Int64(i - 6) * 60_000_000_000 }
                rows[0].durationNanos = 2_006_000_000
            }
            if i % 4 == 1 { rows[3].startUnixNanos += 86_400 * 1_000_000_000 + Int64(i) * 1_000_000 }  // a tool call a day later
            return rows
        }
        // Batch a: whole traces (i % 3 == 0), the root and first LLM call (1), the root only (2).
        var a: [SpanRow] = [], b: [SpanRow] = [], c: [SpanRow] = []
        for i in 0..<n {
            let rows = spans(i)
            switch i % 3 {
            case 0: a += rows
            case 1: a += rows[0...1]; b += rows[2...3]
            default: a += rows[0...0]; b += rows[1...2]; c += rows[3...3]
            }
        }
        c.append(spans(0)[1])  // a span already stored, inside a batch that holds it twice
        c.append(spans(0)[1])
        func put(_ id: String, _ rows: [SpanRow]) async throws {
            #expect(try await store.insert(StoreBatch(projectID: p, batchID: id, spans: rows, rollups: [])) == .stored)
        }
        try await put("a", a)
        // Queries on the first batch alone (the ClickHouse store remembers what it found).
        let early = try await allPages(store, TraceFilter(projectID: p), sort: .startDesc, limit: 10)
        #expect(early.count == n)
        _ = try await allPages(store, TraceFilter(projectID: p, status: .error), sort: .durationDesc, limit: 10)
        try await put("b", b)
        try await put("c", c)
        // An overlapping resend of the first traces under another batch id, with one new trace.
        try await put("d", spans(0) + spans(1) + spans(4) + spans(n))
        let distinct = Dictionary((0...n).flatMap(spans).map { ($0.traceID + "/" + $0.spanID, $0) }, uniquingKeysWith: { a, _ in a }).values
        let want = expectedSummaries(Array(distinct))
        let byTrace = Dictionary(grouping: distinct, by: \.traceID)
        func any(_ id: String, _ pred: (SpanRow) -> Bool) -> Bool { byTrace[id]?.contains(where: pred) ?? false }
        let from = (StoreFixtures.baseUnix + 5 * 60) * 1_000_000_000, to = (StoreFixtures.baseUnix + 15 * 60) * 1_000_000_000
        let cheap = want.values.map(\.costUSD).sorted()[want.count / 2]
        let filters: [(TraceFilter, (TraceSummary) -> Bool)] = [
            (TraceFilter(projectID: p), { _ in true }),
            (TraceFilter(projectID: p, model: "claude-sonnet-4-5"), { t in t.models.contains("claude-sonnet-4-5") }),
            (TraceFilter(projectID: p, provider: "openai"), { t in any(t.traceID) { $0.provider == "openai" } }),
            (TraceFilter(projectID: p, service: "svc-1"), { t in any(t.traceID) { $0.service == "svc-1" } }),
            (TraceFilter(projectID: p, status: .error), { t in t.errorCount > 0 }),
            (TraceFilter(projectID: p, status: .ok), { t in t.errorCount == 0 }),
            (TraceFilter(projectID: p, userID: "user-1"), { t in t.userID == "user-1" }),
            (TraceFilter(projectID: p, sessionID: "session-4"), { t in t.sessionID == "session-4" }),
            (TraceFilter(projectID: p, tag: "beta"), { t in t.tags.contains("beta") }),
            (TraceFilter(projectID: p, from: from, to: to), { t in t.startUnixNanos >= from && t.startUnixNanos < to }),
            (TraceFilter(projectID: p, minDurationNanos: 3_000_000_000), { t in t.durationNanos >= 3_000_000_000 }),
            (TraceFilter(projectID: p, minCostUSD: cheap), { t in t.costUSD >= cheap }),
            (TraceFilter(projectID: p, model: "gpt-4o-mini", status: .error), { t in t.models.contains("gpt-4o-mini") && t.errorCount > 0 }),
            (TraceFilter(projectID: p, service: "svc-0", tag: "beta", minCostUSD: cheap), { t in any(t.traceID) { $0.service == "svc-0" } && t.tags.contains("beta") && t.costUSD >= cheap }),
            (TraceFilter(projectID: p, text: "zebra"), { t in any(t.traceID) { $0.output.lowercased().contains("zebra") || $0.input.lowercased().contains("zebra") } }),
        ]
        for sort in TraceSort.allCases {
            func key(_ t: TraceSummary) -> Double {
                switch sort {
                case .startDesc, .startAsc: Double(t.startUnixNanos)
                case .costDesc: t.costUSD
                case .durationDesc: Double(t.durationNanos)
                }
            }
            for (filter, pred) in filters {
                let expected = want.values.filter(pred).sorted { x, y in
                    if key(x) != key(y) { return sort == .startAsc ? key(x) < key(y) : key(x) > key(y) }
                    return sort == .startAsc ? x.traceID < y.traceID : x.traceID > y.traceID
                }
                let got = try await allPages(store, filter, sort: sort, limit: 4)
                #expect(got.map(\.traceID) == expected.map(\.traceID), "\(sort) \(filter)")
                for (g, w) in zip(got, expected) where g.traceID == w.traceID {
                    var g2 = g, w2 = w
                    #expect(abs(g.costUSD - w.costUSD) < 1e-9, "cost of \(w.traceID)")
                    g2.costUSD = 0; w2.costUSD = 0
                    g2.tags.sort(); g2.models.sort()
                    #expect(g2 == w2, "\(sort) \(filter)")
                }
            }
        }
        // Sessions and users count each trace once.
        let sessions = try await store.listSessions(SessionFilter(projectID: p), limit: 100, cursor: nil).items
        for s in sessions {
            let traces = want.values.filter { $0.sessionID == s.sessionID }
            #expect(s.traceCount == traces.count, "session \(s.sessionID)")
            #expect(s.llmCalls == traces.reduce(0) { $0 + $1.llmCalls })
            #expect(s.inputTokens == traces.reduce(0) { $0 + $1.inputTokens })
            #expect(abs(s.costUSD - traces.reduce(0) { $0 + $1.costUSD }) < 1e-9)
            #expect(s.lastUnixNanos == traces.map { $0.startUnixNanos + $0.durationNanos }.max())
        }
        #expect(Set(sessions.map(\.sessionID)) == Set(want.values.map(\.sessionID)))
        let users = try await store.listUsers(SessionFilter(projectID: p), limit: 100, cursor: nil).items
        for u in users {
            let traces = want.values.filter { $0.userID == u.userID }
            #expect(u.traceCount == traces.count, "user \(u.userID)")
            #expect(u.errorCount == traces.reduce(0) { $0 + $1.errorCount })
            #expect(u.outputTokens == traces.reduce(0) { $0 + $1.outputTokens })
        }
    }

    /// Metrics from rollups equal the sums of what was inserted, per group; percentiles come from
    /// merged sketches.
    static func metricsAreExact(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("metrics")
        // Two batches so rollups of the same minute/key merge across inserts.
        let b1 = StoreFixtures.batch(0..<15, projectID: p, batchID: "m1")
        let b2 = StoreFixtures.batch(15..<traces, projectID: p, batchID: "m2")
        _ = try await store.insert(b1)
        _ = try await store.insert(b2)
        let spans = (b1.spans + b2.spans).filter(\.isLLMCall)
        let q = MetricsQuery(projectID: p, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 3600, intervalSeconds: 600, groupBy: .model)
        let buckets = try await store.metrics(q)
        for model in StoreFixtures.models {
            let mine = spans.filter { $0.model == model }
            let got = buckets.filter { $0.group == model }
            #expect(got.reduce(0) { $0 + $1.value.requests } == UInt64(mine.count))
            #expect(got.reduce(0) { $0 + $1.value.errors } == UInt64(mine.filter(\.isError).count))
            #expect(got.reduce(0) { $0 + $1.value.inputTokens } == UInt64(mine.reduce(0) { $0 + $1.inputTokens }))
            #expect(got.reduce(0) { $0 + $1.value.outputTokens } == UInt64(mine.reduce(0) { $0 + $1.outputTokens }))
            #expect(got.reduce(0) { $0 + $1.value.cacheReadTokens } == UInt64(mine.reduce(0) { $0 + $1.cacheReadTokens }))
            #expect(got.reduce(0) { $0 + $1.value.reasoningTokens } == UInt64(mine.reduce(0) { $0 + $1.reasoningTokens }))
            #expect(abs(got.reduce(0) { $0 + $1.value.costUSD } - mine.reduce(0) { $0 + ($1.costUSD ?? 0) }) < 1e-9)
            #expect(got.reduce(0) { $0 + $1.value.costUnknownRequests } == UInt64(mine.filter { $0.costUSD == nil }.count))
        }
        for b in buckets {
            #expect(b.bucketUnix % 600 == 0)
            #expect(b.bucketUnix >= StoreFixtures.baseUnix && b.bucketUnix < StoreFixtures.baseUnix + 3600)
        }
        // One bucket over everything: p50 of latency within the sketch's 1% relative error.
        let total = try await store.metrics(MetricsQuery(projectID: p, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 3600, intervalSeconds: 3600))
        #expect(total.count == 1)
        let sorted = spans.map { Double($0.durationNanos) / 1e6 }.sorted()
        let p50 = try #require(total.first?.value.latencyMs.quantile(0.5))
        let exact = sorted[Int((Double(sorted.count - 1) * 0.5).rounded(.down))]
        #expect(abs(p50 - exact) / exact < 0.03, "p50 \(p50) vs exact \(exact)")
        #expect(total.first?.value.ttftMs.count == UInt64(spans.count))
        // Filters narrow the rollups.
        let anthropic = try await store.metrics(MetricsQuery(projectID: p, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 3600, intervalSeconds: 3600, groupBy: .service, provider: "anthropic"))
        #expect(anthropic.reduce(0) { $0 + $1.value.requests } == UInt64(spans.filter { $0.provider == "anthropic" }.count))
        #expect(Set(anthropic.map(\.group)) == Set(spans.filter { $0.provider == "anthropic" }.map(\.service)))
        // By user (from stored spans).
        let users = try await store.metrics(MetricsQuery(projectID: p, fromUnix: StoreFixtures.baseUnix, toUnix: StoreFixtures.baseUnix + 3600, intervalSeconds: 3600, groupBy: .user))
        #expect(users.first { $0.group == "user-1" }?.value.requests == UInt64(spans.filter { $0.userID == "user-1" }.count))
    }

    static func sessionsUsersAndSpans(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("sess")
        let batch = StoreFixtures.batch(0..<traces, projectID: p, batchID: "s")
        _ = try await store.insert(batch)
        var sessions: [SessionSummary] = []
        var cursor: String?
        repeat {
            let page = try await store.listSessions(SessionFilter(projectID: p), limit: 4, cursor: cursor)
            sessions += page.items
            cursor = page.nextCursor
        } while cursor != nil
        #expect(sessions.count == 6)
        #expect(Set(sessions.map(\.sessionID)).count == 6)
        #expect(sessions.map(\.lastUnixNanos) == sessions.map(\.lastUnixNanos).sorted(by: >))
        let s5 = try #require(sessions.first { $0.sessionID == "session-5" })
        #expect(s5.traceCount == (0..<traces).filter { $0 % 6 == 5 }.count)
        #expect(s5.llmCalls == 2 * s5.traceCount)
        let users = try await store.listUsers(SessionFilter(projectID: p), limit: 100, cursor: nil)
        #expect(Set(users.items.map(\.userID)) == ["user-0", "user-1", "user-2", "user-3"])
        let u1 = try #require(users.items.first { $0.userID == "user-1" })
        #expect(u1.traceCount == (0..<traces).filter { $0 % 4 == 1 }.count)
        #expect(u1.sessionCount == Set((0..<traces).filter { $0 % 4 == 1 }.map { $0 % 6 }).count)
        let turns = try await store.sessionSpans(projectID: p, sessionID: "session-5", limit: 1000)
        #expect(turns.count == 4 * s5.traceCount)
        #expect(turns.map(\.startUnixNanos) == turns.map(\.startUnixNanos).sorted())

        var spans: [SpanRow] = []
        cursor = nil
        repeat {
            let page = try await store.listSpans(SpanFilter(trace: TraceFilter(projectID: p), llmCallsOnly: true), limit: 11, cursor: cursor)
            spans += page.items
            cursor = page.nextCursor
        } while cursor != nil
        #expect(spans.count == 2 * traces)
        #expect(Set(spans.map { $0.traceID + $0.spanID }).count == spans.count)
        let errors = try await store.listSpans(SpanFilter(trace: TraceFilter(projectID: p, status: .error)), limit: 1000, cursor: nil)
        let errorTraces = (0..<traces).filter { $0 % 5 == 4 }.count
        #expect(errors.items.count == 2 * errorTraces)
        let one = try await store.listSpans(SpanFilter(trace: TraceFilter(projectID: p), traceIDs: [StoreFixtures.traceID(2)]), limit: 1000, cursor: nil)
        #expect(one.items.count == 4)
    }

    static func scores(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("scores")
        let t = StoreFixtures.traceID(1)
        try await store.insertScores([
            ScoreRow(id: "a", projectID: p, traceID: t, name: "helpfulness", value: 0.5, label: "ok", source: .experiment, evaluator: "judge.helpfulness@1", runID: "run-1", createdUnixNanos: 10),
            ScoreRow(id: "b", projectID: p, traceID: t, spanID: StoreFixtures.spanID(1, 1), name: "json_valid", value: 1, dataType: .boolean, source: .online, runID: "rule-1", createdUnixNanos: 11),
            ScoreRow(id: "c", projectID: p, sessionID: "session-1", name: "thumbs", label: "up", dataType: .categorical, source: .api, comment: "great", createdUnixNanos: 12),
        ])
        // Same id again: the later value wins, one row.
        try await store.insertScores([ScoreRow(id: "a", projectID: p, traceID: t, name: "helpfulness", value: 0.75, label: "good", source: .experiment, evaluator: "judge.helpfulness@1", runID: "run-1", createdUnixNanos: 13)])
        let byTrace = try await store.scores(projectID: p, traceIDs: [t])
        #expect(byTrace.count == 2)
        #expect(byTrace.first { $0.id == "a" }?.value == 0.75)
        #expect(byTrace.first { $0.id == "a" }?.label == "good")
        #expect(byTrace.first { $0.id == "b" }?.dataType == .boolean)
        #expect(try await store.scores(projectID: p, runID: "run-1").map(\.id) == ["a"])
        let session = try await store.scores(projectID: p, sessionID: "session-1")
        #expect(session.map(\.id) == ["c"])
        #expect(session.first?.comment == "great")
        #expect(session.first?.value == nil)
    }

    static func badArguments(_ store: any SpanStore) async throws {
        let p = StoreFixtures.uniqueProject("bad")
        await #expect(throws: StoreError.self) { _ = try await store.listTraces(TraceFilter(projectID: p), sort: .startDesc, limit: 0, cursor: nil) }
        await #expect(throws: StoreError.self) { _ = try await store.metrics(MetricsQuery(projectID: p, fromUnix: 0, toUnix: 3600, intervalSeconds: 45)) }
        await #expect(throws: StoreError.self) { _ = try await store.metrics(MetricsQuery(projectID: p, fromUnix: 3600, toUnix: 0, intervalSeconds: 60)) }
        // Hostile strings are data, not SQL.
        let hostile = "x' OR '1'='1"
        #expect(try await store.listTraces(TraceFilter(projectID: hostile), sort: .startDesc, limit: 10, cursor: nil).items.isEmpty)
        #expect(try await store.listTraces(TraceFilter(projectID: p, model: hostile, text: "%_\\'"), sort: .startDesc, limit: 10, cursor: nil).items.isEmpty)
    }
}
