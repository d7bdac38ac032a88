import EvalForgeModel
import EvalForgeStore
import Foundation
import Testing

/// Retention on any store (SQLite, ClickHouse 18.16, current ClickHouse), through `deleteExpired`
/// with several projects at once. "Today" is `StoreFixtures.baseUnix`; project `p` keeps 30 days,
/// `q` and `r` 100 days (every project has a retention: `everyProject`).
///
/// - month A (130 days ago, 2025-08): only `p`, and before every cutoff — a ClickHouse store drops
///   the whole partition;
/// - month B (70 days ago, 2025-10): `p` and `q` — `p`'s rows are deleted, `q`'s stay;
/// - yesterday: `p`, `q`, `r` — kept;
/// - two `p` traces with spans in month B and yesterday keep a summary of their remaining spans.
enum RetentionConformance {
    static let day: Int64 = 86_400
    static let today = StoreFixtures.baseUnix
    static let monthA = today - 130 * day
    static let monthB = today - 70 * day
    static let yesterday = today - day
    /// `p`'s cutoff: the start of the day 30 days ago.
    static let cutoffNanos = (today - 30 * day) * 1_000_000_000
    /// `q`'s and `r`'s: 100 days ago (after month A, before month B).
    static let longCutoffNanos = (today - 100 * day) * 1_000_000_000
    static func cutoffs(p: String, q: String, r: String) -> [String: Int64] { [p: cutoffNanos, q: longCutoffNanos, r: longCutoffNanos] }
    /// Trace indexes per period (distinct trace ids); trace 9 straddles month B and yesterday.
    static let tracesA = 0..<3, tracesB = 3..<6, tracesRecent = 6..<9, straddler = 9
    /// A straddler stored in one batch (one ClickHouse summary row spanning the cutoff).
    static let straddlerOneBatch = 10

    /// Trace `i`'s fixture spans moved to `dayStart` (same minute offsets as the fixture).
    static func spans(_ i: Int, project: String, at dayStart: Int64) -> [SpanRow] {
        let delta = (dayStart - today) * 1_000_000_000
        return StoreFixtures.spans(trace: i, projectID: project).map { s in
            var s = s
            s.startUnixNanos += delta
            return s
        }
    }

    static func batch(_ spans: [SpanRow], project: String, id: String) -> StoreBatch {
        StoreBatch(projectID: project, batchID: id, spans: spans, rollups: StoreFixtures.rollups(spans))
    }

    /// The straddling trace: its root and first LLM span in month B, the rest yesterday.
    static func straddlerSpans(_ i: Int = straddler, project: String) -> (old: [SpanRow], recent: [SpanRow]) {
        let old = spans(i, project: project, at: monthB)
        let recent = spans(i, project: project, at: yesterday)
        return (Array(old.prefix(2)), Array(recent.suffix(2)))
    }

    static func load(_ store: any SpanStore, p: String, q: String, r: String) async throws {
        for (project, periods) in [(p, [(tracesA, monthA), (tracesB, monthB), (tracesRecent, yesterday)]), (q, [(tracesB, monthB), (tracesRecent, yesterday)]), (r, [(tracesRecent, yesterday)])] {
            for (n, (range, at)) in periods.enumerated() {
                let rows = range.flatMap { Self.spans($0, project: project, at: at) }
                #expect(try await store.insert(batch(rows, project: project, id: "b\(n)")) == .stored)
            }
        }
        // The straddler in two batches (as a long trace flushed twice).
        let s = straddlerSpans(project: p)
        #expect(try await store.insert(batch(s.old, project: p, id: "s-old")) == .stored)
        #expect(try await store.insert(batch(s.recent, project: p, id: "s-new")) == .stored)
        let one = straddlerSpans(straddlerOneBatch, project: p)
        #expect(try await store.insert(batch(one.old + one.recent, project: p, id: "s-one")) == .stored)
        var scores: [ScoreRow] = []
        for project in [p, q] {
            scores.append(ScoreRow(id: "old-\(project)", projectID: project, traceID: StoreFixtures.traceID(3), name: "quality", value: 0.5, createdUnixNanos: (monthB + 60) * 1_000_000_000))
            scores.append(ScoreRow(id: "new-\(project)", projectID: project, traceID: StoreFixtures.traceID(6), name: "quality", value: 0.9, createdUnixNanos: (yesterday + 60) * 1_000_000_000))
        }
        try await store.insertScores(scores)
    }

    /// What must not change: metrics by day (every day of `q` and `r`, yesterday of `p`) and the
    /// kept trace lists.
    struct Snapshot: Equatable {
        var pYesterday: [MetricsBucket]
        var q: [MetricsBucket]
        var r: [MetricsBucket]
        var qTraces: [String]
        var rTraces: [String]
    }

    static func snapshot(_ store: any SpanStore, p: String, q: String, r: String) async throws -> Snapshot {
        func daily(_ project: String, from: Int64, to: Int64) async throws -> [MetricsBucket] {
            try await store.metrics(MetricsQuery(projectID: project, fromUnix: from, toUnix: to, intervalSeconds: day, groupBy: .model))
        }
        func ids(_ project: String) async throws -> [String] {
            try await StoreConformance.allPages(store, TraceFilter(projectID: project), sort: .startAsc, limit: 100).map(\.traceID)
        }
        return Snapshot(pYesterday: try await daily(p, from: yesterday, to: today), q: try await daily(q, from: today - 140 * day, to: today),
                        r: try await daily(r, from: today - 140 * day, to: today), qTraces: try await ids(q), rTraces: try await ids(r))
    }

    /// Loads, applies `p`'s cutoff, and checks what went and what stayed. Returns the rows deleted.
    @discardableResult
    static func run(_ store: any SpanStore, p: String = "p", q: String = "q", r: String = "r") async throws -> Int {
        try await load(store, p: p, q: q, r: r)
        let before = try await snapshot(store, p: p, q: q, r: r)
        #expect(before.pYesterday.reduce(0) { $0 + $1.value.requests } > 0)
        #expect(try await store.countSpans(projectID: p, fromUnixNanos: nil, toUnixNanos: cutoffNanos) == (tracesA.count + tracesB.count) * 4 + 4)

        let deleted = try await store.deleteExpired(cutoffs(p: p, q: q, r: r), everyProject: true)
        #expect(deleted > 0)

        // p: nothing before the cutoff is left: spans, traces, rollups, scores.
        #expect(try await store.countSpans(projectID: p, fromUnixNanos: nil, toUnixNanos: cutoffNanos) == 0)
        #expect(try await store.countSpans(projectID: p, fromUnixNanos: cutoffNanos, toUnixNanos: nil) == tracesRecent.count * 4 + 4)
        let old = try await store.metrics(MetricsQuery(projectID: p, fromUnix: today - 140 * day, toUnix: today - 30 * day, intervalSeconds: day))
        #expect(old.reduce(0) { $0 + $1.value.requests } == 0, "rollups of expired days are gone: \(old)")
        let traces = try await StoreConformance.allPages(store, TraceFilter(projectID: p), sort: .startAsc, limit: 100)
        #expect(traces.count == tracesRecent.count + 2)
        #expect(Set(traces.map(\.traceID)) == Set((Array(tracesRecent) + [straddler, straddlerOneBatch]).map(StoreFixtures.traceID)))
        // The straddlers are summarized from their remaining spans.
        for i in [straddler, straddlerOneBatch] {
            let s = try #require(traces.first { $0.traceID == StoreFixtures.traceID(i) })
            #expect(s.spanCount == 2 && s.startUnixNanos >= cutoffNanos, "straddler \(i) summary: \(s)")
            #expect(try await store.trace(projectID: p, traceID: StoreFixtures.traceID(i)).count == 2)
        }
        #expect(try await store.trace(projectID: p, traceID: StoreFixtures.traceID(3)).isEmpty)
        #expect(try await store.scores(projectID: p, traceIDs: [StoreFixtures.traceID(3)]).isEmpty)
        #expect(try await store.scores(projectID: p, traceIDs: [StoreFixtures.traceID(6)]).count == 1)

        // Kept days and the other projects are unchanged (rollups of yesterday included).
        let after = try await snapshot(store, p: p, q: q, r: r)
        #expect(after == before)
        #expect(try await store.countSpans(projectID: q, fromUnixNanos: nil, toUnixNanos: nil) == (tracesB.count + tracesRecent.count) * 4)
        #expect(try await store.scores(projectID: q, traceIDs: [StoreFixtures.traceID(3)]).count == 1)

        // A second run finds nothing more.
        #expect(try await store.deleteExpired(cutoffs(p: p, q: q, r: r), everyProject: true) == 0)
        #expect(try await snapshot(store, p: p, q: q, r: r) == before)
        return deleted
    }
}
