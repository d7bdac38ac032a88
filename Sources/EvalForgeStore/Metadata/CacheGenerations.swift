import Foundation

/// A kind of per-backend cache whose source of truth can change through another backend. Each has
/// one generation counter in the metadata database (`cache_generations`): whatever changes the
/// source adds one to it, and every backend polls the counters (`CacheGenerations.read`, one small
/// query per interval, not per request) and forgets its copy when one moved. docs/scaling.md,
/// "Caches with several backends".
public enum CacheGeneration: String, Sendable, CaseIterable {
    /// The instance admin token's hash (`ProjectStore.isAdminToken`).
    case adminToken = "admin_token"
    /// Project and key rate-limit tiers (`RateLimiter`'s tier cache).
    case rateLimitTiers = "rate_limit_tiers"
    /// Telemetry rows were deleted (retention, a project's deletion): the ClickHouse store's merged
    /// metric hours and multi-row trace sets, which are checked against row counts that only a
    /// delete can lower.
    case telemetryDeletes = "telemetry_deletes"
}

/// The generation counters of `CacheGeneration` (table `cache_generations`, created by
/// `ProjectStore`'s migrations).
public enum CacheGenerations {
    /// A counter past this starts again at 1 (any change is what matters, not the value).
    static let wrapAt: Int64 = 1 << 62

    /// Adds one to `kind`'s counter inside the caller's transaction, so the change and its
    /// announcement commit together.
    public static func bump(_ c: any MetadataConnection, _ kind: CacheGeneration) throws {
        try c.run("""
            INSERT INTO cache_generations (name, generation) VALUES (?, 1)
            ON CONFLICT (name) DO UPDATE SET generation = CASE WHEN cache_generations.generation >= ? THEN 1 ELSE cache_generations.generation + 1 END
            """, [.text(kind.rawValue), .integer(wrapAt)])
    }

    /// Adds one to `kind`'s counter in its own transaction (after a change outside the metadata
    /// database, e.g. telemetry deleted from ClickHouse).
    public static func bump(_ db: any MetadataDatabase, _ kind: CacheGeneration) async throws {
        try await db.write { c in try bump(c, kind) }
    }

    /// Every counter; a kind never bumped is absent (generation 0).
    public static func read(_ db: any MetadataDatabase) async throws -> [CacheGeneration: Int64] {
        try await db.read { c in
            var out: [CacheGeneration: Int64] = [:]
            try c.forEach("SELECT name, generation FROM cache_generations") { row in
                if let name = row[0].string, let kind = CacheGeneration(rawValue: name), let g = row[1].int64 { out[kind] = g }
            }
            return out
        }
    }
}
