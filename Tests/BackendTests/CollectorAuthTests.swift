import AsyncHTTPClient
import Backend
@testable import Collector
import EvalForgeCore
import EvalForgeOTLP
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// Issue 15 §3 and "the project comes from the key": the collector authenticates OTLP against a real
/// backend over loopback HTTP, checks Host/Origin, and refuses spans naming another project; the
/// backend's own ingest refuses them too.
@Suite("Collector authentication and the key's project")
struct CollectorAuthTests {
    struct Answer {
        var status: Int
        var body: String
        var retryAfter: String?
    }

    /// POSTs an OTLP protobuf request to the collector at `port` with real HTTP (AsyncHTTPClient,
    /// which keeps a `Host` header it is given).
    static func send(_ port: Int, key: String? = nil, xAPIKey: String? = nil, host: String? = nil, origin: String? = nil, project: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/traces")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-protobuf")
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        if let xAPIKey { request.headers.add(name: "X-API-Key", value: xAPIKey) }
        if let host { request.headers.add(name: "Host", value: host) }
        if let origin { request.headers.add(name: "Origin", value: origin) }
        let otlp = OTLPFixtures.request([OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 1)], project: project)
        request.body = .bytes(ByteBuffer(bytes: try otlp.serializedBytes() as [UInt8]))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return Answer(status: Int(response.status.code), body: String(buffer: body), retryAfter: response.headers.first(name: "Retry-After"))
    }

    /// A live backend and a live collector in front of it (`edit` adjusts the collector).
    static func withStack(_ edit: @escaping @Sendable (inout CollectorConfiguration) -> Void = { _ in },
                          _ body: @Sendable (_ collectorPort: Int, _ projects: ProjectStore) async throws -> Void) async throws {
        let (backend, services) = try await BackendApp.build(configuration: TestBackend.configuration(), logger: TestBackend.logger, closesStoreAtShutdown: false)
        try await backend.test(.live) { backendClient in
            let backendPort = try #require(backendClient.port)
            var c = CollectorConfiguration.default
            c.port = 0
            c.queueDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-auth-\(UUID().uuidString)").path
            c.backendURL = "http://127.0.0.1:\(backendPort)"
            c.apiKey = TestBackend.apiKey
            c.fsync = "never"
            c.shutdownTimeout = .milliseconds(200)
            edit(&c)
            let (collector, _) = try CollectorApp.build(configuration: c)
            try await collector.test(.live) { collectorClient in
                try await body(try #require(collectorClient.port), services.projects)
            }
            try? FileManager.default.removeItem(atPath: c.queueDirectory)
        }
        await TestStore.tearDown(services)
    }

    @Test("key mode: an ingest key is accepted; no key or an unknown key 401; a key without ingest or of another project 403; a revoked key is refused within the TTL")
    func keyMode() async throws {
        try await Self.withStack({ c in
            c.authCacheTTL = .seconds(1)
            c.authNegativeTTL = .milliseconds(100)
        }) { port, projects in
            let ingest = try await projects.createKey(projectID: "default", name: "ingest-only", scopes: [.ingest])
            let read = try await projects.createKey(projectID: "default", name: "read-only", scopes: [.read]).key
            let teamA = try await projects.createProject(name: "team-a", actor: "test")
            let other = try await projects.createKey(projectID: teamA.id, name: "team-a-ingest", scopes: [.ingest]).key

            let ok = try await Self.send(port, key: ingest.key)
            #expect(ok.status == 200, "\(ok.body)")
            let header = try await Self.send(port, xAPIKey: ingest.key)
            #expect(header.status == 200, "\(header.body)")
            let none = try await Self.send(port)
            #expect(none.status == 401)
            #expect(none.body.contains("missing API key"))
            let unknown = try await Self.send(port, key: "ef_unknown_key_0123456789")
            #expect(unknown.status == 401)
            #expect(unknown.body.contains("invalid, revoked or expired"))
            let malformed = try await Self.send(port, key: "short")
            #expect(malformed.status == 401)
            let noScope = try await Self.send(port, key: read)
            #expect(noScope.status == 403)
            #expect(noScope.body.contains("'ingest' scope"), "\(noScope.body)")
            let wrongProject = try await Self.send(port, key: other)
            #expect(wrongProject.status == 403)
            #expect(wrongProject.body.contains("team-a") && wrongProject.body.contains("forwards to project 'default'"), "\(wrongProject.body)")

            // Spans naming another project than the key's are refused, naming both; its own name is fine.
            let foreign = try await Self.send(port, key: ingest.key, project: "team-a")
            #expect(foreign.status == 403)
            #expect(foreign.body.contains("names project 'team-a'") && foreign.body.contains("'default'"), "\(foreign.body)")
            #expect(try await Self.send(port, key: ingest.key, project: "default").status == 200)

            // Revocation is honoured within the TTL (1 s here).
            _ = try await projects.revokeKey(id: ingest.record.id)
            let revokedAt = ContinuousClock.now
            var status = 200
            while status == 200, ContinuousClock.now - revokedAt < .seconds(10) {
                status = try await Self.send(port, key: ingest.key).status
                if status == 200 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(status == 401)
            #expect(ContinuousClock.now - revokedAt < .seconds(3), "a revoked key was accepted \(ContinuousClock.now - revokedAt) after revocation (TTL 1 s)")
        }
    }

    @Test("Host and Origin outside the allow-list get 403 naming DNS rebinding; loopback names and IP addresses pass")
    func dnsRebinding() async throws {
        try await Self.withStack({ c in c.authMode = .open }) { port, _ in
            let rebound = try await Self.send(port, host: "attacker.example:\(port)")
            #expect(rebound.status == 403)
            #expect(rebound.body.contains("DNS rebinding") && rebound.body.contains("attacker.example"), "\(rebound.body)")
            let origin = try await Self.send(port, origin: "http://attacker.example")
            #expect(origin.status == 403)
            #expect(origin.body.contains("Origin"))
            let nullOrigin = try await Self.send(port, origin: "null")
            #expect(nullOrigin.status == 403)
            #expect(try await Self.send(port, host: "localhost:\(port)").status == 200)
            #expect(try await Self.send(port, host: "127.0.0.1:\(port)", origin: "http://localhost:3000").status == 200)
            #expect(try await Self.send(port, host: "[::1]:\(port)").status == 200)
        }
        try await Self.withStack({ c in c.authMode = .open; c.allowedHosts = ["collector.internal"] }) { port, _ in
            let named = try await Self.send(port, host: "collector.internal:\(port)")
            #expect(named.status == 200)
            let upper = try await Self.send(port, host: "COLLECTOR.internal.")
            #expect(upper.status == 200)
        }
    }

    @Test("open mode accepts without a key, still refuses spans of another project than its forward key's; refused on a non-loopback address unless forced")
    func openMode() async throws {
        try await Self.withStack({ c in c.authMode = .open }) { port, _ in
            let ok = try await Self.send(port)
            #expect(ok.status == 200, "\(ok.body)")
            let foreign = try await Self.send(port, project: "team-a")
            #expect(foreign.status == 403)
            #expect(foreign.body.contains("names project 'team-a'"))
        }
        var c = CollectorConfiguration.default
        c.authMode = .open
        c.host = "0.0.0.0"
        #expect(throws: CollectorError.self) { try c.validateAuth() }
        c.forceOpen = true
        try c.validateAuth()
        c.host = "localhost"
        c.forceOpen = false
        try c.validateAuth()
        var k = CollectorConfiguration.default
        k.apiKey = nil
        #expect((try? k.validateAuth()) == nil, "key mode without forward.api_key must be refused")
        var y = CollectorConfiguration.default
        try y.apply(yaml: "auth: {mode: open, cache_ttl_ms: 1000}\nreceiver: {allowed_hosts: [a.example]}")
        #expect(y.authMode == .open && y.authCacheTTL == .seconds(1) && y.allowedHosts == ["a.example"])
        #expect((try? y.apply(yaml: "auth: {mode: maybe}")) == nil)
    }

    @Test("an unreachable backend: unknown keys get 503 with Retry-After, never acceptance")
    func backendUnreachable() async throws {
        var c = CollectorConfiguration.default
        c.port = 0
        c.queueDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-auth-\(UUID().uuidString)").path
        c.backendURL = "http://127.0.0.1:9"
        c.apiKey = TestBackend.apiKey
        c.fsync = "never"
        c.shutdownTimeout = .milliseconds(200)
        let (collector, pipeline) = try CollectorApp.build(configuration: c)
        try await collector.test(.live) { client in
            let port = try #require(client.port)
            let a = try await Self.send(port, key: "ef_never_seen_key_12345")
            #expect(a.status == 503)
            #expect(a.retryAfter == "5")
            #expect(a.body.contains("cannot verify the API key"), "\(a.body)")
            #expect(pipeline.statistics.spansReceived == 0)
        }
        try? FileManager.default.removeItem(atPath: c.queueDirectory)
    }

    @Test("stale grace: a key validated before the backend went away stays accepted for the grace only; a refused key is never resurrected")
    func staleGrace() async throws {
        final class Script: Sendable {
            let answers = Mutex<[KeyChecker.Outcome]>([])
            func next() -> KeyChecker.Outcome { answers.withLock { $0.isEmpty ? .unreachable("down") : $0.removeFirst() } }
        }
        let p = KeyProject(id: "default", name: "default")
        var c = CollectorConfiguration.default
        c.apiKey = "forward-key-0123"
        c.authCacheTTL = .zero
        c.authNegativeTTL = .zero
        c.authStaleGrace = .seconds(3)  // generous: the shared CPU may stall a test for seconds
        let script = Script()
        script.answers.withLock { $0 = [.valid(p), .refused(status: 401, message: "revoked")] }
        let checker = KeyChecker(configuration: c, forwardKey: { nil }, fetcher: { _ in script.next() })
        #expect(await checker.outcome(for: "client-key-1") == .valid(p))
        #expect(await checker.outcome(for: "client-key-1") == .refused(status: 401, message: "revoked"))
        #expect(await checker.outcome(for: "client-key-1") == .unreachable("down"))  // refused, then down: not resurrected
        script.answers.withLock { $0 = [.valid(p)] }
        #expect(await checker.outcome(for: "client-key-2") == .valid(p))
        #expect(await checker.outcome(for: "client-key-2") == .valid(p))  // down, within the grace
        try await Task.sleep(for: .milliseconds(3200))
        #expect(await checker.outcome(for: "client-key-2") == .unreachable("down"))
    }

    @Test("the backend's /v1/traces refuses spans naming another project (403) and /v1/batches refuses such a batch (400), naming it")
    func backendIngestRefusesForeignProject() async throws {
        let (backend, services) = try await BackendApp.build(configuration: TestBackend.configuration(), logger: TestBackend.logger, closesStoreAtShutdown: false)
        try await backend.test(.router) { client in
            let headers: HTTPFields = [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"]
            let foreign = OTLPFixtures.request([OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 1)], project: "team-a")
            let r = try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: ByteBuffer(bytes: try foreign.serializedBytes() as [UInt8]))
            #expect(r.status == .forbidden)
            #expect(String(buffer: r.body).contains("names project 'team-a'"))
            let own = OTLPFixtures.request([OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 1)], project: "default")
            #expect(try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: ByteBuffer(bytes: try own.serializedBytes() as [UInt8])).status == .ok)

            var b = Evalforge_V1_ForwardBatch()
            b.batchID = "c-foreign-1"
            b.collectorID = "test"
            b.resourceSpans = foreign.resourceSpans
            b.spansAccepted = 1
            b.spansKept = 1
            let rb = try await client.execute(uri: "/v1/batches", method: .post, headers: headers, body: ByteBuffer(bytes: try b.serializedBytes() as [UInt8]))
            #expect(rb.status == .badRequest)
            #expect(String(buffer: rb.body).contains("names project 'team-a'"))

            // The collector's check endpoint: the key's project for an ingest key, 403 without the scope.
            let check = try await client.execute(uri: "/api/auth/check", method: .get, headers: [.authorization: "Bearer \(TestBackend.apiKey)"])
            #expect(check.status == .ok)
            #expect(String(buffer: check.body).contains("\"id\":\"default\""))
        }
        await TestStore.tearDown(services)
    }
}
