import EvalForgeModel
import Foundation
import Synchronization

/// Traces seen without a `trace_summary` row, with when each was first seen (see
/// `ClickHouseStore.repairTraceSummaries`).
final class SummaryRepairState: Sendable {
    struct Key: Hashable, Sendable {
        var projectID: String
        var traceID: String
    }

    /// Most traces remembered as missing; beyond, the newest are left for a later pass.
    static let capacity = 100_000
    let pending = Mutex<[Key: ContinuousClock.Instant]>([:])
}

/// What one repair pass did.
public struct TraceSummaryRepairReport: Sendable, Equatable {
    /// Traces with a recent `trace_index` row and no `trace_summary` row.
    public var missing = 0
    /// Of those, traces missing for less than the settle delay: left for a later pass.
    public var settling = 0
    /// Traces that got a summary row from their spans in this pass.
    public var repaired = 0
    /// Traces that were due but are still missing afterwards (their spans are not readable yet, or
    /// an index row has no spans): tried again on the next pass.
    public var unrepaired = 0

    public init(missing: Int = 0, settling: Int = 0, repaired: Int = 0, unrepaired: Int = 0) {
        self.missing = missing
        self.settling = settling
        self.repaired = repaired
        self.unrepaired = unrepaired
    }
}

extension ClickHouseStore {
    /// Traces handled per repair pass (the candidate query's LIMIT); the rest wait for the next pass.
    static let summaryRepairLimit = 10_000
    /// Traces per repair INSERT (their ids are literals in the statement).
    static let summaryRepairChunk = 1_000

    /// Reconciliation of `trace_summary` with `trace_index`: gives every recent trace without a
    /// summary row one, aggregated from its spans with `traceSummarySelect` (the view's own SELECT).
    ///
    /// Why: the summary rows are written by the materialized view `trace_summary_mv` as a side effect
    /// of the spans insert. In cluster mode on 18.16 a replica killed after committing an insert's
    /// spans block but before the view's block loses that summary block for good: the retry (another
    /// backend or replica) is deduplicated by replicated insert deduplication, and 18.16 does not
    /// push deduplicated blocks to views. The trace has spans and `trace_index` rows, so the trace
    /// list (which reads `trace_summary`) would miss it (docs/reliability.md).
    ///
    /// What: `trace_index` rows of the last 2 days (today and yesterday in the server's zone) whose
    /// (project, trace hash) has no `trace_summary` row reaching those days (`t_last_day`). In cluster
    /// mode `distributed_product_mode=local` runs the `NOT IN` subquery per shard on the local tables,
    /// exact because a trace's index and summary rows live on one shard. The cost when nothing is
    /// missing is one pass over two days of `trace_index` and the `t_last_day` column of
    /// `trace_summary`, with a set of the window's traces (one UInt64 each) per shard.
    ///
    /// Settle delay: a trace is repaired only once it has been seen missing for `settle` (two passes
    /// at least that far apart). An extra summary row is harmless (readers aggregate a trace with
    /// more than one row from its spans), but a partial one is not: a row written while the insert
    /// is still in flight (spans and `trace_index` are inserted concurrently) or while a replica
    /// still fetches the spans would be the trace's only row and hold some of its spans for good.
    /// After the settle delay the insert has finished or failed (then its retry adds the view's row
    /// too: two rows, harmless) and replication has caught up.
    ///
    /// Several backends may run it at once: each may add a row for the same trace (harmless, and
    /// identical blocks are deduplicated on replicated tables).
    public func repairTraceSummaries(settle: Duration, now: ContinuousClock.Instant = .now) async throws -> TraceSummaryRepairReport {
        let missing = try await missingTraceSummaries(limit: Self.summaryRepairLimit)
        var report = TraceSummaryRepairReport(missing: missing.count)
        let due: [SummaryRepairState.Key] = summaryRepair.pending.withLock { pending in
            var next: [SummaryRepairState.Key: ContinuousClock.Instant] = [:]
            var due: [SummaryRepairState.Key] = []
            for key in missing {
                // A trace no longer missing is forgotten (its row arrived, or it aged out of the window).
                let first = pending[key] ?? now
                if next.count < SummaryRepairState.capacity { next[key] = first }
                if now - first >= settle { due.append(key) }
            }
            pending = next
            return due
        }
        report.settling = missing.count - due.count
        guard !due.isEmpty else { return report }
        let byProject = Dictionary(grouping: due, by: \.projectID)
        for (project, keys) in byProject {
            let ids = keys.map(\.traceID).sorted()
            var start = 0
            while start < ids.count {
                let chunk = Array(ids[start..<min(ids.count, start + Self.summaryRepairChunk)])
                start += chunk.count
                try await insertTraceSummaries(projectID: project, traceIDs: chunk)
            }
        }
        let still = Set(try await missingTraceSummaries(limit: Self.summaryRepairLimit))
        report.unrepaired = due.reduce(0) { $0 + (still.contains($1) ? 1 : 0) }
        report.repaired = due.count - report.unrepaired
        summaryRepair.pending.withLock { pending in
            for key in due where !still.contains(key) { pending[key] = nil }
        }
        return report
    }

    /// The (project, trace) pairs with a `trace_index` row of the last 2 days and no `trace_summary`
    /// row reaching those days, at most `limit`.
    ///
    /// The pair is compared as one UInt64, `cityHash64(project_id, t_hash)`: a set of integers is about
    /// 5 times cheaper than one of (String, UInt64) tuples (250,000 traces on 18.16: 0.6 s against
    /// 2.9 s on the loaded test machine). A collision with a present trace of the same window would
    /// leave a missing trace unrepaired: about n² / 2⁶⁴, nil for any real n.
    func missingTraceSummaries(limit: Int) async throws -> [SummaryRepairState.Key] {
        let sql = """
            SELECT toString(project_id), trace_id FROM \(db).trace_index
            WHERE day >= today() - 1 AND cityHash64(project_id, cityHash64(trace_id)) NOT IN (
                SELECT cityHash64(project_id, t_hash) FROM \(db).trace_summary WHERE t_last_day >= today() - 1)
            GROUP BY project_id, trace_id
            LIMIT \(max(1, limit))
            """
        var r = try await http.query(sql)
        var out: [SummaryRepairState.Key] = []
        while !r.isAtEnd {
            out.append(.init(projectID: try r.string(), traceID: try r.string()))
        }
        return out
    }

    /// One summary row per trace of `traceIDs` (one project) from all of its spans: the spans are
    /// read from the trace's first `trace_index` day on (any day, not only the window), so the row
    /// covers the whole trace. With FINAL (per shard in cluster mode, exact as a trace lives on one
    /// shard), so copies of a resent batch not merged yet do not make `t_spans` exceed `t_distinct`.
    func insertTraceSummaries(projectID: String, traceIDs: [String]) async throws {
        guard !traceIDs.isEmpty else { return }
        // Literals (not parameters): the INSERT … SELECT runs on 18.16 too; `quote` is the one escaping.
        let p = ClickHouseSQL.quote(projectID)
        let list = traceIDs.map(ClickHouseSQL.quote).joined(separator: ",")
        var r = try await http.query("SELECT toUInt32(min(day)), toUInt64(count()) FROM \(db).trace_index WHERE project_id = \(p) AND trace_id IN (\(list))")
        let firstDay = try r.integer(UInt32.self)
        guard try r.uint64() > 0 else { return }
        let cond = "project_id = \(p) AND toDate(start) >= toDate('\(Self.isoDay(Int(firstDay)))') AND trace_id IN (\(list))"
        let columns = ClickHouseFlavor.traceSummaryColumns(modern: flavor.modern)
        try await http.execute("INSERT INTO \(db).trace_summary (\(columns)) \(flavor.traceSummarySelect(from: "\(db).spans FINAL", where: cond))")
    }
}
