@testable import Backend
import EvalForgeModel
@testable import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import TestProcesses
import Testing

/// Issue 16 §3: `--role ingest|query|worker|all`. Each role's routes are served, the others' refused
/// with a 404 naming the role that serves them; background work runs only with the worker role.
@Suite("Backend roles")
struct BackendRolesTests {
    static func json(_ buffer: ByteBuffer) -> [String: Any] { AccessControlTests.json(buffer) }

    @Test("--role parsing: all, one role, comma lists; anything else names the valid roles")
    func parsing() throws {
        #expect(BackendRoles.all.names == ["ingest", "query", "worker"])
        #expect(try BackendRoles(parsing: "all") == .all)
        #expect(try BackendRoles(parsing: "ingest").names == ["ingest"])
        #expect(try BackendRoles(parsing: "query,ingest").names == ["ingest", "query"])
        #expect(try BackendRoles(parsing: " Worker , query ,worker").names == ["query", "worker"])
        #expect(try BackendRoles(parsing: "ingest,all") == .all)
        for bad in ["", ",", "ingester", "ingest,,query", "ingest;query", "reader", String(repeating: "x", count: 500)] {
            #expect(throws: BackendRolesError.self, "'\(bad.prefix(20))'") { try BackendRoles(parsing: bad) }
            do { _ = try BackendRoles(parsing: bad) } catch {
                #expect(error.message.contains("ingest, query, worker, all"), "\(error.message)")
                #expect(error.message.utf8.count < 200, "the message quotes a bounded part of the value")
            }
        }
        #expect(throws: BackendRolesError.self) { try BackendRoles([]) }
        #expect(BackendRoles.roles(serving: "/v1/traces") == [.ingest] && BackendRoles.roles(serving: "/v1/batches") == [.ingest])
        #expect(BackendRoles.roles(serving: "/api/traces") == [.query] && BackendRoles.roles(serving: "/login") == [.query] && BackendRoles.roles(serving: "/") == [.query])
        #expect(BackendRoles.roles(serving: "/api/auth/check") == [.ingest, .query], "collectors check keys where they send batches")
        #expect(BackendRoles.roles(serving: "/healthz").isEmpty && BackendRoles.roles(serving: "/readyz").isEmpty)
    }

    static let roleSets = ["ingest", "query", "worker", "ingest,query", "all"]

    @Test("each role serves its routes and answers 404 naming the serving role for the others; health and readiness carry the roles", arguments: roleSets)
    func routes(_ text: String) async throws {
        let roles = try BackendRoles(parsing: text)
        var config = AccessControlTests.configuration()
        config.roles = roles
        let (app, services) = try await BackendApp.build(configuration: config, logger: TestBackend.logger, closesStoreAtShutdown: false)
        try await app.test(.router) { client in
            for path in ["/healthz", "/readyz"] {
                let r = try await client.execute(uri: path, method: .get)
                #expect(r.status == .ok, "\(path): \(String(buffer: r.body))")
                #expect(Self.json(r.body)["roles"] as? [String] == roles.names, "\(path): \(String(buffer: r.body))")
            }
            func expectRefused(_ r: TestResponse, _ role: String, _ what: String) {
                #expect(r.status == .notFound, "\(what) on \(text): \(r.status)")
                let j = Self.json(r.body)
                #expect(j["served_by_roles"] as? [String] == [role], "\(what): \(String(buffer: r.body))")
                #expect(j["roles"] as? [String] == roles.names, "\(what): \(String(buffer: r.body))")
                #expect((j["error"] as? String)?.contains("the \(role) role") == true, "\(what): \(String(buffer: r.body))")
            }
            // Ingest: OTLP and forwarded batches.
            let body = ByteBuffer(bytes: try OTLPFixtures.request([OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 1)]).serializedBytes() as [UInt8])
            let key: HTTPFields = [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"]
            let otlp = try await client.execute(uri: "/v1/traces", method: .post, headers: key, body: body)
            let batches = try await client.execute(uri: "/v1/batches", method: .post, headers: key, body: ByteBuffer(string: "x"))
            if roles.contains(.ingest) {
                #expect(otlp.status == .ok, "\(String(buffer: otlp.body))")
                #expect(batches.status != .notFound, "the batch route exists (the body is refused as malformed): \(batches.status)")
            } else {
                expectRefused(otlp, "ingest", "POST /v1/traces")
                expectRefused(batches, "ingest", "POST /v1/batches")
            }
            // Query: the API, export, the admin and evaluation API, the UI and its sign-in.
            let reads: [(String, HTTPFields)] = [
                ("/api/traces", AccessControlTests.bearer(TestBackend.apiKey)), ("/api/export/spans", AccessControlTests.bearer(TestBackend.apiKey)),
                ("/api/evaluators", AccessControlTests.bearer(TestBackend.apiKey)), ("/api/admin/projects", AccessControlTests.admin), ("/login", [:]),
            ]
            for (path, headers) in reads {
                let r = try await client.execute(uri: path, method: .get, headers: headers)
                if roles.contains(.query) {
                    #expect(r.status == .ok, "GET \(path) on \(text): \(r.status) \(String(buffer: r.body).prefix(200))")
                } else {
                    expectRefused(r, "query", "GET \(path)")
                }
            }
            // The collectors' key check: with ingest as with query.
            let check = try await client.execute(uri: "/api/auth/check", method: .get, headers: AccessControlTests.bearer(TestBackend.apiKey))
            if roles.contains(.ingest) || roles.contains(.query) {
                #expect(check.status == .ok, "GET /api/auth/check on \(text): \(check.status)")
            } else {
                #expect(check.status == .notFound && Self.json(check.body)["served_by_roles"] as? [String] == ["ingest", "query"], "\(String(buffer: check.body))")
            }
            // An unknown path outside /v1 on a backend without the query role names the query role;
            // with it, it is the router's own 404.
            let unknown = try await client.execute(uri: "/no/such/page", method: .get)
            #expect(unknown.status == .notFound)
            if !roles.contains(.query) { expectRefused(unknown, "query", "GET /no/such/page") }
        }
        await TestStore.tearDown(services)
    }

    @Test("background work (evaluation, retention, trace summary repair) is started only with the worker role", arguments: ["ingest,query", "worker"])
    func workerServices(_ text: String) async throws {
        let roles = try BackendRoles(parsing: text)
        var config = RetentionTests.configuration(store: .sqlite, defaultDays: 30)
        config.roles = roles
        let (app, services) = try await BackendApp.build(configuration: config, logger: TestBackend.logger, closesStoreAtShutdown: false)
        let names = BackendApp.workerServices(services: services).map { String(describing: type(of: $0)) }
        if roles.contains(.worker) {
            for expected in ["RunEngine", "WebhookDispatcher", "OnlineEvaluator", "RetentionService"] {
                #expect(names.contains(expected), "\(names)")
            }
        } else {
            #expect(names.isEmpty, "\(names)")
        }
        // Retention runs when its service starts: a 60-day-old span goes only where a worker runs.
        let now = Int64(Date().timeIntervalSince1970)
        #expect(try await services.store.insert(RetentionTests.batch(project: "default", trace: 4242, daysAgo: 60, now: now)) == .stored)
        @Sendable func spans() async throws -> Int { try await services.store.countSpans(projectID: "default", fromUnixNanos: nil, toUnixNanos: nil) }
        try await app.test(.router) { _ in
            if roles.contains(.worker) {
                let deadline = ContinuousClock.now + .seconds(20)
                while try await spans() > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
                #expect(try await spans() == 0, "the worker's retention job deleted the expired span")
            } else {
                try await Task.sleep(for: .seconds(2))
                #expect(try await spans() == 1, "no retention job without the worker role")
            }
        }
        await TestStore.tearDown(services)
    }

    @Test("evalforge backend refuses an unknown role naming the valid ones (flag and environment)",
          .enabled(if: TestProcesses.evalforgeMissing == nil, "needs the evalforge executable (swift build)"))
    func cliRefusesUnknownRole() throws {
        let cases: [([String], [String: String])] = [(["--role", "ingest,reader"], [:]), ([], ["EVALFORGE_ROLE": "querry"])]
        for (arguments, environment) in cases {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-role-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var env = ProcessInfo.processInfo.environment
            env["EVALFORGE_CLICKHOUSE_URL"] = nil
            env["EVALFORGE_POSTGRES_URL"] = nil
            env["EVALFORGE_ROLE"] = nil
            for (k, v) in environment { env[k] = v }
            let (status, text) = try ChildProcess.runToExit(TestProcesses.evalforge, ["backend", "--port", "\(TestProcesses.freeLoopbackPort())", "--operator-port", "0", "--data-dir", dir] + arguments, environment: env)
            #expect(status != 0, "\(arguments) \(environment): exit \(status)")
            #expect(text.contains("ingest, query, worker, all"), "\(text)")
            #expect(text.contains(environment.isEmpty ? "--role" : "EVALFORGE_ROLE"), "\(text)")
            #expect(text.contains(environment.isEmpty ? "'reader'" : "'querry'"), "\(text)")
        }
    }
}

/// The cache generation poll (`CacheGenerationService`): what it forgets when.
@Suite("Cache generations")
struct CacheGenerationTests {
    @Test("the first poll forgets every cache, later ones only those whose generation moved, a failed one all of them")
    func pollForgets() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-gen-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try SQLiteDatabase(path: dir + "/meta.sqlite")
        try await ProjectStore(db: db).migrate()
        let forgotten = Mutex<[CacheGeneration]>([])
        let service = CacheGenerationService(metadata: db, interval: .seconds(1), forget: { kind in forgotten.withLock { $0.append(kind) } }, logger: TestBackend.logger)
        func poll(_ known: [CacheGeneration: Int64]?) async -> (known: [CacheGeneration: Int64]?, forgot: Set<CacheGeneration>) {
            forgotten.withLock { $0 = [] }
            var failing = false
            let next = await service.pollOnce(known: known, failing: &failing)
            return (next, Set(forgotten.withLock { $0 }))
        }
        let first = await poll(nil)
        #expect(first.forgot == Set(CacheGeneration.allCases))
        let quiet = await poll(first.known)
        #expect(quiet.forgot.isEmpty)
        try await CacheGenerations.bump(db, .telemetryDeletes)
        try await CacheGenerations.bump(db, .telemetryDeletes)
        let moved = await poll(quiet.known)
        #expect(moved.forgot == [.telemetryDeletes])
        #expect(moved.known?[.telemetryDeletes] == 2)
        await db.shutdown()
        let failed = await poll(moved.known)
        #expect(failed.known == nil && failed.forgot == Set(CacheGeneration.allCases), "a cache that cannot be checked is not trusted")
    }
}
