import EvalForgeCore
import Foundation

/// Rate-limit state shared by every backend replica through the metadata file: which tier a project
/// has (and which keys override it), and the usage counters of the current windows. Replicas do not
/// write a counter per request: each reserves a chunk (a lease) of a window's budget with one
/// `lease` call and spends it locally, so the file is written once per chunk (docs/access-control.md,
/// "Rate limits").
public final class RateLimitStore: Sendable {
    public let db: any MetadataDatabase

    public init(db: any MetadataDatabase) {
        self.db = db
    }

    /// Counter rows are keyed by subject (`project:<id>`, `key:<id>`, `admin`), dimension
    /// (`requests`, `spans`…), window kind (`minute`, `day`) and the window's start (Unix seconds).
    /// Rows of past windows are deleted as new windows open.
    static let migrations = MetadataMigrator([
        .init("meta.ratelimits.001", """
            CREATE TABLE project_tiers (
                project_id TEXT PRIMARY KEY,
                tier TEXT NOT NULL,
                updated_unix_nanos INTEGER NOT NULL
            );
            CREATE TABLE key_tiers (
                key_id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                tier TEXT NOT NULL,
                updated_unix_nanos INTEGER NOT NULL
            );
            CREATE INDEX key_tiers_project ON key_tiers(project_id);
            CREATE TABLE rate_limit_counters (
                subject TEXT NOT NULL,
                dimension TEXT NOT NULL,
                "window" TEXT NOT NULL,
                window_start INTEGER NOT NULL,
                used INTEGER NOT NULL,
                PRIMARY KEY (subject, dimension, "window", window_start)
            );
            CREATE INDEX rate_limit_counters_start ON rate_limit_counters("window", window_start);
            """),
    ])

    public func migrate() async throws {
        try await Self.migrations.apply(to: db)
    }

    // MARK: Tiers

    /// The tier set for a project, or nil (the configured default applies).
    public func projectTier(_ projectID: String) async throws -> String? {
        try await db.read { c in try c.scalar("SELECT tier FROM project_tiers WHERE project_id = ?", [.text(projectID)])?.string }
    }

    /// The tier a key overrides its project's with, or nil.
    public func keyTier(_ keyID: String) async throws -> String? {
        try await db.read { c in try c.scalar("SELECT tier FROM key_tiers WHERE key_id = ?", [.text(keyID)])?.string }
    }

    /// The project's tier and, when `keyID` is given, the key's override, in one read.
    public func tiers(projectID: String, keyID: String?) async throws -> (project: String?, key: String?) {
        try await db.read { c in
            let p = try c.scalar("SELECT tier FROM project_tiers WHERE project_id = ?", [.text(projectID)])?.string
            let k = try keyID.flatMap { try c.scalar("SELECT tier FROM key_tiers WHERE key_id = ?", [.text($0)])?.string }
            return (p, k)
        }
    }

    /// Sets a project's tier (the caller has checked the name against the configured tiers) and
    /// writes the audit entry in the same transaction. 404 when the project does not exist.
    public func setProjectTier(_ projectID: String, tier: String, actor: String) async throws {
        let now = ProjectStore.nowNanos()
        try await db.write { c in
            guard try c.scalar("SELECT 1 FROM projects WHERE id = ?", [.text(projectID)]) != nil else {
                throw AccessError.notFound("no project with id '\(projectID.prefix(64))'")
            }
            let old = try c.scalar("SELECT tier FROM project_tiers WHERE project_id = ?", [.text(projectID)])?.string ?? "default"
            try c.run("INSERT INTO project_tiers (project_id, tier, updated_unix_nanos) VALUES (?, ?, ?) ON CONFLICT(project_id) DO UPDATE SET tier = excluded.tier, updated_unix_nanos = excluded.updated_unix_nanos",
                      [.text(projectID), .text(tier), .integer(now)])
            try ProjectStore.audit(c, actor: actor, action: "project.set_tier", projectID: projectID, target: projectID, detail: "tier=\(old) -> \(tier)")
            try CacheGenerations.bump(c, .rateLimitTiers)
        }
    }

    /// Sets (or with nil clears) the tier a key overrides its project's with. The key must belong to
    /// `projectID` when that is given (a project's own admin); 404 otherwise. Returns the key's project.
    @discardableResult
    public func setKeyTier(_ keyID: String, tier: String?, projectID: String?, actor: String) async throws -> String {
        let now = ProjectStore.nowNanos()
        return try await db.write { c in
            guard let owner = try c.scalar("SELECT project_id FROM api_keys WHERE id = ?", [.text(keyID)])?.string, projectID == nil || owner == projectID else {
                throw AccessError.notFound("no key with id '\(keyID.prefix(64))'")
            }
            if let tier {
                try c.run("INSERT INTO key_tiers (key_id, project_id, tier, updated_unix_nanos) VALUES (?, ?, ?, ?) ON CONFLICT(key_id) DO UPDATE SET tier = excluded.tier, updated_unix_nanos = excluded.updated_unix_nanos",
                          [.text(keyID), .text(owner), .text(tier), .integer(now)])
            } else {
                try c.run("DELETE FROM key_tiers WHERE key_id = ?", [.text(keyID)])
            }
            try ProjectStore.audit(c, actor: actor, action: "key.set_tier", projectID: owner, target: keyID, detail: "tier=\(tier ?? "(project's)")")
            try CacheGenerations.bump(c, .rateLimitTiers)
            return owner
        }
    }

    /// Key overrides of a project's keys: key id → tier.
    public func keyTiers(projectID: String) async throws -> [String: String] {
        try await db.read { c in
            var out: [String: String] = [:]
            for r in try c.query("SELECT key_id, tier FROM key_tiers WHERE project_id = ?", [.text(projectID)]) {
                if let k = r["key_id"].string, let t = r["tier"].string { out[k] = t }
            }
            return out
        }
    }

    // MARK: Counters

    /// One window of one counter.
    public struct Window: Sendable, Hashable {
        public var subject: String
        public var dimension: String
        /// `minute` or `day`.
        public var kind: String
        /// Unix seconds of the window's start.
        public var start: Int64
        public init(subject: String, dimension: String, kind: String, start: Int64) {
            self.subject = subject
            self.dimension = dimension
            self.kind = kind
            self.start = start
        }
    }

    /// Reserves up to `want` units of `window`'s budget of `limit` in one transaction: grants
    /// `min(want, limit - used)` (never below 0) and adds it to the counter, so the grants of every
    /// replica together never exceed the limit. With `force`, grants all of `want` even past the
    /// limit (usage learned after the fact, e.g. a judge call's tokens), the counter saturating.
    /// Returns the grant and the counter after it. Rows of windows that ended before
    /// `expireBefore` are deleted in the same transaction.
    public func lease(_ window: Window, want: Int64, limit: Int64, force: Bool = false, expireBefore: Int64? = nil) async throws -> (granted: Int64, used: Int64) {
        let want = max(0, want)
        let limit = max(0, limit)
        return try await db.write { c in
            if let expireBefore {
                try c.run("DELETE FROM rate_limit_counters WHERE \"window\" = ? AND window_start < ?", [.text(window.kind), .integer(expireBefore)])
            }
            let used = try c.scalar("SELECT used FROM rate_limit_counters WHERE subject = ? AND dimension = ? AND \"window\" = ? AND window_start = ?",
                                    [.text(window.subject), .text(window.dimension), .text(window.kind), .integer(window.start)])?.int64 ?? 0
            let granted = force ? want : min(want, max(0, limit.subtractingSaturated(used)))
            let after = used.addingSaturated(granted)
            if granted > 0 {
                try c.run("""
                    INSERT INTO rate_limit_counters (subject, dimension, "window", window_start, used) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(subject, dimension, "window", window_start) DO UPDATE SET used = excluded.used
                    """, [.text(window.subject), .text(window.dimension), .text(window.kind), .integer(window.start), .integer(after)])
            }
            return (granted, after)
        }
    }

    /// What every counter of `subjects` has used in the windows starting at `minuteStart` and
    /// `dayStart`: subject → dimension → window kind → used (leased, which includes what replicas
    /// hold but have not spent yet).
    public func usage(subjects: [String], minuteStart: Int64, dayStart: Int64) async throws -> [String: [String: [String: Int64]]] {
        guard !subjects.isEmpty else { return [:] }
        return try await db.read { c in
            var out: [String: [String: [String: Int64]]] = [:]
            let marks = subjects.map { _ in "?" }.joined(separator: ",")
            let rows = try c.query("""
                SELECT subject, dimension, "window", used FROM rate_limit_counters
                WHERE subject IN (\(marks)) AND ((\"window\" = 'minute' AND window_start = ?) OR (\"window\" = 'day' AND window_start = ?))
                """, subjects.map { .text($0) } + [.integer(minuteStart), .integer(dayStart)])
            for r in rows {
                guard let s = r["subject"].string, let d = r["dimension"].string, let w = r["window"].string else { continue }
                out[s, default: [:]][d, default: [:]][w] = r["used"].int64 ?? 0
            }
            return out
        }
    }
}
