import EvalForgeCore
import EvalForgeOTLP
@testable import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing
import Evaluation

@testable import Backend

/// Tiered rate limits (issue 15 §7): headers on every answer, 429 with Retry-After, span budgets,
/// tiers set by the admin only, unknown tiers refused, tier files checked, and the shared budget
/// of several replicas (two limiters on one metadata file here; two processes in
/// `RateLimitReplicaTests`).
@Suite("Rate limits: tiers, headers, 429, shared budgets")
struct RateLimitTests {
    /// A tier small enough to exhaust in a test: 5 requests a minute (+2 burst), 20 spans a minute.
    static func tinyTiers() -> RateLimitTiers {
        var t = RateLimitTiers()
        t.tiers["tiny"] = RateLimitTier(name: "tiny", limits: [
            .requests: RateLimit(perMinute: 5, perDay: 1_000, burst: 2),
            .spans: RateLimit(perMinute: 20, perDay: 1_000),
            .evaluations: RateLimit(perMinute: 3, perDay: 1_000),
            .judgeTokens: RateLimit(perMinute: 1_000, perDay: 10_000),
            .judgeCost: RateLimit(perMinute: 1_000_000, perDay: 10_000_000),
        ])
        return t
    }

    static func configuration(defaultTier: String = "enterprise") -> BackendConfiguration {
        var c = AccessControlTests.configuration()
        c.rateLimits = tinyTiers()
        c.rateLimits.defaultTier = defaultTier
        return c
    }

    static func otlp(spans n: Int) throws -> ByteBuffer {
        let t = OTLPFixtures.traceID()
        return ByteBuffer(bytes: try OTLPFixtures.request((1...n).map { OTLPFixtures.legacySpan(trace: t, id: UInt64($0)) }).serializedBytes() as [UInt8])
    }

    /// Waits for the next minute when less than 15 s of this one are left, so a test's requests
    /// fall in one minute window.
    static func awayFromMinuteEnd() async throws {
        let second = Int(Date().timeIntervalSince1970) % 60
        if second >= 45 { try await Task.sleep(for: .seconds(61 - second)) }
    }

    static var key: HTTPFields { AccessControlTests.bearer(TestBackend.apiKey, json: false) }

    @Test("every /api and ingest answer carries X-RateLimit-*; over the tier the answer is 429 with Retry-After; the admin sets tiers")
    func headersAnd429() async throws {
        let services = try await BackendApp.makeServices(configuration: Self.configuration(), logger: TestBackend.logger)
        defer { Task { await TestStore.tearDown(services) } }
        let router = BackendApp.buildRouter(services: services)
        try await Application(router: router, logger: TestBackend.logger).test(.router) { client in
            // Default tier (enterprise): headers present, big limits.
            let first = try await client.execute(uri: "/api/usage", method: .get, headers: Self.key)
            #expect(first.status == .ok)
            #expect(first.headers[RateLimitRequest.limitHeader] == "70000")
            #expect(first.headers[RateLimitRequest.remainingHeader].flatMap { Int($0) }.map { $0 > 60_000 } == true)
            #expect(first.headers[RateLimitRequest.resetHeader].flatMap { Int($0) }.map { (1...60).contains($0) } == true)
            let ingest = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"], body: try Self.otlp(spans: 3))
            #expect(ingest.status == .ok)
            #expect(ingest.headers[RateLimitRequest.limitHeader] != nil)

            // A project admin key cannot raise its own tier; the admin token sets it; unknown tiers are 400.
            let unknown = try await client.execute(uri: "/api/admin/projects/default/tier", method: .put, headers: AccessControlTests.admin, body: AccessControlTests.body(["tier": "platinum"]))
            #expect(unknown.status == .badRequest)
            #expect(String(buffer: unknown.body).contains("platinum"))
            #expect(String(buffer: unknown.body).contains("free, basic, premium, enterprise"))
            #expect(try await RateLimitStore(db: services.metadata).projectTier("default") == nil, "nothing half-created")
            let byKey = try await client.execute(uri: "/api/admin/projects/default/tier", method: .put, headers: AccessControlTests.bearer(TestBackend.apiKey), body: AccessControlTests.body(["tier": "enterprise"]))
            #expect(byKey.status == .forbidden)
            let missing = try await client.execute(uri: "/api/admin/projects/nope/tier", method: .put, headers: AccessControlTests.admin, body: AccessControlTests.body(["tier": "free"]))
            #expect(missing.status == .notFound)
            let set = try await client.execute(uri: "/api/admin/projects/default/tier", method: .put, headers: AccessControlTests.admin, body: AccessControlTests.body(["tier": "TINY"]))
            #expect(set.status == .ok, "\(String(buffer: set.body))")

            // 7 requests a minute (5 + burst 2), counted afresh under the new tier.
            try await Self.awayFromMinuteEnd()
            var statuses: [HTTPResponse.Status] = []
            var last: TestResponse?
            for _ in 0..<9 {
                let r = try await client.execute(uri: "/api/usage", method: .get, headers: Self.key)
                statuses.append(r.status)
                last = r
                #expect(r.headers[RateLimitRequest.limitHeader] == "7")
            }
            #expect(statuses.filter { $0 == .ok }.count == 7, "\(statuses)")
            #expect(statuses.suffix(2).allSatisfy { $0 == .tooManyRequests })
            let refused = try #require(last)
            #expect(refused.headers[.retryAfter].flatMap { Int($0) }.map { (1...60).contains($0) } == true)
            #expect(refused.headers[RateLimitRequest.remainingHeader] == "0")
            let body = String(buffer: refused.body)
            #expect(body.contains("tier 'tiny'") && body.contains("requests per minute"), "\(body)")
            // Ingest answers 429 too (the collector holds and retries it).
            let ingest429 = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"], body: try Self.otlp(spans: 1))
            #expect(ingest429.status == .tooManyRequests)
            #expect(ingest429.headers[.retryAfter] != nil)

            // A key override has its own budget: a fresh key on enterprise gets through.
            let created = try await services.projects.createKey(projectID: "default", name: "big", scopes: Scope.all)
            let unknownKeyTier = try await client.execute(uri: "/api/admin/keys/\(created.record.id)/tier", method: .put, headers: AccessControlTests.admin, body: AccessControlTests.body(["tier": "gold"]))
            #expect(unknownKeyTier.status == .badRequest)
            let keyTier = try await client.execute(uri: "/api/admin/keys/\(created.record.id)/tier", method: .put, headers: AccessControlTests.admin, body: AccessControlTests.body(["tier": "enterprise"]))
            #expect(keyTier.status == .ok, "\(String(buffer: keyTier.body))")
            let viaOverride = try await client.execute(uri: "/api/usage/limits", method: .get, headers: AccessControlTests.bearer(created.key, json: false))
            #expect(viaOverride.status == .ok)
            let usage = AccessControlTests.json(viaOverride.body)
            #expect(usage["tier"] as? String == "tiny")
            let requests = (usage["limits"] as? [String: Any])?["requests"] as? [String: Any]
            #expect(((requests?["used_minute"] as? NSNumber)?.doubleValue ?? 0) >= 7, "\(usage)")
            #expect((usage["keys"] as? [[String: Any]])?.first?["tier"] as? String == "enterprise")
            let tiers = try await client.execute(uri: "/api/admin/tiers", method: .get, headers: AccessControlTests.admin)
            #expect(String(buffer: tiers.body).contains("\"tiny\""))
        }
    }

    @Test("spans count per batch: a batch past what is left is 429 (nothing stored); one larger than the minute's capacity is 413")
    func spans() async throws {
        let services = try await BackendApp.makeServices(configuration: Self.configuration(defaultTier: "tiny"), logger: TestBackend.logger)
        defer { Task { await TestStore.tearDown(services) } }
        let router = BackendApp.buildRouter(services: services)
        let headers: HTTPFields = [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"]
        try await Self.awayFromMinuteEnd()
        try await Application(router: router, logger: TestBackend.logger).test(.router) { client in
            let tooBig = try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: try Self.otlp(spans: 21))
            #expect(tooBig.status == .contentTooLarge, "\(String(buffer: tooBig.body))")
            #expect(String(buffer: tooBig.body).contains("smaller batches"))
            #expect(try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: try Self.otlp(spans: 15)).status == .ok)
            let over = try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: try Self.otlp(spans: 6))
            #expect(over.status == .tooManyRequests)
            #expect(over.headers[RateLimitRequest.limitHeader] == "20", "the span window's figures")
            #expect(over.headers[RateLimitRequest.remainingHeader] == "5")
            #expect(try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: try Self.otlp(spans: 5)).status == .ok)
        }
        #expect(try await services.store.countSpans(projectID: "default", fromUnixNanos: nil, toUnixNanos: nil) == 20)
    }

    @Test("two replicas sharing one metadata file accept within 5 % of the limit, never more")
    func sharedBudget() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-rl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = RateLimitStore(db: try SQLiteDatabase(path: dir + "/meta.sqlite"))
        try await a.migrate()
        let b = RateLimitStore(db: try SQLiteDatabase(path: dir + "/meta.sqlite"))
        var tiers = RateLimitTiers()
        let limit: Int64 = 5_000
        tiers.tiers["t"] = RateLimitTier(name: "t", limits: [.requests: RateLimit(perMinute: 1_000_000, perDay: limit)])
        let fixed = Int64(Date().timeIntervalSince1970)
        let replicas = [a, b].map { RateLimiter(store: $0, tiers: tiers, logger: TestBackend.logger, now: { fixed }) }
        let subject = RateLimitSubject(id: "project:p", tier: try tiers.tier(named: "t"))
        let n: Int64 = await withTaskGroup(of: Int64.self) { g in
            for r in replicas {
                for _ in 0..<4 {
                    g.addTask {
                        var ok: Int64 = 0
                        for _ in 0..<2_000 where await r.consume(subject, .requests, 1).allowed { ok += 1 }
                        return ok
                    }
                }
            }
            return await g.reduce(0, +)
        }
        #expect(n <= limit)
        #expect(Double(n) >= Double(limit) * 0.95, "accepted \(n) of \(limit)")
    }

    /// A judge stand-in: every call "uses" 400 tokens and $0.001.
    struct TokenSpender: Evaluator {
        var name: String { "spender" }
        var version: Int { 1 }
        var isCacheable: Bool { false }
        func evaluate(_ input: EvaluationInput) async -> EvaluationResult {
            var usage = JudgeUsage()
            usage.calls = 1
            usage.inputTokens = 300
            usage.outputTokens = 100
            usage.costUSD = 0.001
            return EvaluationResult(evaluator: name, version: version, score: 1, label: "pass", usage: usage)
        }
    }

    @Test("evaluations count against the project's tier; past it they are results with a rate-limit error; judge tokens are counted after each call")
    func evaluations() async throws {
        let services = try await BackendApp.makeServices(configuration: Self.configuration(defaultTier: "tiny"), logger: TestBackend.logger)
        defer { Task { await TestStore.tearDown(services) } }
        try await Self.awayFromMinuteEnd()
        services.evaluation.register(TokenSpender())
        _ = try await services.evaluation.putEvaluator(projectID: "default", .init(name: "spender", type: "custom"))
        let inputs = (0..<5).map { EvaluationInput(input: "q\($0)", output: "a") }
        let results = try await services.evaluation.evaluate(projectID: "default", evaluators: ["spender"], specs: [], inputs: inputs).results.flatMap { $0 }
        #expect(results.filter { $0.error == nil }.count == 3, "tiny allows 3 evaluations a minute: \(results.map { $0.error ?? "ok" })")
        let refused = results.filter { $0.error != nil }
        #expect(refused.count == 2)
        #expect(refused.allSatisfy { $0.error?.contains("rate limit: tier 'tiny' allows 3 evaluations per minute") == true }, "\(refused.map { $0.error ?? "" })")
        let usage = try await RateLimitRoutes.usage(project: "default", limiter: services.rateLimiter, projects: services.projects)
        #expect((usage.limits["judge_tokens"]?.usedMinute ?? 0) >= 1_200, "3 calls × 400 tokens counted after the fact")
        #expect(abs((usage.limits["judge_cost_usd"]?.usedMinute ?? 0) - 0.003) < 0.0005 || (usage.limits["judge_cost_usd"]?.usedMinute ?? 0) > 0.003)
        // The settings page's card shows the tier and the usage.
        let card = SettingsPage.limitsCard(usage).raw
        #expect(card.contains("tier tiny") && card.contains("data-dimension=\"judge_tokens\"") && card.contains("/ 1000"), "\(card)")
        // Judge tokens are past the tier's 1,000 a minute: nothing more runs this minute.
        let more = try await services.evaluation.evaluate(projectID: "default", evaluators: ["spender"], specs: [], inputs: [EvaluationInput(input: "q", output: "a")]).results.flatMap { $0 }
        #expect(more.first?.error?.contains("rate limit") == true)
    }

    @Test("tier files: absurd limits are refused naming tier, dimension and field; a good file changes and adds tiers")
    func tierFile() throws {
        func parse(_ text: String) throws(RateLimitConfigError) -> RateLimitTiers {
            try RateLimitTiers.parse(Data(text.utf8), source: "tiers.json", base: RateLimitTiers())
        }
        let bad: [(String, String)] = [
            (#"{"tiers":{"free":{"requests":{"per_minute":-1}}}}"#, "free' requests.per_minute: -1.0 is below 1"),
            (#"{"tiers":{"free":{"requests":{"per_minute":1e300}}}}"#, "above the largest limit"),
            (#"{"tiers":{"free":{"spans":{"per_minute":1.5}}}}"#, "not a whole number"),
            (#"{"tiers":{"free":{"spans":{"per_minute":2000000}}}}"#, "per_day (1000000) is below per_minute (2000000)"),
            (#"{"tiers":{"free":{"tokens":{"per_minute":1}}}}"#, "unknown dimension 'tokens'"),
            (#"{"tiers":{"free":{"requests":{"per_hour":1}}}}"#, "unknown field 'per_hour'"),
            (#"{"tiers":{"free":{"requests":{"per_minute":true}}}}"#, "expected a number"),
            (#"{"tiers":{"Bad Name":{}}}"#, "tier name 'Bad Name'"),
            (#"{"default_tier":"gold"}"#, "unknown tier 'gold'"),
            (#"{"tier":{}}"#, "unknown field 'tier'"),
            (#"[1]"#, "expected a JSON object"),
        ]
        for (text, message) in bad {
            #expect(throws: RateLimitConfigError.self, "\(text)") { try parse(text) }
            do { _ = try parse(text) } catch { #expect(error.message.contains(message), "\(text): \(error.message)") }
        }
        let good = try parse(#"{"default_tier":"team-x","tiers":{"free":{"requests":{"per_minute":10,"burst":0}},"team-x":{"judge_cost_usd":{"per_minute":0.25,"per_day":2}}}}"#)
        #expect(good.defaultTier == "team-x")
        #expect(good.tiers["free"]?.limit(.requests) == RateLimit(perMinute: 10, perDay: 100_000, burst: 0))
        #expect(good.tiers["free"]?.limit(.spans) == RateLimitTiers.builtIn["free"]?.limit(.spans))
        #expect(good.tiers["team-x"]?.limit(.judgeCost) == RateLimit(perMinute: 250_000, perDay: 2_000_000, burst: 100_000))
        #expect(good.names == ["free", "basic", "premium", "enterprise", "team-x"])
    }

    @Test("counters saturate: forced usage past Int64 does not trap and refuses further units")
    func saturation() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-rl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = RateLimitStore(db: try SQLiteDatabase(path: dir + "/meta.sqlite"))
        try await store.migrate()
        let limiter = RateLimiter(store: store, tiers: Self.tinyTiers(), logger: TestBackend.logger)
        let subject = RateLimitSubject(id: "project:p", tier: try Self.tinyTiers().tier(named: "tiny"))
        #expect(await limiter.consume(subject, .judgeTokens, .max, force: true).allowed)
        #expect(await limiter.consume(subject, .judgeTokens, .max, force: true).allowed)
        #expect(await limiter.hasBudget(subject, .judgeTokens).allowed == false)
        #expect(await limiter.consume(subject, .judgeTokens, 1).allowed == false)
        #expect(await limiter.consume(subject, .requests, -5).allowed, "negative units count as none")
    }
}
