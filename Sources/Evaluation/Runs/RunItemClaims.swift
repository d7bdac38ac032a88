import EvalForgeCore
import EvalForgeStore

/// Leases on run items (`eval_run_items`), shared by every backend on the metadata database.
///
/// An item is claimable when it is pending, or claimed under a lease that ran out (its owner was
/// killed, or hangs). A claim sets the owner (this process's worker id), the lease expiry and
/// counts itself (`claims`); the owner's heartbeat extends its leases; a result is recorded only
/// by an UPDATE that still finds the item claimed by the same owner under the same claim number,
/// so each item's result is recorded exactly once however many backends evaluated it.
struct RunItemClaims: Sendable {
    let db: any MetadataDatabase
    let lease: WorkLease

    struct Claimed: Sendable {
        var item: DatasetItem
        var seq: Int
        /// The item's claim count including this claim: above 1, this is a re-claim.
        var claim: Int64
    }

    struct Batch: Sendable {
        var items: [Claimed]
        /// True when `items` is a single suspect item (claimed before, its result never recorded)
        /// to evaluate alone.
        var isolated: Bool
        /// Items finished as failed by this claim because they were claimed `maxClaims` times.
        var failed = 0
    }

    /// The condition of a claimable item of table alias `ri` (binds: now).
    static let claimable = "(ri.state = 'pending' OR (ri.state = 'claimed' AND ri.lease_until_ms <= ?))"

    /// Why an item claimed `maxClaims` times fails.
    static func exhaustedReason(maxClaims: Int64, paid: Bool) -> String {
        paid
            ? "not_finished: the item was claimed \(maxClaims) times and its result was never recorded (the backend evaluating it stopped each time); its evaluation pays for model calls, which are paid at most twice per item, so it is not tried again"
            : "not_finished: the item was claimed \(maxClaims) times and the backend stopped each time before its result was recorded (did evaluating it crash the process?); it is not tried again"
    }

    /// Claims items of a running run, in one transaction: first every claimable item claimed
    /// `maxClaims` times already is finished as failed with the reason (a crash loop ends there,
    /// the run goes on); then, when a claimable item was claimed before (a suspect), that one item
    /// alone; else up to `limit` fresh items. On Postgres, rows another backend is claiming at the
    /// same moment are skipped (`FOR UPDATE SKIP LOCKED`).
    func claim(runID: String, limit: Int, maxClaims: Int, paid: Bool) async throws -> Batch {
        let maxClaims = Int64(max(1, maxClaims))
        let (owner, now) = (lease.owner, nowMs())
        let until = lease.until(now)
        let cap = RunEngine.counterCap
        return try await db.claimWrite { c in
            // A cancelled or finished run claims nothing more (items in flight finish).
            guard try c.scalar("SELECT status FROM eval_runs WHERE id = ?", [.text(runID)])?.string == "running" else { return Batch(items: [], isolated: false) }
            let failed = try c.run("""
                UPDATE eval_run_items SET state = 'done', owner = NULL, lease_until_ms = 0, error = ?, results = '[]', finished_unix_ms = ?
                WHERE run_id = ? AND (state = 'pending' OR (state = 'claimed' AND lease_until_ms <= ?)) AND claims >= ?
                """, [.text(Self.exhaustedReason(maxClaims: maxClaims, paid: paid)), .integer(now), .text(runID), .integer(now), .integer(maxClaims)])
            if failed > 0 {
                try c.run("UPDATE eval_runs SET done = MIN(done + ?, \(cap)), errors = MIN(errors + ?, \(cap)), resumes = 0 WHERE id = ?", [.integer(Int64(failed)), .integer(Int64(failed)), .text(runID)])
            }
            let columns = """
                SELECT ri.item_id, ri.seq, i.input, i.expected, i.output, i.context, i.metadata, i.source_trace_id, i.source_span_id, ri.claims
                FROM eval_run_items ri LEFT JOIN eval_items i ON i.id = ri.item_id WHERE ri.run_id = ? AND \(Self.claimable)
                """
            let lock = c.dialect.skipLocked(of: "ri")
            var rows = try c.query(columns + " AND ri.claims > 0 ORDER BY ri.seq LIMIT 1" + lock, [.text(runID), .integer(now)])
            let isolated = !rows.isEmpty
            if !isolated { rows = try c.query(columns + " ORDER BY ri.seq LIMIT ?" + lock, [.text(runID), .integer(now), .integer(Int64(max(1, limit)))]) }
            var items: [Claimed] = []
            for r in rows {
                try c.run("UPDATE eval_run_items SET state = 'claimed', claims = MIN(claims + 1, 1000000), owner = ?, lease_until_ms = ? WHERE run_id = ? AND item_id = ?",
                          [.text(owner), .integer(until), .text(runID), r[0]])
                var item = DatasetItem(id: r[0].string ?? "", input: JSON.parse(r[2].string ?? "") ?? .string(r[2].string ?? ""), expected: r[3].string, output: r[4].string, context: r[5].string,
                                       metadata: JSON.parse(r[6].string ?? "{}") ?? .object([:]), sourceTraceID: r[7].string ?? "", sourceSpanID: r[8].string ?? "")
                if r[2].isNull { item.input = .null }
                items.append(Claimed(item: item, seq: Int(r[1].int64 ?? 0), claim: min(max(0, r[9].int64 ?? 0), 999_999) + 1))
            }
            return Batch(items: items, isolated: isolated, failed: failed)
        }
    }

    /// Records an item's result inside the caller's write transaction, only while `owner` still
    /// holds the item under claim number `claim`; returns whether it did (1) or not (0: the lease
    /// ran out and another claim took the item, or the item was finished otherwise).
    static func markDone(_ c: any MetadataConnection, runID: String, itemID: String, owner: String, claim: Int64, output: String?, latencyMs: Double?, error: String?, results: String, finishedMs: Int64) throws -> Int {
        try c.run("""
            UPDATE eval_run_items SET state = 'done', owner = NULL, lease_until_ms = 0, output = ?, latency_ms = ?, error = ?, results = ?, finished_unix_ms = ?
            WHERE run_id = ? AND item_id = ? AND state = 'claimed' AND owner = ? AND claims = ?
            """, [output.map(MetadataValue.text) ?? .null, latencyMs.map(MetadataValue.real) ?? .null, error.map(MetadataValue.text) ?? .null, .text(results), .integer(finishedMs),
                  .text(runID), .text(itemID), .text(owner), .integer(claim)])
    }

    /// The heartbeat: extends the lease of every item this process holds in an unfinished run.
    @discardableResult
    func extend() async throws -> Int {
        let (owner, until) = (lease.owner, lease.until())
        return try await db.claimWrite { c in
            try c.run("UPDATE eval_run_items SET lease_until_ms = ? WHERE state = 'claimed' AND owner = ? AND run_id IN (SELECT id FROM eval_runs WHERE status IN ('pending', 'running'))",
                      [.integer(until), .text(owner)])
        }
    }

    /// A graceful stop: gives this process's claims on the run back, uncounted (the stop was not
    /// the items' fault; a crash cannot do this, so a crash counts against every item it cut).
    func release(runID: String) async throws {
        let owner = lease.owner
        try await db.claimWrite { c in
            try c.run("UPDATE eval_run_items SET state = 'pending', owner = NULL, lease_until_ms = 0, claims = MAX(0, claims - 1) WHERE run_id = ? AND state = 'claimed' AND owner = ?",
                      [.text(runID), .text(owner)])
        }
    }

    /// Runs any worker may take up: pending or running with a claimable item, or with every item
    /// done but not finished (the backend that recorded the last result stopped before finishing).
    func claimableRuns(limit: Int = 100) async throws -> [(projectID: String, runID: String)] {
        let now = nowMs()
        return try await db.read { c in
            try c.query("""
                SELECT r.project_id, r.id FROM eval_runs r WHERE r.status IN ('pending', 'running') AND (
                  EXISTS (SELECT 1 FROM eval_run_items ri WHERE ri.run_id = r.id AND \(Self.claimable))
                  OR NOT EXISTS (SELECT 1 FROM eval_run_items ri WHERE ri.run_id = r.id AND ri.state != 'done'))
                ORDER BY r.created_unix_ms LIMIT ?
                """, [.integer(now), .integer(Int64(max(1, limit)))]).map { ($0[0].string ?? "", $0[1].string ?? "") }
        }
    }

    /// Whether any item of the run is held under a live lease (some backend is working on it).
    func hasLiveClaims(_ c: any MetadataConnection, runID: String, now: Int64) throws -> Bool {
        try c.scalar("SELECT 1 FROM eval_run_items WHERE run_id = ? AND state = 'claimed' AND lease_until_ms > ? LIMIT 1", [.text(runID), .integer(now)]) != nil
    }
}
