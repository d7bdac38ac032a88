import AsyncHTTPClient
import Backend
import EvalForgeCore
import EvalForgeOTLP
@testable import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Projects, scoped keys, the admin token and API, the audit log (issue 15 §1, §2), through real
/// HTTP on the backend's router with real SQLite (and ClickHouse for project deletion).
@Suite("Access control: projects, keys, scopes")
struct AccessControlTests {
    static let adminToken = "test-admin-token-0123456789abcdef"

    static func configuration(store: TestStore = .sqlite) -> BackendConfiguration {
        var c = TestBackend.configuration(store: store)
        c.adminToken = adminToken
        return c
    }

    static func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
    }

    static func body(_ object: [String: Any]) -> ByteBuffer {
        ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: object)) ?? Data())
    }

    static func bearer(_ key: String, json: Bool = true) -> HTTPFields {
        var h: HTTPFields = [.authorization: "Bearer \(key)"]
        if json { h[.contentType] = "application/json" }
        return h
    }

    static var admin: HTTPFields { bearer(adminToken) }

    static func otlp() throws -> ByteBuffer {
        ByteBuffer(bytes: try OTLPFixtures.request([OTLPFixtures.legacySpan(trace: OTLPFixtures.traceID(), id: 1)]).serializedBytes() as [UInt8])
    }

    // MARK: Every route declares a scope

    @Test("every route the router knows declares a scope or is public; a key without it gets 403 naming the scope")
    func everyRouteDeclaresAScope() async throws {
        let services = try await BackendApp.makeServices(configuration: Self.configuration(), logger: TestBackend.logger)
        let router = BackendApp.buildRouter(services: services)
        var lackingKeys: [Scope: String] = [:]
        var onlyKeys: [Scope: String] = [:]
        for s in Scope.allCases {
            lackingKeys[s] = try await services.projects.createKey(projectID: "default", name: "without-\(s)", scopes: Scope.all.subtracting([s])).key
            onlyKeys[s] = try await services.projects.createKey(projectID: "default", name: "only-\(s)", scopes: [s]).key
        }
        let (lacking, only) = (lackingKeys, onlyKeys)
        let routes = router.routes.map { (method: $0.method, path: $0.path.description) }
        #expect(routes.count > 40, "the router lists \(routes.count) routes; expected every API, ingest and UI route")
        let checked = try await Application(router: router, logger: TestBackend.logger).test(.router) { client in
            var checked = 0
            for route in routes {
                let path = route.path
                let access = RoutePolicy.access(method: route.method, path: path)
                #expect(access != nil, "\(route.method) \(path) declares no scope in RoutePolicy")
                guard case .scope(let scope) = access else { continue }
                // Parameters filled with placeholder values: the scope is checked before the handler.
                let uri = path.split(separator: "/").map { $0.hasPrefix("{") || $0 == "*" || $0 == "**" ? "x1" : String($0) }.joined(separator: "/")
                let denied = try await client.execute(uri: "/" + uri, method: route.method, headers: Self.bearer(lacking[scope]!), body: ByteBuffer(string: "{}"))
                #expect(denied.status == .forbidden, "\(route.method) \(path) without '\(scope)': \(denied.status)")
                let j = Self.json(denied.body)
                #expect(j["missing_scope"] as? String == scope.rawValue, "\(route.method) \(path): body \(String(buffer: denied.body))")
                #expect(((j["error"] as? [String: Any])?["message"] as? String)?.contains("'\(scope.rawValue)'") == true)
                let allowed = try await client.execute(uri: "/" + uri, method: route.method, headers: Self.bearer(only[scope]!), body: ByteBuffer(string: "{}"))
                #expect(Self.json(allowed.body)["missing_scope"] == nil && allowed.status != .unauthorized, "\(route.method) \(path) with only '\(scope)': \(allowed.status) \(String(buffer: allowed.body).prefix(200))")
                checked += 1
            }
            // Public routes need no key.
            for (method, uri) in [(HTTPRequest.Method.get, "/healthz"), (.get, "/readyz"), (.get, "/login"), (.get, "/ui/app.js")] {
                let r = try await client.execute(uri: uri, method: method)
                #expect(r.status == .ok, "\(uri): \(r.status)")
            }
            return checked
        }
        #expect(checked > 35)
        await TestStore.tearDown(services)
    }

    @Test("the route policy maps the issue's scopes: ingest, read, evaluate, admin")
    func policyTable() {
        #expect(RoutePolicy.access(method: .post, path: "/v1/traces") == .scope(.ingest))
        #expect(RoutePolicy.access(method: .post, path: "/v1/batches") == .scope(.ingest))
        #expect(RoutePolicy.access(method: .get, path: "/api/traces/{trace_id}") == .scope(.read))
        #expect(RoutePolicy.access(method: .get, path: "/api/export/spans") == .scope(.read))
        #expect(RoutePolicy.access(method: .post, path: "/api/datasets/{id}/items") == .scope(.evaluate))
        #expect(RoutePolicy.access(method: .post, path: "/api/webhooks") == .scope(.admin))
        #expect(RoutePolicy.access(method: .post, path: "/api/providers") == .scope(.admin))
        #expect(RoutePolicy.access(method: .get, path: "/experiments/runs/{run_id}") == .scope(.evaluate))
        #expect(RoutePolicy.access(method: .get, path: "/traces") == .scope(.read))
        #expect(RoutePolicy.access(method: .get, path: "/") == .scope(.read))
        #expect(RoutePolicy.access(method: .get, path: "/healthz") == .public)
        #expect(RoutePolicy.access(method: .get, path: "/readyz") == .public)
        // A write to a read-only resource is not covered: refused, not allowed.
        #expect(RoutePolicy.access(method: .post, path: "/api/traces") == nil)
        #expect(RoutePolicy.access(method: .get, path: "/api/tracesx") == nil)
    }

    // MARK: Admin API

    @Test("admin API: projects and keys (create shows the secret once, list, rotate with overlap, revoke), audit log", arguments: TestMetadata.available)
    func adminAPI(_ metadata: TestMetadata) async throws {
        let (app, services) = try await BackendApp.build(configuration: try await metadata.configure(Self.configuration()), logger: TestBackend.logger, closesStoreAtShutdown: false)
        #expect(services.metadata.dialect.rawValue == metadata.rawValue)
        try await app.test(.router) { client in
            // Authentication of the admin API.
            let none = try await client.execute(uri: "/api/admin/projects", method: .get)
            #expect(none.status == .unauthorized)
            let malformed = try await client.execute(uri: "/api/admin/projects", method: .get, headers: [.authorization: "Bearer abc\u{7f}defghijk"])
            #expect(malformed.status == .unauthorized)
            #expect(String(buffer: malformed.body).contains("malformed"))
            let projectKey = try await client.execute(uri: "/api/admin/projects", method: .get, headers: Self.bearer(TestBackend.apiKey))
            #expect(projectKey.status == .forbidden, "a project key (even with 'admin') does not manage projects")

            // Projects.
            let created = try await client.execute(uri: "/api/admin/projects", method: .post, headers: Self.admin, body: Self.body(["name": "Team A"]))
            #expect(created.status == .created)
            #expect(Self.json(created.body)["id"] as? String == "team-a")
            let dup = try await client.execute(uri: "/api/admin/projects", method: .post, headers: Self.admin, body: Self.body(["name": "Team A"]))
            #expect(dup.status == .conflict)
            let long = try await client.execute(uri: "/api/admin/projects", method: .post, headers: Self.admin, body: Self.body(["name": String(repeating: "n", count: 101)]))
            #expect(long.status == .badRequest)
            #expect(String(buffer: long.body).contains("at most 100"))
            let control = try await client.execute(uri: "/api/admin/projects", method: .post, headers: Self.admin, body: Self.body(["name": "bad\u{0}name"]))
            #expect(control.status == .badRequest)
            let badID = try await client.execute(uri: "/api/admin/projects", method: .post, headers: Self.admin, body: Self.body(["name": "B", "id": "../etc"]))
            #expect(badID.status == .badRequest)
            let notJSON = try await client.execute(uri: "/api/admin/projects", method: .post, headers: Self.admin, body: ByteBuffer(string: "{nope"))
            #expect(notJSON.status == .badRequest)
            let list = try await client.execute(uri: "/api/admin/projects", method: .get, headers: Self.admin)
            #expect((Self.json(list.body)["projects"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["default", "team-a"], "nothing half-created by the refused requests")
            let renamed = try await client.execute(uri: "/api/admin/projects/team-a", method: .patch, headers: Self.admin, body: Self.body(["name": "Team Alpha"]))
            #expect(renamed.status == .ok)
            #expect(Self.json(renamed.body)["name"] as? String == "Team Alpha")
            let renameClash = try await client.execute(uri: "/api/admin/projects/team-a", method: .patch, headers: Self.admin, body: Self.body(["name": "default"]))
            #expect(renameClash.status == .conflict)
            let renameMissing = try await client.execute(uri: "/api/admin/projects/nope", method: .patch, headers: Self.admin, body: Self.body(["name": "x"]))
            #expect(renameMissing.status == .notFound)

            // Keys: bad input creates nothing.
            let unknownScope = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .post, headers: Self.admin, body: Self.body(["scopes": ["ingest", "root"]]))
            #expect(unknownScope.status == .badRequest)
            #expect(String(buffer: unknownScope.body).contains("'root'"))
            let noScope = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .post, headers: Self.admin, body: Self.body(["scopes": [String]()]))
            #expect(noScope.status == .badRequest)
            let badExpiry = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .post, headers: Self.admin, body: Self.body(["scopes": ["read"], "expires_in_days": 0]))
            #expect(badExpiry.status == .badRequest)
            let longName = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .post, headers: Self.admin, body: Self.body(["scopes": ["read"], "name": String(repeating: "k", count: 500)]))
            #expect(longName.status == .badRequest)
            let huge = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .post, headers: Self.admin, body: Self.body(["scopes": ["read"], "name": String(repeating: "k", count: 70_000)]))
            #expect(huge.status == .contentTooLarge)
            let listMissing = try await client.execute(uri: "/api/admin/projects/ghost/keys", method: .get, headers: Self.admin)
            #expect(listMissing.status == .notFound)
            let longPath = try await client.execute(uri: "/api/admin/projects/" + String(repeating: "p", count: 300) + "/keys", method: .get, headers: Self.admin)
            #expect(longPath.status == .badRequest)
            let noProject = try await client.execute(uri: "/api/admin/projects/ghost/keys", method: .post, headers: Self.admin, body: Self.body(["scopes": ["read"]]))
            #expect(noProject.status == .notFound)
            #expect(String(buffer: noProject.body).contains("ghost"))
            #expect(try await services.projects.keys(projectID: "team-a").isEmpty)

            // An ingest-only key: ingests, cannot read.
            let k = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .post, headers: Self.admin, body: Self.body(["scopes": ["ingest"], "name": "ci", "expires_in_days": 30]))
            #expect(k.status == .created)
            let kj = Self.json(k.body)
            let ingestKey = try #require(kj["key"] as? String)
            let ingestRecord = try #require(kj["record"] as? [String: Any])
            let ingestID = try #require(ingestRecord["id"] as? String)
            #expect(ingestRecord["scopes"] as? [String] == ["ingest"])
            #expect(ingestRecord["expires_at"] is String)
            let sent = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(ingestKey)", .contentType: "application/x-protobuf"], body: try Self.otlp())
            #expect(sent.status == .ok)
            let read = try await client.execute(uri: "/api/traces", method: .get, headers: Self.bearer(ingestKey))
            #expect(read.status == .forbidden)
            #expect(Self.json(read.body)["missing_scope"] as? String == "read")
            let listed = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .get, headers: Self.admin)
            let keys = try #require(Self.json(listed.body)["keys"] as? [[String: Any]])
            #expect(keys.count == 1)
            #expect(keys.first?["last_used_at"] is String, "last used recorded")
            #expect(keys.first?["prefix"] as? String == String(ingestKey.prefix(11)) + "…")
            #expect(!String(buffer: listed.body).contains(ingestKey), "the secret is never listed")

            // Rotation with an overlap: both work until the overlap ends.
            let rotated = try await client.execute(uri: "/api/admin/keys/\(ingestID)/rotate", method: .post, headers: Self.admin, body: Self.body(["overlap_hours": 1]))
            #expect(rotated.status == .created)
            let rj = Self.json(rotated.body)
            let newKey = try #require(rj["key"] as? String)
            #expect((rj["record"] as? [String: Any])?["scopes"] as? [String] == ["ingest"])
            #expect((rj["old"] as? [String: Any])?["status"] as? String == "active")
            for key in [ingestKey, newKey] {
                let r = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "application/x-protobuf"], body: try Self.otlp())
                #expect(r.status == .ok)
            }
            let old = try #require(try await services.projects.key(id: ingestID))
            let oldEnd = try #require(old.expiresUnixNanos)
            let hourFromNow = ProjectStore.nowNanos() + 3_600_000_000_000
            #expect(abs(oldEnd - hourFromNow) < 60_000_000_000, "the old key now ends with the overlap")
            // Rotation without overlap: the old key stops at once.
            let newID = try #require((rj["record"] as? [String: Any])?["id"] as? String)
            let rotatedNow = try await client.execute(uri: "/api/admin/keys/\(newID)/rotate", method: .post, headers: Self.admin, body: Self.body(["overlap_hours": 0]))
            #expect(rotatedNow.status == .created)
            let afterNow = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(newKey)", .contentType: "application/x-protobuf"], body: try Self.otlp())
            #expect(afterNow.status == .unauthorized)
            let badOverlap = try await client.execute(uri: "/api/admin/keys/\(ingestID)/rotate", method: .post, headers: Self.admin, body: Self.body(["overlap_hours": -1]))
            #expect(badOverlap.status == .badRequest)

            // Revocation: at once.
            let revoked = try await client.execute(uri: "/api/admin/keys/\(ingestID)/revoke", method: .post, headers: Self.admin, body: Self.body([:]))
            #expect(revoked.status == .ok)
            #expect(Self.json(revoked.body)["status"] as? String == "revoked")
            let after = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(ingestKey)", .contentType: "application/x-protobuf"], body: try Self.otlp())
            #expect(after.status == .unauthorized)
            #expect(String(buffer: after.body).contains("revoked"))
            let revokeMissing = try await client.execute(uri: "/api/admin/keys/key_nope/revoke", method: .post, headers: Self.admin, body: Self.body([:]))
            #expect(revokeMissing.status == .notFound)

            // A project's admin key manages its own keys only; its webhook change is audited with its id.
            let padmin = try await services.projects.createKey(projectID: "team-a", name: "team-admin", scopes: [.admin])
            let own = try await client.execute(uri: "/api/admin/projects/team-a/keys", method: .get, headers: Self.bearer(padmin.key))
            #expect(own.status == .ok)
            let foreign = try await client.execute(uri: "/api/admin/projects/default/keys", method: .get, headers: Self.bearer(padmin.key))
            #expect(foreign.status == .forbidden)
            let foreignRevoke = try await client.execute(uri: "/api/admin/keys/\(newID)/revoke", method: .post, headers: Self.bearer(padmin.key), body: Self.body([:]))
            #expect(foreignRevoke.status == .ok, "a key of its own project")
            let hook = try await client.execute(uri: "/api/webhooks", method: .post, headers: Self.bearer(padmin.key), body: Self.body(["url": "http://127.0.0.1:9/hook", "events": ["run.completed"]]))
            #expect(hook.status == .created, "\(String(buffer: hook.body))")

            // The audit log: who did what to what.
            let audit = try await client.execute(uri: "/api/admin/audit?limit=100", method: .get, headers: Self.admin)
            #expect(audit.status == .ok)
            let entries = try #require(Self.json(audit.body)["entries"] as? [[String: Any]])
            let actions = entries.map { "\($0["actor"] as? String ?? "") \($0["action"] as? String ?? "") \($0["target"] as? String ?? "")" }
            #expect(actions.contains("admin-token project.create team-a"))
            #expect(actions.contains("admin-token project.rename team-a"))
            #expect(actions.contains("admin-token key.create \(ingestID)"))
            #expect(actions.contains("admin-token key.rotate \(ingestID)"))
            #expect(actions.contains("admin-token key.revoke \(ingestID)"))
            #expect(actions.contains("key:\(padmin.record.id) key.revoke \(newID)"))
            #expect(actions.contains("key:\(padmin.record.id) POST /api/webhooks /api/webhooks"))
            #expect(!actions.contains { $0.contains("/v1/traces") }, "ingest is not an audited action")
            let ownAudit = try await client.execute(uri: "/api/admin/audit", method: .get, headers: Self.bearer(padmin.key))
            let ownEntries = try #require(Self.json(ownAudit.body)["entries"] as? [[String: Any]])
            #expect(!ownEntries.isEmpty && ownEntries.allSatisfy { $0["project"] as? String == "team-a" })
            let badLimit = try await client.execute(uri: "/api/admin/audit?limit=0", method: .get, headers: Self.admin)
            #expect(badLimit.status == .badRequest)
        }
        await TestStore.tearDown(services)
    }

    @Test("an expired key stops working; 'last used' is written at most once per resolution interval")
    func expiryAndLastUsed() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-access-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let projects = ProjectStore(db: try SQLiteDatabase(path: dir + "/meta.sqlite"), lastUsedResolutionNanos: 60_000_000_000)
        try await projects.migrate()
        try await projects.upsert(Project(id: "p", name: "p"))
        let short = try await projects.createKey(projectID: "p", name: "short", scopes: [.read], expiresInSeconds: 1)
        #expect(try await projects.authenticateKey(short.key)?.scopes == [.read])
        try await Task.sleep(for: .milliseconds(1200))
        #expect(try await projects.authenticateKey(short.key) == nil, "expired")

        let k = try await projects.createKey(projectID: "p", name: "k", scopes: [.ingest])
        _ = try await projects.authenticateKey(k.key)
        let first = try #require(try await projects.key(id: k.record.id)?.lastUsedUnixNanos)
        try await Task.sleep(for: .milliseconds(20))
        for _ in 0..<50 { _ = try await projects.authenticateKey(k.key) }
        #expect(try await projects.key(id: k.record.id)?.lastUsedUnixNanos == first, "coalesced: no write per request")
        await #expect(throws: AccessError.self) { try await projects.createKey(projectID: "p", name: "x", scopes: [.read], expiresInSeconds: 0) }
        await #expect(throws: AccessError.self) { try await projects.createKey(projectID: "nope", name: "x", scopes: [.read]) }
        #expect(throws: AccessError.self) { try Scope.parse(["read", "superuser"]) }
        #expect(try Scope.parse([" Read ", "ingest"]) == [.read, .ingest])
    }

    @Test("the admin token: generated once and only its hash stored; a configured token replaces it")
    func adminToken() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-access-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try SQLiteDatabase(path: dir + "/meta.sqlite")
        let projects = ProjectStore(db: db)
        try await projects.migrate()
        let token = try #require(try await projects.ensureAdminToken(configured: nil))
        #expect(try await projects.ensureAdminToken(configured: nil) == nil, "printed once: not generated again")
        #expect(try await projects.isAdminToken(token))
        let stored = try await db.read { c in try c.query("SELECT token_hash FROM admin_tokens").map { $0["token_hash"].string ?? "" } }
        #expect(stored.count == 1 && !stored[0].contains(token), "only the hash is stored")
        // A second store on the same file (another replica, a restart) knows it.
        let again = ProjectStore(db: db)
        #expect(try await again.isAdminToken(token))
        #expect(try await !again.isAdminToken(token + "x"))
        _ = try await again.ensureAdminToken(configured: "configured-admin-token-123456")
        #expect(try await again.isAdminToken("configured-admin-token-123456"))
        #expect(try await !again.isAdminToken(token))
        await #expect(throws: AccessError.self) { try await again.ensureAdminToken(configured: "short") }
    }

    @Test("upgrade: keys of a metadata file from before scopes become full-scope keys")
    func migrationFromOldSchema() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-access-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/evalforge-meta.sqlite"
        do {
            // The schema as the previous version created it, with one key.
            let old = try SQLiteDatabase(path: path)
            try await MetadataMigrator([ProjectStore.migrations.migrations[0]]).apply(to: old)
            try await old.write { c in
                try c.run("INSERT INTO projects (id, name, retention_days, created_unix_nanos) VALUES ('legacy', 'legacy', 0, 1)")
                try c.run("INSERT INTO api_keys (id, project_id, key_hash, prefix, name, created_unix_nanos) VALUES ('k1', 'legacy', ?, 'ef_old…', 'old', 1)", [.text(ProjectStore.keyHash("ef_old_key_from_before"))])
            }
            old.close()
        }
        let db = try SQLiteDatabase(path: path)
        let projects = ProjectStore(db: db)
        try await projects.migrate()
        let found = try #require(try await projects.authenticateKey("ef_old_key_from_before"))
        #expect(found.project.id == "legacy")
        #expect(found.scopes == Scope.all)
        let record = try #require(try await projects.key(id: "k1"))
        #expect(record.scopes == Scope.allCases)
        #expect(record.expiresUnixNanos == nil)
        try await projects.migrate()  // idempotent
        // A stored row naming scopes this version does not know grants only the known ones.
        try await db.write { c in _ = try c.run("UPDATE api_keys SET scopes = 'ingest,root,,ADMIN,*' WHERE id = 'k1'") }
        #expect(try await projects.authenticateKey("ef_old_key_from_before")?.scopes == [.ingest])
    }

    // MARK: Settings page

    @Test("settings page: needs 'admin'; creates a key (shown once) and revokes one; refuses cross-site posts and unknown scopes")
    func settingsPage() async throws {
        let (app, services) = try await BackendApp.build(configuration: Self.configuration(), logger: TestBackend.logger, closesStoreAtShutdown: false)
        let reader = try await services.projects.createKey(projectID: "default", name: "reader", scopes: [.read])
        let bootstrapID = try #require(try await services.projects.keys(projectID: "default").first { $0.name == "bootstrap" }?.id)
        try await app.test(.router) { client in
            let denied = try await client.execute(uri: "/settings", method: .get, headers: Self.bearer(reader.key, json: false))
            #expect(denied.status == .forbidden)
            #expect(Self.json(denied.body)["missing_scope"] as? String == "admin")
            var admin = Self.bearer(TestBackend.apiKey, json: false)
            let page = try await client.execute(uri: "/settings", method: .get, headers: admin)
            #expect(page.status == .ok)
            #expect(String(buffer: page.body).contains("id=\"keys\"") && String(buffer: page.body).contains(reader.record.id))
            #expect(!String(buffer: page.body).contains(reader.key))

            admin[.contentType] = "application/x-www-form-urlencoded"
            var crossSite = admin
            crossSite[.origin] = "http://evil.example"
            let forged = try await client.execute(uri: "/settings/keys", method: .post, headers: crossSite, body: ByteBuffer(string: "name=evil&scope=admin"))
            #expect(forged.status == .forbidden)
            var fetchSite = admin
            fetchSite[HTTPField.Name("Sec-Fetch-Site")!] = "cross-site"
            let forged2 = try await client.execute(uri: "/settings/keys", method: .post, headers: fetchSite, body: ByteBuffer(string: "name=evil&scope=admin"))
            #expect(forged2.status == .forbidden)
            let bad = try await client.execute(uri: "/settings/keys", method: .post, headers: admin, body: ByteBuffer(string: "name=x&scope=bogus"))
            #expect(bad.status == .badRequest)
            #expect(String(buffer: bad.body).contains("unknown scope &#39;bogus&#39;") || String(buffer: bad.body).contains("unknown scope 'bogus'"))
            #expect(try await services.projects.keys(projectID: "default").count == 2, "nothing created by the refused posts")

            var sameOrigin = admin
            sameOrigin[HTTPField.Name("Sec-Fetch-Site")!] = "same-origin"
            let made = try await client.execute(uri: "/settings/keys", method: .post, headers: sameOrigin, body: ByteBuffer(string: "name=web+ui&scope=read&scope=evaluate&expires_in_days=30"))
            #expect(made.status == .created)
            let html = String(buffer: made.body)
            let created = try #require(try await services.projects.keys(projectID: "default").first { $0.name == "web ui" })
            #expect(created.scopes == [.read, .evaluate] && created.expiresUnixNanos != nil)
            let secret = try #require(html.firstRange(of: #/ef_[0-9a-f]{48}/#).map { String(html[$0]) })
            #expect(try await client.execute(uri: "/api/traces", method: .get, headers: Self.bearer(secret)).status == .ok)

            let revoked = try await client.execute(uri: "/settings/keys/\(created.id)/revoke", method: .post, headers: admin, body: ByteBuffer())
            #expect(revoked.status == .seeOther)
            #expect(try await client.execute(uri: "/api/traces", method: .get, headers: Self.bearer(secret)).status == .unauthorized)
            let audit = try await services.projects.auditLog(projectID: "default", limit: 10).map { "\($0.actor) \($0.action) \($0.target)" }
            #expect(audit.contains("key:\(bootstrapID) key.create \(created.id)"))
            #expect(audit.contains("key:\(bootstrapID) key.revoke \(created.id)"))
        }
        await TestStore.tearDown(services)
    }

    // MARK: Deleting a project

    @Test("deleting a project removes its telemetry, scores, evaluation data and keys; other projects keep theirs", arguments: TestStore.available)
    func deleteProject(_ store: TestStore) async throws {
        let (app, services) = try await BackendApp.build(configuration: Self.configuration(store: store), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        try await app.test(.router) { client in
            let created = try await client.execute(uri: "/api/admin/projects", method: .post, headers: Self.admin, body: Self.body(["name": "doomed"]))
            #expect(created.status == .created)
            let k = try await services.projects.createKey(projectID: "doomed", name: "all", scopes: Scope.all)
            for key in [k.key, TestBackend.apiKey] {
                let r = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "application/x-protobuf"], body: try Self.otlp())
                #expect(r.status == .ok)
            }
            let ds = try await client.execute(uri: "/api/datasets", method: .post, headers: Self.bearer(k.key), body: Self.body(["name": "d", "items": [["input": "hi"]]]))
            #expect(ds.status == .created, "\(String(buffer: ds.body))")
            let dsID = try #require(Self.json(ds.body)["id"] as? String)
            let itemRows = try await services.metadata.read { c in try c.scalar("SELECT count(*) FROM eval_items WHERE dataset_id = ?", [.text(dsID)])?.int64 ?? 0 }
            #expect(itemRows == 1)
            #expect(try await services.store.countSpans(projectID: "doomed", fromUnixNanos: nil, toUnixNanos: nil) == 1)
            let scoreTrace = String(repeating: "ab", count: 16)
            for key in [k.key, TestBackend.apiKey] {
                let sc = try await client.execute(uri: "/api/scores", method: .post, headers: Self.bearer(key), body: Self.body(["scores": [["name": "quality", "value": 1, "traceId": scoreTrace]]]))
                #expect(sc.status == .created, "\(String(buffer: sc.body))")
            }
            #expect(try await services.store.scores(projectID: "doomed", traceIDs: [scoreTrace]).count == 1)

            let refusedDefault = try await client.execute(uri: "/api/admin/projects/default", method: .delete, headers: Self.admin)
            #expect(refusedDefault.status == .conflict)
            let missing = try await client.execute(uri: "/api/admin/projects/ghost", method: .delete, headers: Self.admin)
            #expect(missing.status == .notFound)
            let deleted = try await client.execute(uri: "/api/admin/projects/doomed", method: .delete, headers: Self.admin)
            #expect(deleted.status == .ok, "\(String(buffer: deleted.body))")

            #expect(try await services.store.countSpans(projectID: "doomed", fromUnixNanos: nil, toUnixNanos: nil) == 0)
            #expect(try await services.store.listTraces(TraceFilter(projectID: "doomed"), sort: .startDesc, limit: 10, cursor: nil).items.isEmpty)
            #expect(try await services.store.countSpans(projectID: "default", fromUnixNanos: nil, toUnixNanos: nil) == 1, "other projects keep their data")
            #expect(try await services.store.scores(projectID: "doomed", traceIDs: [scoreTrace]).isEmpty)
            #expect(try await services.store.scores(projectID: "default", traceIDs: [scoreTrace]).count == 1)
            #expect(try await services.projects.project(id: "doomed") == nil)
            let leftovers = try await services.metadata.read { c in
                (try c.scalar("SELECT count(*) FROM eval_datasets WHERE project_id = 'doomed'")?.int64 ?? -1)
                    + (try c.scalar("SELECT count(*) FROM eval_items WHERE dataset_id = ?", [.text(dsID)])?.int64 ?? -1)
                    + (try c.scalar("SELECT count(*) FROM api_keys WHERE project_id = 'doomed'")?.int64 ?? -1)
            }
            #expect(leftovers == 0)
            let gone = try await client.execute(uri: "/api/traces", method: .get, headers: Self.bearer(k.key))
            #expect(gone.status == .unauthorized)
            let audit = try await services.projects.auditLog(projectID: "doomed", limit: 10)
            #expect(audit.first?.action == "project.delete", "the audit log outlives the project")
        }
        await TestStore.tearDown(services)
    }
}

