import EvalForgeCore
import EvalForgeStore
import Foundation
import Logging
import Synchronization

/// Whom a budget belongs to: a project (with its tier), a key that overrides its project's tier
/// (its own budget), or the instance admin token.
public struct RateLimitSubject: Sendable, Hashable {
    /// `project:<id>`, `key:<id>` or `admin`: the counter rows' subject.
    public var id: String
    public var tier: RateLimitTier

    /// The counters' subject: the budget and its tier, so a tier change starts the new tier's
    /// windows (units leased under the old tier do not count against, or for, the new one).
    public var counter: String { id + "@" + tier.name }
}

/// The outcome of counting units against a subject's budget: admitted or not, and what the
/// `X-RateLimit-*` headers say (the window with the least left: its capacity, what is left, the
/// seconds until it starts over).
public struct RateLimitDecision: Sendable, Equatable {
    public var allowed: Bool
    public var dimension: RateLimitDimension
    public var tier: String
    /// `minute` or `day`: the window the figures below are of.
    public var window: String
    public var limit: Int64
    public var remaining: Int64
    public var resetSeconds: Int64
    /// The units asked for are more than the window can ever admit (a batch larger than the
    /// per-minute span limit): retrying the same units cannot succeed.
    public var exceedsCapacity: Bool = false
}

/// Per-replica budgets backed by the shared counters of `RateLimitStore`. Each (subject, dimension,
/// window) has a local bucket of units leased from the shared counter in chunks of 1/64 of the
/// window's capacity: a request spends local units under a mutex (no I/O); only when the bucket runs
/// dry does the replica lease the next chunk (one SQLite transaction). Grants of all replicas
/// together never exceed the limit; what a replica holds unspent when the window ends (at most one
/// chunk per window) is the most the limit can be under-used by, so with two replicas accepted
/// traffic stays within 2/64 ≈ 3 % below the limit and never above it.
public final class RateLimiter: Sendable {
    public let tiers: RateLimitTiers
    let store: RateLimitStore
    let logger: Logger
    /// Unix seconds now (tests move it).
    let now: @Sendable () -> Int64
    /// How long a project's or key's tier is cached per replica, seconds: a tier change applies
    /// everywhere within it.
    let tierTTL: Int64

    /// A chunk is this fraction of a window's capacity (at least 1 unit).
    static let chunkDivisor: Int64 = 64

    struct BucketKey: Hashable {
        var subject: String
        var dimension: RateLimitDimension
        var day: Bool
    }

    struct Bucket {
        var windowStart: Int64
        /// Units leased and not spent yet.
        var tokens: Int64 = 0
        /// The shared counter as of this replica's last lease (includes every replica's leases).
        var sharedUsed: Int64 = 0
        /// The shared counter could not grant a full chunk: nothing is left in this window.
        var exhausted = false
    }

    private let buckets = Mutex<[BucketKey: Bucket]>([:])
    private let tierCache = Mutex<[String: (tier: String?, fetched: Int64)]>([:])

    public init(store: RateLimitStore, tiers: RateLimitTiers, logger: Logger, tierTTLSeconds: Int64 = 5, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.store = store
        self.tiers = tiers
        self.logger = logger
        self.tierTTL = max(0, tierTTLSeconds)
        self.now = now
    }

    public var enabled: Bool { tiers.enabled }

    // MARK: Subjects

    /// The budget a request counts against: the key's own when its key overrides the tier, else
    /// its project's; the admin token's (default tier) for the admin token; nil when limits are off.
    public func subject(projectID: String?, keyID: String?, isInstanceAdmin: Bool) async -> RateLimitSubject? {
        guard tiers.enabled else { return nil }
        if isInstanceAdmin { return RateLimitSubject(id: "admin", tier: tiers.effective(nil)) }
        guard let projectID else { return nil }
        if let keyID, let keyTier = await cachedTier("k:" + keyID, load: { try await self.store.keyTier(keyID) }) {
            return RateLimitSubject(id: "key:" + keyID, tier: tiers.effective(keyTier))
        }
        return projectSubject(projectID, tier: await cachedTier("p:" + projectID, load: { try await self.store.projectTier(projectID) }))
    }

    /// The project's own budget (evaluations, judge usage: they run for the project, not a key).
    public func projectSubject(_ projectID: String) async -> RateLimitSubject? {
        guard tiers.enabled else { return nil }
        return projectSubject(projectID, tier: await cachedTier("p:" + projectID, load: { try await self.store.projectTier(projectID) }))
    }

    func projectSubject(_ projectID: String, tier: String?) -> RateLimitSubject {
        RateLimitSubject(id: "project:" + projectID, tier: tiers.effective(tier))
    }

    /// Forgets cached tiers (after this replica changed one, so it applies at once here).
    public func invalidateTiers() {
        tierCache.withLock { $0.removeAll() }
    }

    private func cachedTier(_ key: String, load: @Sendable () async throws -> String?) async -> String? {
        let t = now()
        if let hit = tierCache.withLock({ $0[key] }), t.subtractingSaturated(hit.fetched) < tierTTL, t >= hit.fetched { return hit.tier }
        do {
            let tier = try await load()
            tierCache.withLock { cache in
                if cache.count > 100_000 { cache.removeAll() }  // bounded: keys come and go
                cache[key] = (tier, t)
            }
            return tier
        } catch {
            // The metadata file is busy or failing: the last known tier (or the default) applies.
            logger.warning("rate limits: cannot read a tier; using the last known one", metadata: ["subject": "\(key)", "error": "\(error)"])
            return tierCache.withLock { $0[key]?.tier }
        }
    }

    // MARK: Counting

    struct WindowSpec {
        var day: Bool
        var start: Int64
        var length: Int64
        var capacity: Int64
        var kind: String { day ? "day" : "minute" }
    }

    func windows(_ limit: RateLimit, at t: Int64) -> [WindowSpec] {
        let m = t - ((t % 60) + 60) % 60
        let d = t - ((t % 86_400) + 86_400) % 86_400
        return [WindowSpec(day: false, start: m, length: 60, capacity: limit.minuteCapacity), WindowSpec(day: true, start: d, length: 86_400, capacity: limit.perDay)]
    }

    /// Counts `units` of `dimension` against `subject`: admitted only when every window (minute,
    /// day) has them; nothing is taken from any window otherwise. With `force` the units are
    /// counted whatever is left (usage learned after the fact: a judge call's tokens and cost), so
    /// later requests are refused instead. A failing metadata file admits (logged): limits are for
    /// fairness, and refusing everything while SQLite is busy would be an outage.
    public func consume(_ subject: RateLimitSubject, _ dimension: RateLimitDimension, _ units: Int64, force: Bool = false) async -> RateLimitDecision {
        let units = max(0, units)
        let limit = subject.tier.limit(dimension)
        let t = now()
        let specs = windows(limit, at: t)
        if !force, let w = specs.first(where: { units > $0.capacity }) {
            var d = decision(subject, dimension, specs, t, allowed: false, blocking: w)
            d.exceedsCapacity = true
            return d
        }
        for _ in 0..<4 {
            // Spend local units when every window has enough (no I/O under the lock).
            let short: [(WindowSpec, Int64)]? = buckets.withLock { b in
                var short: [(WindowSpec, Int64)] = []
                for w in specs {
                    let key = BucketKey(subject: subject.counter, dimension: dimension, day: w.day)
                    var bucket = b[key] ?? Bucket(windowStart: w.start)
                    if bucket.windowStart != w.start { bucket = Bucket(windowStart: w.start) }
                    b[key] = bucket
                    if bucket.tokens < units { short.append((w, units - bucket.tokens)) }
                }
                if short.isEmpty || force {
                    for w in specs {
                        let key = BucketKey(subject: subject.counter, dimension: dimension, day: w.day)
                        let have = b[key]?.tokens ?? 0
                        b[key]?.tokens = have - min(units, max(0, have))
                    }
                    if short.isEmpty { return nil }
                }
                return short
            }
            guard let short else { return decision(subject, dimension, specs, t, allowed: true, blocking: nil) }
            // Lease what is missing (a chunk at least) from the shared counters.
            for (w, need) in short {
                let key = BucketKey(subject: subject.counter, dimension: dimension, day: w.day)
                if !force, buckets.withLock({ $0[key]?.exhausted == true }) {
                    return decision(subject, dimension, specs, t, allowed: false, blocking: w)
                }
                let chunk = max(1, w.capacity / Self.chunkDivisor)
                let want = force ? need : max(need, chunk)
                let window = RateLimitStore.Window(subject: subject.counter, dimension: dimension.rawValue, kind: w.kind, start: w.start)
                let granted: Int64
                do {
                    let r = try await store.lease(window, want: want, limit: w.capacity, force: force, expireBefore: w.day ? w.start - 2 * 86_400 : w.start - 3_600)
                    granted = r.granted
                    buckets.withLock { b in
                        guard var bucket = b[key], bucket.windowStart == w.start else { return }
                        // Forced units are spent on arrival (they were consumed above from what was local).
                        if !force { bucket.tokens = bucket.tokens.addingSaturated(r.granted) }
                        bucket.sharedUsed = r.used
                        if r.granted < want || r.used >= w.capacity { bucket.exhausted = true }
                        b[key] = bucket
                    }
                } catch {
                    logger.warning("rate limits: the shared counter cannot be leased; admitting", metadata: ["subject": "\(subject.id)", "dimension": "\(dimension.rawValue)", "error": "\(error)"])
                    return decision(subject, dimension, specs, t, allowed: true, blocking: nil)
                }
                if !force, granted < need, buckets.withLock({ ($0[key]?.tokens ?? 0) < units }) {
                    return decision(subject, dimension, specs, t, allowed: false, blocking: w)
                }
            }
            if force { return decision(subject, dimension, specs, t, allowed: true, blocking: nil) }
        }
        // Other requests of this replica kept taking the units leased for this one: the budget is
        // nearly spent; refuse this one rather than loop.
        return decision(subject, dimension, specs, t, allowed: false, blocking: specs[0])
    }

    /// Whether `subject` has anything left of `dimension` in every window (for usage only known
    /// afterwards: an evaluation may start while judge tokens remain). Leases a unit when the
    /// local bucket is empty, so it is honest across replicas.
    public func hasBudget(_ subject: RateLimitSubject, _ dimension: RateLimitDimension) async -> RateLimitDecision {
        let t = now()
        let specs = windows(subject.tier.limit(dimension), at: t)
        let exhausted = buckets.withLock { b in
            specs.first { w in
                guard let bucket = b[BucketKey(subject: subject.counter, dimension: dimension, day: w.day)], bucket.windowStart == w.start else { return false }
                return bucket.exhausted && bucket.tokens <= 0
            }
        }
        if let exhausted { return decision(subject, dimension, specs, t, allowed: false, blocking: exhausted) }
        // Reserve one unit, then give it back locally: it stays leased to this replica for the
        // usage that follows.
        let d = await consume(subject, dimension, 1)
        if d.allowed {
            buckets.withLock { b in
                for w in specs {
                    let key = BucketKey(subject: subject.counter, dimension: dimension, day: w.day)
                    if b[key]?.windowStart == w.start { b[key]?.tokens += 1 }
                }
            }
        }
        return d
    }

    /// The headers' figures: the window with the least left.
    func decision(_ subject: RateLimitSubject, _ dimension: RateLimitDimension, _ specs: [WindowSpec], _ t: Int64, allowed: Bool, blocking: WindowSpec?) -> RateLimitDecision {
        let figures: [(WindowSpec, Int64)] = buckets.withLock { b in
            specs.map { w in
                let bucket = b[BucketKey(subject: subject.counter, dimension: dimension, day: w.day)]
                guard let bucket, bucket.windowStart == w.start else { return (w, w.capacity) }
                return (w, max(0, w.capacity.subtractingSaturated(bucket.sharedUsed)).addingSaturated(max(0, bucket.tokens)))
            }
        }
        let chosen = blocking.flatMap { bw in figures.first { $0.0.day == bw.day } } ?? figures.min { $0.1 < $1.1 } ?? (specs[0], specs[0].capacity)
        let w = chosen.0
        return RateLimitDecision(allowed: allowed, dimension: dimension, tier: subject.tier.name, window: w.kind, limit: w.capacity,
                                 remaining: min(w.capacity, chosen.1),
                                 resetSeconds: max(1, w.start.addingSaturated(w.length).subtractingSaturated(t)))
    }

    /// Usage of the current windows for a project's budget and its keys' own budgets, from the
    /// shared counters (units leased by replicas, spent or not).
    /// `subjects` are counter subjects (`RateLimitSubject.counter`).
    public func usage(subjects: [String]) async throws -> [String: [String: [String: Int64]]] {
        let t = now()
        let m = t - ((t % 60) + 60) % 60
        let d = t - ((t % 86_400) + 86_400) % 86_400
        return try await store.usage(subjects: subjects, minuteStart: m, dayStart: d)
    }
}
