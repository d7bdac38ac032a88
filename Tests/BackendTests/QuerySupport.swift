@testable import Backend
import EvalForgeModel
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// A backend on a temporary data directory with its telemetry on a `TestStore` (a fresh database
/// per test on ClickHouse), with two projects: "default" (key `QueryFixture.keyA`, seeded with
/// `QueryFixture`) and "other" (key `keyB`).
enum QueryFixture {
    static let keyA = "ef_test_key_project_a_0123456789"
    static let keyB = "ef_test_key_project_b_9876543210"
    /// 2026-01-01T00:00:00Z
    static let baseUnix: Int64 = 1_767_225_600
    static let traceCount = 300
    static let models = ["gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o"]
    static let providers = ["openai", "anthropic", "openai"]

    static func traceID(_ i: Int) -> String { String(format: "%032x", 0x5eed_0000 + i) }
    static func spanID(_ i: Int, _ j: Int) -> String { String(format: "%016x", (i + 1) * 16 + j) }

    static func configuration(dir: String, store: TestStore) -> BackendConfiguration {
        // The experiment pages' http target listens on loopback: the operator allow-list lets it through.
        var c = BackendConfiguration(port: 0, dataDirectory: dir, bootstrapAPIKey: keyA, outboundAllowList: "127.0.0.0/8,::1,localhost")
        c.clickHouse = store.clickHouseConfiguration(prefix: "evalforge_qt_")
        // The page tests sign in through /login for each page: the sign-in limits are the rate limit tests' concern.
        c.signInPerClientPerMinute = 100_000
        c.signInPerMinute = 100_000
        return c
    }

    /// Trace `i`: an agent root, two LLM calls and a tool span, one minute apart per trace; every 5th
    /// trace fails; users and sessions rotate; trace 7 mentions "Zebra" in its output.
    static func spans(trace i: Int, projectID: String, nameOverride: String? = nil) -> [SpanRow] {
        let start = (baseUnix + Int64(i) * 60) * 1_000_000_000
        let m = i % models.count
        let tid = traceID(i)
        let user = "user-\(i % 4)"
        let session = "session-\(i % 6)"
        let tags = i % 2 == 0 ? ["beta", "checkout"] : ["checkout"]
        let error = i % 5 == 4
        var rows = [SpanRow(projectID: projectID, traceID: tid, spanID: spanID(i, 0), startUnixNanos: start, durationNanos: 2_000_000_000 + Int64(i) * 1_000_000,
                            service: "svc-\(i % 2)", name: nameOverride ?? "agent.run", kind: .server, status: error ? .error : .ok, operation: "invoke_agent",
                            userID: user, sessionID: session, tags: tags, attributesJSON: "{\"http.route\":\"/chat\",\"retry\":2,\"cached\":true}")]
        for j in 1...2 {
            let isErr = error && j == 2
            let history = j == 1
                ? "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"You are terse.\"}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"question \(i) about invoices\"}]}]"
                : "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"You are terse.\"}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"question \(i) about invoices\"}]},{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"answer \(i)\"}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"follow-up \(i)\"}]}]"
            rows.append(SpanRow(projectID: projectID, traceID: tid, spanID: spanID(i, j), parentSpanID: spanID(i, 0),
                                startUnixNanos: start + Int64(j) * 100_000_000, durationNanos: 500_000_000 + Int64(j) * 10_000_000,
                                service: "svc-\(i % 2)", name: "chat \(models[m])", kind: .client, status: isErr ? .error : .ok,
                                statusMessage: isErr ? "rate limited" : "", operation: "chat", provider: providers[m], model: models[m],
                                inputTokens: 100 + Int64(i), outputTokens: 20 + Int64(j), cacheReadTokens: j == 1 ? 50 : 0,
                                costUSD: m == 1 && j == 2 ? nil : 0.001 * Double(j + i % 3), ttftNanos: 120_000_000 + Int64(j) * 1_000_000,
                                userID: user, sessionID: session, tags: tags, attributesJSON: "{\"gen_ai.response.id\":\"r-\(i)-\(j)\"}",
                                input: history,
                                output: "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"answer \(i)\(i == 7 ? " mentions Zebra" : "")\"}],\"finish_reason\":\"stop\"}]"))
        }
        rows.append(SpanRow(projectID: projectID, traceID: tid, spanID: spanID(i, 3), parentSpanID: spanID(i, 1),
                            startUnixNanos: start + 300_000_000, durationNanos: 30_000_000, service: "svc-\(i % 2)", name: "execute_tool lookup",
                            operation: "execute_tool", userID: user, sessionID: session, tags: tags))
        return rows
    }

    static func rollups(_ spans: [SpanRow]) -> [RollupRow] {
        var table: [RollupKey: RollupValue] = [:]
        for s in spans where s.isLLMCall {
            let key = RollupKey(minuteUnix: s.startUnixNanos / 1_000_000_000 / 60 * 60, project: s.projectID, service: s.service, provider: s.provider, model: s.model, isError: s.isError)
            var v = table[key] ?? RollupValue()
            v.requests += 1
            if s.isError { v.errors += 1 }
            v.inputTokens += UInt64(s.inputTokens)
            v.outputTokens += UInt64(s.outputTokens)
            v.cacheReadTokens += UInt64(s.cacheReadTokens)
            if let c = s.costUSD { v.costUSD += c } else { v.costUnknownRequests += 1 }
            v.latencyMs.add(Double(s.durationNanos) / 1e6)
            if let t = s.ttftNanos { v.ttftMs.add(Double(t) / 1e6) }
            table[key] = v
        }
        return table.map { RollupRow(key: $0.key, value: $0.value) }
    }

    static var allSpans: [SpanRow] { (0..<traceCount).flatMap { spans(trace: $0, projectID: "default") } }

    /// Seeds both projects: project "default" gets `traceCount` traces and scores on traces 0-9;
    /// project "other" gets one trace whose content says "other-project-secret".
    static func seed(_ services: BackendServices) async throws {
        try await services.projects.upsert(Project(id: "other", name: "other"))
        _ = try await services.projects.addKey(keyB, projectID: "other", name: "test")
        let rows = allSpans
        for (n, chunk) in stride(from: 0, to: rows.count, by: 400).map({ Array(rows[$0..<min($0 + 400, rows.count)]) }).enumerated() {
            _ = try await services.store.insert(StoreBatch(projectID: "default", batchID: "seed-\(n)", spans: chunk, rollups: rollups(chunk)))
        }
        var other = spans(trace: 0, projectID: "other")
        other = other.map { var s = $0; s.traceID = String(format: "%032x", 0xfeed); s.output = "[{\"role\":\"assistant\",\"content\":\"other-project-secret\"}]"; s.userID = "other-user"; s.sessionID = "other-session"; return s }
        _ = try await services.store.insert(StoreBatch(projectID: "other", batchID: "other-0", spans: other, rollups: rollups(other)))
        let scores = (0..<10).map { i in
            ScoreRow(id: "score-\(i)", projectID: "default", traceID: traceID(i), name: "relevance", value: Double(i) / 10, label: i >= 5 ? "pass" : "fail", createdUnixNanos: (baseUnix + 10_000) * 1_000_000_000)
        } + [ScoreRow(id: "span-score", projectID: "default", traceID: traceID(0), spanID: spanID(0, 1), name: "json_valid", value: 1, dataType: .boolean, createdUnixNanos: (baseUnix + 10_000) * 1_000_000_000)]
        try await services.store.insertScores(scores)
    }

    static func time(_ offsetSeconds: Int64) -> String { String(baseUnix + offsetSeconds) }
}

/// Runs `body` against the router of a seeded backend on `TestStore.default` (the current
/// ClickHouse when EVALFORGE_TEST_CLICKHOUSE_URL is set, else SQLite).
func withQueryBackend(seed: Bool = true, _ body: @Sendable (any TestClientProtocol, BackendServices) async throws -> Void) async throws {
    try await withQueryBackend(on: .default, seed: seed, body)
}

/// Runs `body` against the router of a seeded backend whose telemetry is on `store` (which must be
/// configured). The store's database is dropped afterwards.
func withQueryBackend(on store: TestStore, seed: Bool = true, _ body: @Sendable (any TestClientProtocol, BackendServices) async throws -> Void) async throws {
    try store.requireAvailable()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-query-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var logger = Logger(label: "query-test")
    logger.logLevel = .warning
    let services: BackendServices
    do {
        services = try await BackendApp.makeServices(configuration: QueryFixture.configuration(dir: dir, store: store), logger: logger)
    } catch {
        try? FileManager.default.removeItem(atPath: dir)
        throw error
    }
    do {
        store.expectIsStore(services.store)
        if seed { try await QueryFixture.seed(services) }
        let app = Application(router: BackendApp.buildRouter(services: services), logger: logger)
        try await app.test(.router) { client in try await body(client, services) }
    } catch {
        await TestStore.tearDown(services)
        throw error
    }
    await TestStore.tearDown(services)
}

extension TestClientProtocol {
    /// GET with project A's key (or `key`), returning status and body.
    func get(_ uri: String, key: String? = QueryFixture.keyA, headers: HTTPFields = [:]) async throws -> (status: HTTPResponse.Status, body: String, headers: HTTPFields) {
        var h = headers
        if let key { h[.authorization] = "Bearer " + key }
        return try await execute(uri: uri, method: .get, headers: h, body: nil) { r in (r.status, String(buffer: r.body), r.headers) }
    }

    func json(_ uri: String, key: String? = QueryFixture.keyA) async throws -> [String: Any] {
        let r = try await get(uri, key: key)
        #expect(r.status == .ok, "\(uri): \(r.body.prefix(300))")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any], "\(uri) is not a JSON object")
    }
}

extension Dictionary where Key == String, Value == Any {
    var items: [[String: Any]] { self["items"] as? [[String: Any]] ?? [] }
}
