import EvalForgeStore
import Logging
import Metrics
import ServiceLifecycle

/// Keeps this backend's caches correct when other backends share its metadata database and
/// ClickHouse: reads the generation counters (`CacheGenerations`, one small query) every `interval`
/// and forgets the caches whose counter moved — the admin token's hash, the rate-limit tiers, the
/// ClickHouse store's merged metric hours and multi-row trace sets. A change made through any
/// backend therefore reaches every backend within one interval (docs/scaling.md, "Caches with
/// several backends"). The first read forgets everything (a change between a cache's first fill
/// and that read is not missed), and so does every failed read: a cache that cannot be checked is
/// not trusted.
struct CacheGenerationService: Service {
    let metadata: any MetadataDatabase
    let interval: Duration
    let forget: @Sendable (CacheGeneration) -> Void
    let logger: Logger

    private static let invalidations = CacheGeneration.allCases.map { ($0, Counter(label: "evalforge_cache_invalidations_total", dimensions: [("cache", $0.rawValue)])) }

    /// The caches of `services` by generation.
    static func forgetting(_ services: BackendServices) -> @Sendable (CacheGeneration) -> Void {
        let projects = services.projects, limiter = services.rateLimiter, store = services.store
        return { kind in
            switch kind {
            case .adminToken: projects.forgetAdminToken()
            case .rateLimitTiers: limiter.invalidateTiers()
            case .telemetryDeletes: (store as? ClickHouseStore)?.forgetCachedAggregates()
            }
        }
    }

    func run() async throws {
        var known: [CacheGeneration: Int64]?
        var failing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            known = await pollOnce(known: known, failing: &failing)
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }

    /// One poll: the generations read now (nil when the read failed), after forgetting the caches
    /// whose generation differs from `known` (every cache when `known` is nil or the read failed).
    func pollOnce(known: [CacheGeneration: Int64]?, failing: inout Bool) async -> [CacheGeneration: Int64]? {
        do {
            let now = try await CacheGenerations.read(metadata)
            for kind in CacheGeneration.allCases where known == nil || known?[kind, default: 0] != now[kind, default: 0] {
                invalidate(kind)
            }
            if failing { logger.notice("cache generations readable again; caches were forgotten") }
            failing = false
            return now
        } catch {
            if !failing { logger.warning("cannot read the cache generations: forgetting this backend's caches until they can be read", metadata: ["error": "\(error)"]) }
            failing = true
            for kind in CacheGeneration.allCases { invalidate(kind) }
            return nil
        }
    }

    private func invalidate(_ kind: CacheGeneration) {
        forget(kind)
        for (k, counter) in Self.invalidations where k == kind { counter.increment() }
    }
}
