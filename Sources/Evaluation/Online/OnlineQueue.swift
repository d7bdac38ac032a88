import EvalForgeStore

/// The durable online-evaluation queue in the metadata file (tables of `eval.003_online_queue`).
///
/// Ingest enqueues references to stored spans (project, trace, span, start) in one transaction
/// before it acknowledges the batch, so a batch the collector saw acknowledged is evaluated even if
/// the backend is killed right after; a resent batch (`duplicate`) enqueues again and the unique
/// key keeps one row per span. Evaluated spans stay as rows marked done for `doneRetentionMs`, so a
/// resend that arrives after the evaluation (its acknowledgement was lost) does not evaluate them
/// again; later rows are pruned. Each project holds at most `perProjectLimit` rows: what exceeds it
/// is skipped and counted (never silently). The evaluator claims rows one project at a time in
/// round-robin order, so a flooding project gets one claim in turn like every other. The queue is
/// shared by every backend on the metadata database: a claim records its owner (this process's
/// worker id) and a lease the owner's heartbeat extends (`extend`), and counts itself; a row whose
/// lease ran out (its backend was killed) is claimed again by any backend, alone, and after
/// `maxClaims` such claims it is dropped with that reason. Only the owner completes or releases a row.
struct OnlineQueue: Sendable {
    let db: any MetadataDatabase
    let perProjectLimit: Int
    let maxClaims: Int
    let lease: WorkLease
    /// How long an evaluated span is remembered against resends of its batch (a collector resends
    /// an unacknowledged batch within its retry schedule, minutes to hours during an outage).
    var doneRetentionMs: Int64 = 24 * 3600 * 1000

    /// A stored span to evaluate.
    struct Ref: Sendable, Hashable {
        var traceID: String
        var spanID: String
        var startUnixNanos: Int64
    }

    struct Row: Sendable {
        var id: Int64
        var ref: Ref
    }

    /// Rows of one project claimed together. `suspect`: a row claimed before by a process that
    /// stopped without finishing it, claimed alone so that if evaluating it kills the process again
    /// nothing else is held up with it.
    struct Claim: Sendable {
        var projectID: String
        var rows: [Row]
        var suspect: Bool
    }

    struct EnqueueOutcome: Sendable, Equatable {
        var queued = 0
        var alreadyQueued = 0
        var skippedOverShare = 0
    }

    /// Counters in the projects table stop here (never an overflow in SQLite arithmetic).
    static let counterCap: Int64 = 1 << 62

    /// Enqueues `refs` of one project in one write transaction: new rows while the project has room,
    /// rows already queued counted as such, the rest skipped (counted in the projects table).
    func enqueue(projectID: String, refs: [Ref]) async throws -> EnqueueOutcome {
        guard !refs.isEmpty else { return EnqueueOutcome() }
        let limit = Int64(perProjectLimit)
        let now = nowMs()
        return try await db.write { c in
            let queued = try c.scalar("SELECT queued FROM eval_online_projects WHERE project_id = ?", [.text(projectID)])?.int64 ?? 0
            var room = max(0, limit - max(0, queued))
            var out = EnqueueOutcome()
            for r in refs {
                if room > 0 {
                    let n = try c.run("INSERT INTO eval_online_queue (project_id, trace_id, span_id, start_ns, enqueued_unix_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, trace_id, span_id) DO NOTHING",
                                      [.text(projectID), .text(r.traceID), .text(r.spanID), .integer(r.startUnixNanos), .integer(now)])
                    if n > 0 { out.queued += 1; room -= 1 } else { out.alreadyQueued += 1 }
                } else if try c.scalar("SELECT 1 FROM eval_online_queue WHERE project_id = ? AND trace_id = ? AND span_id = ?", [.text(projectID), .text(r.traceID), .text(r.spanID)]) != nil {
                    out.alreadyQueued += 1
                } else {
                    out.skippedOverShare += 1
                }
            }
            guard out.queued > 0 || out.skippedOverShare > 0 else { return out }
            try c.run("""
                INSERT INTO eval_online_projects (project_id, queued, enqueued, skipped_over_share, last_skip_unix_ms) VALUES (?1, ?2, ?2, ?3, ?4)
                ON CONFLICT (project_id) DO UPDATE SET queued = MIN(eval_online_projects.queued + ?2, ?5), enqueued = MIN(eval_online_projects.enqueued + ?2, ?5),
                    skipped_over_share = MIN(eval_online_projects.skipped_over_share + ?3, ?5),
                    last_skip_unix_ms = COALESCE(?4, eval_online_projects.last_skip_unix_ms)
                """, [.text(projectID), .integer(Int64(out.queued)), .integer(Int64(out.skippedOverShare)), out.skippedOverShare > 0 ? .integer(now) : .null, .integer(Self.counterCap)])
            return out
        }
    }

    /// At start-up: prunes done rows past their retention and recomputes the per-project counts from
    /// the rows (in one transaction, so a backend enqueueing meanwhile is counted once). Leases are
    /// left alone: another backend may hold them, and those of a process that stopped run out.
    /// Returns the number of rows queued.
    func recover() async throws -> Int {
        try await db.write { c in
            try c.run("DELETE FROM eval_online_queue WHERE done_unix_ms IS NOT NULL AND done_unix_ms < ?", [.integer((nowMs()).addingSaturated(-doneRetentionMs))])
            try c.run("UPDATE eval_online_projects SET queued = 0")
            try c.run("""
                INSERT INTO eval_online_projects (project_id, queued) SELECT project_id, COUNT(*) FROM eval_online_queue WHERE done_unix_ms IS NULL GROUP BY project_id
                ON CONFLICT (project_id) DO UPDATE SET queued = excluded.queued
                """)
            return Int(try c.scalar("SELECT COUNT(*) FROM eval_online_queue WHERE done_unix_ms IS NULL")?.int64 ?? 0)
        }
    }

    /// Claims up to `limit` due rows of the first project after `after` (round-robin by project id)
    /// that has any, under this process's lease. Rows of that project claimed `maxClaims` times
    /// already are marked done first (a resend does not start their crash loop again) and returned
    /// in `exhausted` (the caller logs and counts them). On Postgres, rows another backend is
    /// claiming at the same moment are skipped (`FOR UPDATE SKIP LOCKED`).
    func claim(after: String?, limit: Int) async throws -> (claim: Claim?, exhausted: [(projectID: String, count: Int)]) {
        let now = nowMs()
        let (owner, leaseUntilMs) = (lease.owner, lease.until(now))
        let maxClaims = Int64(self.maxClaims)
        return try await db.claimWrite { c in
            let projects = try c.query("SELECT project_id FROM eval_online_projects WHERE queued > 0 ORDER BY project_id").compactMap { $0[0].string }
            let split = after.map { a in projects.firstIndex { $0 > a } ?? projects.count } ?? 0
            var exhausted: [(projectID: String, count: Int)] = []
            for p in projects[split...] + projects[..<split] {
                let dropped = try c.run("UPDATE eval_online_queue SET done_unix_ms = ?, lease_until_ms = 0, owner = NULL WHERE project_id = ? AND claims > 0 AND claims >= ? AND lease_until_ms <= ? AND done_unix_ms IS NULL",
                                        [.integer(now), .text(p), .integer(maxClaims), .integer(now)])
                if dropped > 0 {
                    exhausted.append((p, dropped))
                    try c.run("UPDATE eval_online_projects SET queued = MAX(0, queued - ?1), failed_after_claims = MIN(failed_after_claims + ?1, ?2) WHERE project_id = ?3",
                              [.integer(Int64(dropped)), .integer(Self.counterCap), .text(p)])
                }
                let columns = "SELECT id, trace_id, span_id, start_ns FROM eval_online_queue"
                let lock = c.dialect.skipLocked()
                var rows = try c.query(columns + " WHERE project_id = ? AND claims > 0 AND lease_until_ms <= ? AND done_unix_ms IS NULL ORDER BY id LIMIT 1" + lock, [.text(p), .integer(now)])
                let suspect = !rows.isEmpty
                if !suspect {
                    rows = try c.query(columns + " WHERE project_id = ? AND lease_until_ms <= ? AND done_unix_ms IS NULL ORDER BY id LIMIT ?" + lock, [.text(p), .integer(now), .integer(Int64(max(1, limit)))])
                }
                guard !rows.isEmpty else { continue }
                var claimed: [Row] = []
                for r in rows {
                    guard let id = r[0].int64 else { continue }
                    try c.run("UPDATE eval_online_queue SET claims = MIN(claims + 1, 1000000), lease_until_ms = ?, owner = ? WHERE id = ?", [.integer(leaseUntilMs), .text(owner), .integer(id)])
                    claimed.append(Row(id: id, ref: Ref(traceID: r[1].string ?? "", spanID: r[2].string ?? "", startUnixNanos: r[3].int64 ?? 0)))
                }
                return (Claim(projectID: p, rows: claimed, suspect: suspect), exhausted)
            }
            return (nil, exhausted)
        }
    }

    /// The earliest lease still running out (a row released with a back-off), to sleep until.
    func nextDueMs() async throws -> Int64? {
        try await db.read { c in try c.scalar("SELECT MIN(lease_until_ms) FROM eval_online_queue WHERE lease_until_ms > 0 AND done_unix_ms IS NULL")?.int64 }
    }

    /// Marks evaluated rows done — only those this process still holds: `evaluated` spans had
    /// results stored, `missing` were not found in the store, `callsRepeated` model calls were made
    /// for spans claimed before (counted per project). Returns the rows marked (0 when another
    /// claim took them after this lease ran out: that claim counts them). Prunes a bounded number
    /// of done rows older than `doneRetentionMs` on the way.
    @discardableResult
    func complete(projectID: String, ids: [Int64], evaluated: Int, missing: Int, callsRepeated: Int = 0) async throws -> Int {
        let now = nowMs()
        let pruneBefore = now.addingSaturated(-doneRetentionMs)
        let owner = lease.owner
        return try await db.write { c in
            var marked = 0
            for id in ids {
                marked += try c.run("UPDATE eval_online_queue SET done_unix_ms = ?, lease_until_ms = 0, owner = NULL WHERE id = ? AND done_unix_ms IS NULL AND owner = ?", [.integer(now), .integer(id), .text(owner)])
            }
            try c.run("DELETE FROM eval_online_queue WHERE id IN (SELECT id FROM eval_online_queue WHERE done_unix_ms IS NOT NULL AND done_unix_ms < ? LIMIT 1000)", [.integer(pruneBefore)])
            guard marked > 0 else { return 0 }
            // Counted for the rows this process marked (all of them, but for a lease that ran out).
            let share = { (n: Int) -> Int64 in Int64(marked == ids.count ? n : min(n, marked)) }
            try c.run("""
                UPDATE eval_online_projects SET queued = MAX(0, queued - ?1), evaluated = MIN(evaluated + ?2, ?4), missing = MIN(missing + ?3, ?4),
                  judge_calls_repeated = MIN(judge_calls_repeated + ?6, ?4) WHERE project_id = ?5
                """, [.integer(Int64(marked)), .integer(share(evaluated)), .integer(share(missing)), .integer(Self.counterCap), .text(projectID), .integer(Int64(max(0, callsRepeated)))])
            return marked
        }
    }

    /// Gives rows this process holds back without counting the claim (the failure was not theirs:
    /// a graceful stop, the store unavailable), due again at `dueMs`.
    func release(ids: [Int64], dueMs: Int64) async throws {
        let owner = lease.owner
        try await db.write { c in
            for id in ids {
                try c.run("UPDATE eval_online_queue SET claims = MAX(0, claims - 1), lease_until_ms = ?, owner = NULL WHERE id = ? AND done_unix_ms IS NULL AND owner = ?", [.integer(dueMs), .integer(id), .text(owner)])
            }
        }
    }

    /// The heartbeat: extends the lease of every row this process holds.
    @discardableResult
    func extend() async throws -> Int {
        let (owner, until) = (lease.owner, lease.until())
        return try await db.claimWrite { c in
            try c.run("UPDATE eval_online_queue SET lease_until_ms = ? WHERE owner = ? AND done_unix_ms IS NULL", [.integer(until), .text(owner)])
        }
    }

    func stats(projectID: String) async throws -> OnlineQueueStats {
        try await db.read { c in
            let r = try c.query("SELECT queued, enqueued, evaluated, skipped_over_share, failed_after_claims, missing, last_skip_unix_ms, judge_calls_repeated FROM eval_online_projects WHERE project_id = ?",
                                [.text(projectID)]).first
            return OnlineQueueStats(limit: perProjectLimit, queued: r?[0].int64 ?? 0, enqueued: r?[1].int64 ?? 0, evaluated: r?[2].int64 ?? 0, skippedOverShare: r?[3].int64 ?? 0,
                                    failedAfterClaims: r?[4].int64 ?? 0, missingSpans: r?[5].int64 ?? 0, lastSkipUnixMs: r?[6].int64, judgeCallsRepeated: r?[7].int64 ?? 0)
        }
    }
}

/// A project's online-evaluation queue and what happened to its spans (`GET /api/online-queue`;
/// the counters run since the metadata file was created).
public struct OnlineQueueStats: Sendable, Codable, Equatable {
    /// Most spans the project may have queued (`EVALFORGE_ONLINE_QUEUE_PER_PROJECT`).
    public var limit: Int
    public var queued: Int64
    public var enqueued: Int64
    /// Spans whose evaluation results were stored.
    public var evaluated: Int64
    /// Spans not queued because the project had `limit` spans queued already.
    public var skippedOverShare: Int64
    /// Spans dropped after being claimed twice (`maxItemClaims`, at most 2) without finishing (the
    /// backend evaluating them stopped each time).
    public var failedAfterClaims: Int64
    /// Queued spans no longer in the store when their turn came (e.g. removed by retention).
    public var missingSpans: Int64
    public var lastSkipUnixMs: Int64?
    /// Judge calls made for spans evaluated again after their first claim was lost (the backend
    /// evaluating them stopped): what crashes cost twice.
    public var judgeCallsRepeated: Int64 = 0
}
