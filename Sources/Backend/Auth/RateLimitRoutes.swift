import EvalForgeStore
import Foundation
import Hummingbird

/// The rate-limit routes (docs/access-control.md, "Rate limits"):
/// - `GET /api/usage/limits` (`read`): the project's tier, its limits and what the current minute
///   and day have used, and the same for each of its keys that overrides the tier.
/// - `GET /api/admin/tiers`: the configured tiers and the default tier.
/// - `PUT /api/admin/projects/{project}/tier` `{"tier": "basic"}` and `PUT /api/admin/keys/{id}/tier`
///   `{"tier": "free"}` (`null` clears a key's override): the instance admin token only — a project's
///   own admin key must not be able to raise its own limits. An unknown tier is a 400 naming it and
///   the known ones; nothing is changed.
enum RateLimitRoutes {
    static func addUsageRoutes(to api: RouterGroup<BackendRequestContext>, services: BackendServices) {
        let limiter = services.rateLimiter
        let projects = services.projects
        api.get("usage/limits") { _, ctx in
            try await AdminRoutes.call {
                let project = try ctx.requireProject()
                return try await usage(project: project.id, limiter: limiter, projects: projects)
            }
        }
    }

    static func addAdminRoutes(to admin: RouterGroup<BackendRequestContext>, services: BackendServices) {
        let limiter = services.rateLimiter
        let store = RateLimitStore(db: services.metadata)
        admin.get("tiers") { _, _ in
            try await AdminRoutes.call { TierList(limiter.tiers) }
        }
        admin.put("projects/:project/tier") { req, ctx in
            try await AdminRoutes.call {
                let actor = try AdminRoutes.requireInstanceAdmin(ctx)
                let id = try AdminRoutes.pathValue(ctx, "project")
                let b = try await AdminRoutes.decode(TierBody.self, req)
                guard let name = b.tier else { throw AccessError.invalid("body: missing field 'tier' (one of \(limiter.tiers.names.joined(separator: ", ")))") }
                let tier = try tierNamed(name, limiter)
                try await store.setProjectTier(id, tier: tier, actor: actor)
                limiter.invalidateTiers()
                return SetTier(project: id, key: nil, tier: tier)
            }
        }
        admin.put("keys/:id/tier") { req, ctx in
            try await AdminRoutes.call {
                let actor = try AdminRoutes.requireInstanceAdmin(ctx)
                let id = try AdminRoutes.pathValue(ctx, "id")
                let b = try await AdminRoutes.decode(TierBody.self, req)
                let tier = try b.tier.map { try tierNamed($0, limiter) }
                let project = try await store.setKeyTier(id, tier: tier, projectID: nil, actor: actor)
                limiter.invalidateTiers()
                return SetTier(project: project, key: id, tier: tier)
            }
        }
    }

    /// The configured tier `name`, or 400 naming it and the known tiers.
    static func tierNamed(_ name: String, _ limiter: RateLimiter) throws -> String {
        do { return try limiter.tiers.tier(named: name).name } catch { throw AccessError.invalid(error.message) }
    }

    static func usage(project: String, limiter: RateLimiter, projects: ProjectStore) async throws -> Usage {
        let store = RateLimitStore(db: projects.db)
        let projectTier = try await store.projectTier(project)
        let overrides = try await store.keyTiers(projectID: project)
        let effective = limiter.tiers.effective(projectTier)
        let projectCounter = RateLimitSubject(id: "project:" + project, tier: effective).counter
        func keyCounter(_ k: String) -> String { RateLimitSubject(id: "key:" + k, tier: limiter.tiers.effective(overrides[k])).counter }
        let counters = try await limiter.usage(subjects: [projectCounter] + overrides.keys.sorted().map(keyCounter))
        func figures(_ subject: String, _ tier: RateLimitTier) -> [String: Figures] {
            var out: [String: Figures] = [:]
            for d in RateLimitDimension.allCases {
                let l = tier.limit(d)
                let used = counters[subject]?[d.rawValue]
                out[d.fileKey] = Figures(l, usedMinute: used?["minute"] ?? 0, usedDay: used?["day"] ?? 0, usd: d == .judgeCost)
            }
            return out
        }
        let keys = overrides.keys.sorted().map { k in
            let t = limiter.tiers.effective(overrides[k])
            return KeyUsage(keyID: k, tier: t.name, limits: figures(keyCounter(k), t))
        }
        return Usage(project: project, enabled: limiter.enabled, tier: effective.name, tierSource: projectTier.flatMap { limiter.tiers.tiers[$0] == nil ? nil : "project" } ?? "default",
                     limits: figures(projectCounter, effective), keys: keys)
    }

    struct TierBody: Decodable {
        var tier: String?
    }

    struct SetTier: Encodable {
        var project: String
        var key: String?
        var tier: String?
    }

    /// One dimension: its limits and what the current windows have used (units leased by the
    /// replicas: up to a chunk per replica more than spent). Judge cost in USD.
    struct Figures: Encodable {
        var perMinute: Double
        var perDay: Double
        var burst: Double
        var usedMinute: Double
        var usedDay: Double
        init(_ l: RateLimit, usedMinute: Int64, usedDay: Int64, usd: Bool) {
            let scale = usd ? 1e-6 : 1
            perMinute = Double(l.perMinute) * scale
            perDay = Double(l.perDay) * scale
            burst = Double(l.burst) * scale
            self.usedMinute = Double(usedMinute) * scale
            self.usedDay = Double(usedDay) * scale
        }
    }

    struct KeyUsage: Encodable {
        var keyID: String
        var tier: String
        var limits: [String: Figures]
    }

    struct Usage: Encodable {
        var project: String
        var enabled: Bool
        var tier: String
        /// "project" (set by the admin) or "default" (the configured default tier).
        var tierSource: String
        var limits: [String: Figures]
        var keys: [KeyUsage]
    }

    struct TierList: Encodable {
        struct Tier: Encodable {
            var name: String
            var limits: [String: Figures]
        }
        var defaultTier: String
        var enabled: Bool
        var tiers: [Tier]
        init(_ t: RateLimitTiers) {
            defaultTier = t.defaultTier
            enabled = t.enabled
            tiers = t.names.compactMap { n in
                t.tiers[n].map { tier in
                    var limits: [String: Figures] = [:]
                    for d in RateLimitDimension.allCases { limits[d.fileKey] = Figures(tier.limit(d), usedMinute: 0, usedDay: 0, usd: d == .judgeCost) }
                    return Tier(name: n, limits: limits)
                }
            }
        }
    }
}
