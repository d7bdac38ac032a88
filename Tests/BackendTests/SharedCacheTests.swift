@testable import Backend
import EvalForgeModel
@testable import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// Issue 16 §3: caches held per backend stay correct with several backends. Two in-process
/// backends on one Postgres metadata schema and one ClickHouse 18.16 database — A with every role,
/// B with ingest and query — and a change made through A is seen by B within the documented bound
/// (docs/scaling.md, "Caches with several backends"; B polls the cache generations every 200 ms here).
@Suite("Caches with two backends on one Postgres and one ClickHouse", .serialized,
       .enabled(if: TestMetadata.postgresURL != nil && TestStore.clickHouseLegacy.isAvailable,
                "needs EVALFORGE_TEST_POSTGRES_URL and \(TestStore.legacyVariable) (scripts/test sets both): caches across backends are not under test"))
struct SharedCacheTests {
    /// Within this a change through A must show on B (the poll interval is 200 ms; the rest is slack
    /// for a loaded machine).
    static let bound: Duration = .seconds(3)

    static func secretsKey() -> String {
        Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    /// Builds A (every role) and B (ingest, query) on one fresh Postgres schema and one fresh
    /// ClickHouse database, runs `body` with a router client on each, and tears everything down.
    static func withPair(configure: (inout BackendConfiguration) -> Void = { _ in },
                         _ body: @Sendable (BackendServices, any TestClientProtocol, BackendServices, any TestClientProtocol) async throws -> Void) async throws {
        var a = try await TestMetadata.postgres.configure(AccessControlTests.configuration(store: .clickHouseLegacy))
        a.secretsKey = secretsKey()
        a.cacheGenerationPollMilliseconds = 200
        configure(&a)
        var b = a
        b.dataDirectory = a.dataDirectory + "-b"
        b.roles = try BackendRoles([.ingest, .query])
        let (appA, servicesA) = try await BackendApp.build(configuration: a, logger: TestBackend.logger, closesStoreAtShutdown: false)
        TestStore.clickHouseLegacy.expectIsStore(servicesA.store)
        var failure: (any Error)?
        do {
            let (appB, servicesB) = try await BackendApp.build(configuration: b, logger: TestBackend.logger, closesStoreAtShutdown: false)
            do {
                try await appA.test(.router) { clientA in
                    try await appB.test(.router) { clientB in try await body(servicesA, clientA, servicesB, clientB) }
                }
            } catch { failure = error }
            await servicesB.store.shutdown()
            await servicesB.metadata.shutdown()
            try? FileManager.default.removeItem(atPath: b.dataDirectory)
        } catch { failure = error }
        await TestStore.tearDown(servicesA)
        if let failure { throw failure }
    }

    /// Polls `check` until it is true or `bound` passed; returns how long it took (nil: never).
    static func within(_ bound: Duration, _ check: () async throws -> Bool) async throws -> Duration? {
        let start = ContinuousClock.now
        while true {
            if try await check() { return start.duration(to: .now) }
            if start.duration(to: .now) > bound { return nil }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test("a key revoked on A stops on B at once; a replaced admin token and a changed tier reach B within the bound", .timeLimit(.minutes(3)))
    func accessChanges() async throws {
        try await Self.withPair { a, clientA, b, clientB in
            // A key made on A works on B; revoked on A it is refused by B on the next request.
            let created = try await clientA.execute(uri: "/api/admin/projects/default/keys", method: .post, headers: AccessControlTests.admin,
                                                    body: ByteBuffer(string: #"{"name": "shared", "scopes": ["read"]}"#))
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let key = try #require(AccessControlTests.json(created.body)["key"] as? String)
            let id = try #require((AccessControlTests.json(created.body)["record"] as? [String: Any])?["id"] as? String)
            #expect(try await clientB.execute(uri: "/api/traces", method: .get, headers: AccessControlTests.bearer(key)).status == .ok)
            #expect(try await clientA.execute(uri: "/api/admin/keys/\(id)/revoke", method: .post, headers: AccessControlTests.admin).status == .ok)
            #expect(try await clientB.execute(uri: "/api/traces", method: .get, headers: AccessControlTests.bearer(key)).status == .unauthorized,
                    "B reads keys from the shared database on every request: no bound")

            // The admin token replaced through A (what restarting A with a new EVALFORGE_ADMIN_TOKEN
            // does): B, which holds the old hash, follows within the bound.
            #expect(try await clientB.execute(uri: "/api/admin/projects", method: .get, headers: AccessControlTests.admin).status == .ok)
            let newToken = "replaced-admin-token-" + UUID().uuidString.prefix(8)
            _ = try await a.projects.ensureAdminToken(configured: newToken)
            let took = try await Self.within(Self.bound) {
                let fresh = try await clientB.execute(uri: "/api/admin/projects", method: .get, headers: AccessControlTests.bearer(newToken)).status
                let old = try await clientB.execute(uri: "/api/admin/projects", method: .get, headers: AccessControlTests.admin).status
                return fresh == .ok && old == .unauthorized
            }
            #expect(took != nil, "B still accepts the replaced admin token (or refuses the new one) after \(Self.bound)")

            // A tier set through A: B's limits follow (its tier cache alone would keep the old tier 5 s).
            func limit(_ client: any TestClientProtocol) async throws -> String? {
                try await client.execute(uri: "/api/traces", method: .get, headers: AccessControlTests.bearer(TestBackend.apiKey)).headers[HTTPField.Name("X-RateLimit-Limit")!]
            }
            b.rateLimiter.invalidateTiers()  // B reads the tier now: its cache alone would keep it 5 s from here
            let before = try await limit(clientB)
            #expect(before != nil, "rate limits are on in the test configuration")
            let set = try await clientA.execute(uri: "/api/admin/projects/default/tier", method: .put, headers: AccessControlTests.bearer(newToken), body: ByteBuffer(string: #"{"tier": "free"}"#))
            #expect(set.status == .ok, "\(String(buffer: set.body))")
            let onA = try await limit(clientA)
            #expect(onA != before, "the free tier has another limit than the default tier")
            let tierTook = try await Self.within(.seconds(2)) { try await limit(clientB) == onA }
            let onB = try await limit(clientB)
            #expect(tierTook != nil, "B's limit is still \(onB ?? "-") (A's: \(onA ?? "-"))")
        }
    }

    @Test("metric totals agree after ingest through both; a project deleted through A and filled again is not answered from B's merged hours", .timeLimit(.minutes(3)))
    func telemetryCaches() async throws {
        try await Self.withPair { a, clientA, b, clientB in
            // 2026-01-01 00:00 UTC (OTLPFixtures.legacySpan): one whole hour inside the query.
            let q = MetricsQuery(projectID: "default", fromUnix: 1_767_139_200, toUnix: 1_767_312_000, intervalSeconds: 86_400)
            func totals(_ s: BackendServices) async throws -> (requests: UInt64, input: UInt64) {
                try await s.store.metrics(q).reduce((0, 0)) { ($0.0 + $1.value.requests, $0.1 + $1.value.inputTokens) }
            }
            func send(_ client: any TestClientProtocol, spans: Int, input: Int) async throws {
                let t = OTLPFixtures.traceID()
                let body = ByteBuffer(bytes: try OTLPFixtures.request((1...spans).map { OTLPFixtures.legacySpan(trace: t, id: UInt64($0), input: input) }).serializedBytes() as [UInt8])
                let r = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"], body: body)
                #expect(r.status == .ok, "\(String(buffer: r.body))")
            }
            try await send(clientA, spans: 3, input: 100)
            let (firstA, firstB) = (try await totals(a), try await totals(b))
            #expect(firstA == (3, 300) && firstB == (3, 300), "both merged the hour (and keep it): A \(firstA), B \(firstB)")
            try await send(clientB, spans: 2, input: 1000)
            let ta = try await totals(a), tb = try await totals(b)
            #expect(ta == (5, 2300) && tb == (5, 2300), "A \(ta), B \(tb)")

            // A project's hour merged by B, the project deleted through A and made again with as many
            // rollup rows of other values in that hour: the row count B checks is the same again.
            let now = Int64(Date().timeIntervalSince1970)
            func batch(_ input: Int64, id: String) -> StoreBatch {
                var s = RetentionTests.batch(project: "p2", trace: 77, daysAgo: 3, now: now)
                s.batchID = id
                s.spans[0].inputTokens = input
                s.rollups[0].value.inputTokens = UInt64(input)
                return s
            }
            let day = (now / 86_400 - 3) * 86_400
            let q2 = MetricsQuery(projectID: "p2", fromUnix: day, toUnix: day + 86_400, intervalSeconds: 86_400)
            func input(_ s: BackendServices) async throws -> UInt64 { try await s.store.metrics(q2).reduce(0) { $0 + $1.value.inputTokens } }
            _ = try await a.projects.createProject(name: "p2", id: "p2", actor: "test")
            #expect(try await a.store.insert(batch(10, id: "p2-first")) == .stored)
            #expect(try await input(b) == 10)
            let deleted = try await clientA.execute(uri: "/api/admin/projects/p2", method: .delete, headers: AccessControlTests.admin)
            #expect(deleted.status == .ok, "\(String(buffer: deleted.body))")
            _ = try await a.projects.createProject(name: "p2", id: "p2", actor: "test")
            #expect(try await a.store.insert(batch(777, id: "p2-second")) == .stored)
            #expect(try await input(a) == 777)
            let took = try await Self.within(Self.bound) { try await input(b) == 777 }
            let seen = try await input(b)
            #expect(took != nil, "B still answers \(seen) input tokens from the hour it merged before the delete")
        }
    }

    @Test("sign-in limits hold across backends: attempts through A and B together stop at the per-client limit", .timeLimit(.minutes(3)))
    func signInLimits() async throws {
        try await Self.withPair(configure: { $0.signInPerClientPerMinute = 4; $0.signInPerMinute = 1_000; $0.trustProxy = true }) { _, clientA, _, clientB in
            // The shared windows are clock minutes: not across a boundary.
            let second = Int(Date().timeIntervalSince1970) % 60
            if second > 50 { try await Task.sleep(for: .seconds(61 - second)) }
            func attempt(_ client: any TestClientProtocol, from ip: String) async throws -> HTTPResponse.Status {
                let form = try await client.loginForm()
                return try await client.postLogin("api_key=wrong-key-123&csrf_token=\(form.token)", cookie: form.cookie, headers: [HTTPField.Name("X-Forwarded-For")!: ip]).status
            }
            var statuses: [HTTPResponse.Status] = []
            // Each backend alone would admit its three (its own limit is 4).
            for i in 0..<6 { statuses.append(try await attempt(i % 2 == 0 ? clientA : clientB, from: "198.51.100.7")) }
            #expect(statuses == [.unauthorized, .unauthorized, .unauthorized, .unauthorized, .tooManyRequests, .tooManyRequests], "\(statuses)")
            let other = try await attempt(clientB, from: "198.51.100.8")
            #expect(other == .unauthorized, "another client has its own budget")
        }
    }

    /// A judge that answers every chat completion with `score`.
    static func judge(score: Double) -> some ApplicationProtocol {
        let router = Router()
        router.post("/v1/chat/completions") { _, _ -> Response in
            let content = #"{\"score\": \#(score), \"explanation\": \"fixed\"}"#
            let body = #"{"id": "x", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "\#(content)"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 5}}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    @Test("an evaluator or a provider changed through A is what B evaluates with, at once", .timeLimit(.minutes(3)))
    func evaluationChanges() async throws {
        try await Self.judge(score: 0.9).test(.live) { high in
            try await Self.judge(score: 0.1).test(.live) { low in
                let highPort = try #require(high.port), lowPort = try #require(low.port)
                try await Self.withPair { _, clientA, _, clientB in
                    let h = AccessControlTests.bearer(TestBackend.apiKey)
                    func post(_ client: any TestClientProtocol, _ path: String, _ body: String) async throws -> TestResponse {
                        try await client.execute(uri: path, method: .post, headers: h, body: ByteBuffer(string: body))
                    }
                    func scores(_ evaluator: String) async throws -> [Double] {
                        let r = try await post(clientB, "/api/evaluate", #"{"evaluators": ["\#(evaluator)"], "items": [{"input": "q", "output": "alpha"}]}"#)
                        #expect(r.status == .ok, "\(String(buffer: r.body))")
                        let results = AccessControlTests.json(r.body)["results"] as? [[[String: Any]]] ?? []
                        return results.flatMap { $0.compactMap { $0["score"] as? Double } }
                    }
                    // An evaluator replaced through A.
                    let created = try await post(clientA, "/api/evaluators", #"{"name": "has", "type": "contains", "value": "alpha"}"#)
                    #expect(created.status == .created, "\(String(buffer: created.body))")
                    #expect(try await scores("has") == [1])
                    #expect(try await post(clientA, "/api/evaluators", #"{"name": "has", "type": "contains", "value": "beta"}"#).status == .created)
                    #expect(try await scores("has") == [0], "B evaluates with the evaluator's new version")

                    // A provider moved through A from one judge to another.
                    func provider(_ port: Int) -> String {
                        #"{"name": "judge", "kind": "openai", "baseURL": "http://127.0.0.1:\#(port)/v1", "apiKey": "k", "model": "m", "maxRetries": 0}"#
                    }
                    #expect(try await post(clientA, "/api/providers", provider(highPort)).status == .created)
                    #expect(try await post(clientA, "/api/evaluators", #"{"name": "j", "type": "judge", "rubric": "relevance", "provider": "judge"}"#).status == .created)
                    #expect(try await scores("j") == [0.9])
                    #expect(try await post(clientA, "/api/providers", provider(lowPort)).status == .created)
                    #expect(try await scores("j") == [0.1], "B calls the provider's new endpoint")
                }
            }
        }
    }
}
