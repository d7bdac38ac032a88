import Backend
import EvalForgeModel
@testable import EvalForgeStore
import Foundation
import Testing
import TestProcesses
@testable import Evaluation

/// One behaviour for both metadata databases: the same checks, through the real stores (projects,
/// keys, sessions, rate limits, audit, evaluation runner), against the SQLite file and a real
/// Postgres 15. The Postgres test runs when EVALFORGE_TEST_POSTGRES_URL is set and is skipped,
/// saying so, otherwise.
@Suite("Metadata conformance") struct MetadataConformanceTests {
    @Test("conformance on the SQLite metadata file")
    func sqlite() async throws {
        try await MetadataConformance.runAll(.sqlite)
    }

    @Test("conformance on Postgres", .enabled(if: TestMetadata.postgresURL != nil, TestMetadata.skipReason))
    func postgres() async throws {
        try await MetadataConformance.runAll(.postgres)
    }

    /// Two backends starting against one empty database migrate once, one after the other
    /// (the advisory lock), and both then see the whole schema.
    @Test("concurrent migrations on Postgres", .enabled(if: TestMetadata.postgresURL != nil, TestMetadata.skipReason))
    func concurrentMigrations() async throws {
        let config = try await TestMetadata.freshPostgres(localDirectory: tempDir())
        let a = try await PostgresMetadataDatabase(configuration: config)
        let b = try await PostgresMetadataDatabase(configuration: config)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for db in [a, b] as [any MetadataDatabase] {
                group.addTask {
                    try await ProjectStore(db: db).migrate()
                    try await SessionStore(db: db).migrate()
                    try await RateLimitStore(db: db).migrate()
                    try await EvalSchema.migrator.apply(to: db)
                }
            }
            try await group.waitForAll()
        }
        let names = try await a.read { c in try c.query("SELECT name FROM schema_migrations ORDER BY name").compactMap { $0[0].string } }
        #expect(names.count == Set(names).count)
        #expect(names.count == StoreSchemaVersions.metadataStore + EvaluationService.metadataMigrations)
        #expect(try await b.checkWritable(timeout: .seconds(5)) == names.count)
        await a.shutdown()
        await TestMetadata.close(b)
    }

    /// Connections cut by the server (a restart, a failover, `pg_terminate_backend`) cost a retry, not
    /// a failed request: the pooled connections are dead, the transaction runs again on new ones.
    @Test("lost connections are retried on Postgres", .enabled(if: TestMetadata.postgresURL != nil, TestMetadata.skipReason))
    func lostConnectionsAreRetried() async throws {
        var config = try await TestMetadata.freshPostgres(localDirectory: tempDir())
        config.applicationName = "evalforge-test-" + UUID().uuidString.prefix(8).lowercased()
        let db = try await PostgresMetadataDatabase(configuration: config)
        let projects = ProjectStore(db: db)
        try await projects.migrate()
        // Every pool thread holds a connection afterwards.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 { group.addTask { _ = try await projects.createProject(name: "p\(i)", actor: "t") } }
            try await group.waitForAll()
        }
        var admin = config
        admin.applicationName = "evalforge-test-admin"
        let killer = try await PostgresMetadataDatabase(configuration: admin)
        let name = config.applicationName
        let killed = try await killer.write { c in
            try c.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?", [.text(name)])?.int64 ?? 0
        }
        #expect(killed >= 1)
        // Writes and reads go on: each ran again on a new connection.
        for i in 8..<12 { _ = try await projects.createProject(name: "p\(i)", actor: "t") }
        #expect(try await projects.projects().count == 12)
        #expect(try await projects.auditLog(projectID: nil, limit: 100).filter { $0.action == "project.create" }.count == 12, "each project created once")
        await killer.shutdown()
        await TestMetadata.close(db)
    }

    /// `/readyz`'s metadata check fails, naming the server, while Postgres cannot take writes (a role
    /// whose transactions are read-only; a role that can no longer log in, its connections cut), and
    /// passes again once it can.
    @Test("readiness on Postgres", .enabled(if: TestMetadata.postgresURL != nil, TestMetadata.skipReason))
    func readiness() async throws {
        let dir = tempDir()
        let owner = try await TestMetadata.freshPostgres(localDirectory: dir)
        let schema = try #require(owner.searchPath)
        let setup = try await PostgresMetadataDatabase(configuration: owner)
        try await ProjectStore(db: setup).migrate()
        let role = "evalforge_ro_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        try await setup.write { c in
            try c.execute("CREATE ROLE \(role) LOGIN; GRANT USAGE ON SCHEMA \(schema) TO \(role); GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA \(schema) TO \(role)")
        }
        var config = owner
        config.username = role
        let db = try await PostgresMetadataDatabase(configuration: config)
        #expect(try await db.checkWritable(timeout: .seconds(5)) == ProjectStore.migrations.migrations.count)
        let store = try SQLiteStore(path: dir + "/telemetry.sqlite", logger: testLogger)
        try await store.migrate()

        // Read-only transactions: the write check is refused, and /readyz says which store and why.
        try await setup.write { c in try c.execute("ALTER ROLE \(role) SET default_transaction_read_only = on") }
        let readOnly = try await PostgresMetadataDatabase(configuration: config)
        await #expect { _ = try await readOnly.checkWritable(timeout: .seconds(30)) } throws: { e in
            ((e as? StoreError)?.message ?? "").contains("read-only")
        }
        let report = await BackendReadiness(store: store, metadata: readOnly).check()
        #expect(!report.ready)
        #expect(report.problems.contains { $0.contains("metadata store (postgres://\(role)@") && $0.contains("cannot take writes") }, "\(report.problems)")
        await readOnly.shutdown()
        try await setup.write { c in try c.execute("ALTER ROLE \(role) RESET default_transaction_read_only") }

        // Unreachable for this role: its sessions are cut and it may not log in again.
        try await setup.write { c in
            try c.execute("ALTER ROLE \(role) NOLOGIN")
            try c.run("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = ?", [.text(role)])
        }
        await #expect { _ = try await db.checkWritable(timeout: .seconds(30)) } throws: { e in
            let m = (e as? StoreError)?.message ?? ""
            return m.contains("Postgres postgres://\(role)@")
        }
        try await setup.write { c in try c.execute("ALTER ROLE \(role) LOGIN") }
        // Ready again (a probe still finishing on a loaded machine makes the next one wait its turn).
        var version: Int?
        let deadline = ContinuousClock.now + .seconds(30)
        while version == nil, ContinuousClock.now < deadline {
            version = try? await db.checkWritable(timeout: .seconds(5))
            if version == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(version == ProjectStore.migrations.migrations.count)

        await db.shutdown()
        await store.shutdown()
        await TestMetadata.close(setup)
        var admin = owner
        admin.searchPath = nil
        let cleanup = try await PostgresMetadataDatabase(configuration: admin)
        try? await cleanup.write { c in try c.execute("DROP OWNED BY \(role); DROP ROLE IF EXISTS \(role)") }
        await cleanup.shutdown()
    }

    /// `evalforge backend` with a bad or unreachable `--postgres-url` does not start, and says why.
    @Test func backendStartupNamesABadPostgresURL() throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        for (url, expected) in [("http://db/x", "--postgres-url 'http://db/x': the scheme must be postgres://"),
                                ("postgres://u:hunter2@127.0.0.1:1/x", "cannot connect to Postgres postgres://u@127.0.0.1:1/x")] {
            let dir = tempDir()
            let p = ChildProcess()
            p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
            p.arguments = ["backend", "--port", "\(TestProcesses.freeLoopbackPort())", "--operator-port", "0", "--data-dir", dir, "--postgres-url", url]
            let err = Pipe()
            p.standardError = err
            p.standardOutput = err
            try p.run()
            let out = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus != 0)
            #expect(out.contains(expected), "\(out.suffix(600))")
            #expect(!out.contains("hunter2"))
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// The URL is checked at start-up, naming what is wrong; the password never appears in messages.
    @Test func badURLsAreRefusedByName() throws {
        for (url, why) in [("http://h/db", "scheme"), ("postgres:///db", "no host"), ("postgres://h:0/db", "port"),
                           ("postgres://h/db?sslmode=required", "sslmode"), ("postgres://h/db?bogus=1", "unknown parameter"),
                           ("postgres://h/db?sslmode=verify-full&sslrootcert=ca.pem", "absolute path"), ("postgres://h/db?sslmode=require&sslrootcert=/ca.pem", "verify-ca or verify-full"),
                           ("postgres://h/a/b", "one database"), ("postgres://h/db?search_path=Bad-Name", "search_path"), ("postgres://h/db?application_name=a%20b", "application_name")] {
            #expect { try PostgresMetadataConfiguration(url: url) } throws: { e in
                ((e as? StoreError)?.message ?? "").contains(why)
            }
        }
        #expect { try PostgresMetadataConfiguration(url: "postgres://u:hunter2@h/db?sslmode=verify-everything") } throws: { e in
            let m = (e as? StoreError)?.message ?? "hunter2"
            return !m.contains("hunter2") && m.contains("sslmode")
        }
        let ok = try PostgresMetadataConfiguration(url: "postgresql://ev:pw@127.0.0.1:15442/meta?sslmode=disable&connect_timeout=3")
        #expect(ok.host == "127.0.0.1" && ok.port == 15442 && ok.username == "ev" && ok.password == "pw" && ok.database == "meta" && ok.connectTimeout == .seconds(3))
        #expect(!ok.redactedURL.contains("pw"))
    }

    /// TLS to Postgres, against the test server (scripts/cluster postgres-up turns TLS on with a
    /// self-signed certificate for 127.0.0.1, EVALFORGE_TEST_POSTGRES_CA): `pg_stat_ssl` says whether
    /// this very connection is encrypted; verification accepts that certificate and refuses the
    /// server when another CA is named.
    @Test(.enabled(if: TestMetadata.postgresURL != nil && ProcessInfo.processInfo.environment["EVALFORGE_TEST_POSTGRES_CA"] != nil,
                   "EVALFORGE_TEST_POSTGRES_URL and EVALFORGE_TEST_POSTGRES_CA not set (scripts/test sets both)"))
    func tlsModes() async throws {
        let url = try #require(TestMetadata.postgresURL)
        let ca = try #require(ProcessInfo.processInfo.environment["EVALFORGE_TEST_POSTGRES_CA"])
        let joiner = url.contains("?") ? "&" : "?"
        func encrypted(_ query: String) async throws -> Bool {
            let db = try await PostgresMetadataDatabase(configuration: try PostgresMetadataConfiguration(url: url + joiner + query))
            let ssl = try await db.read { c in try c.scalar("SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()")?.int64 }
            await db.shutdown()
            return ssl == 1
        }
        #expect(try await encrypted("sslmode=disable") == false)
        #expect(try await encrypted("sslmode=prefer") == true)
        #expect(try await encrypted("sslmode=require") == true)
        #expect(try await encrypted("sslmode=verify-ca&sslrootcert=\(ca)") == true)
        #expect(try await encrypted("sslmode=verify-full&sslrootcert=\(ca)") == true)
        // Another CA (a fresh self-signed certificate): the server's certificate does not verify.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-pg-ca-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let openssl = ChildProcess()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other", "-keyout", dir + "/other.key", "-out", dir + "/other.crt"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)
        await #expect(throws: StoreError.self) { _ = try await encrypted("sslmode=verify-full&sslrootcert=\(dir)/other.crt&connect_timeout=5") }
        // A root certificate path that is not a certificate is refused by name at start.
        await #expect { _ = try await encrypted("sslmode=verify-ca&sslrootcert=\(dir)/missing.crt") } throws: { e in
            ((e as? StoreError)?.message ?? "").contains("sslrootcert")
        }
    }

    /// `?` placeholders become `$n` outside strings, identifiers and comments; `?N` keeps its number.
    @Test func placeholderTranslation() {
        #expect(PostgresSQL.placeholders("SELECT ? , '?' , \"a?\" FROM t WHERE x = ? -- ?\nAND y = ?") == "SELECT $1 , '?' , \"a?\" FROM t WHERE x = $2 -- ?\nAND y = $3")
        #expect(PostgresSQL.placeholders("UPDATE t SET a = MIN(a + ?2, ?5) WHERE id = ?1") == "UPDATE t SET a = MIN(a + $2, $5) WHERE id = $1")
        #expect(PostgresSQL.placeholders("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', $1")
        #expect(PostgresSQL.statements("CREATE TABLE a (x TEXT DEFAULT ';');\n-- a comment; here\nCREATE INDEX i ON a(x);  ;") == ["CREATE TABLE a (x TEXT DEFAULT ';')", "CREATE INDEX i ON a(x)"])
        #expect(PostgresSQL.schema("id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, r REAL, b BLOB, integers TEXT").contains("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, r DOUBLE PRECISION, b BYTEA, integers TEXT"))
    }
}

enum MetadataConformance {
    static func runAll(_ kind: TestMetadata) async throws {
        let dir = tempDir()
        let db = try await kind.open(dir: dir)
        #expect(db.dialect == (kind == .sqlite ? .sqlite : .postgres))
        do {
            try await access(db)
            try await rateLimits(db)
            try await values(db)
            try await evaluation(db, dir: dir)
            try await leases(db)
        } catch {
            await TestMetadata.close(db)
            throw error
        }
        await TestMetadata.close(db)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Projects, keys (scopes, expiry, rotation, revocation), the admin token, sessions, the audit log.
    static func access(_ db: any MetadataDatabase) async throws {
        let projects = ProjectStore(db: db)
        try await projects.migrate()
        try await projects.migrate()  // idempotent
        let sessions = SessionStore(db: db)
        try await sessions.migrate()
        try await RateLimitStore(db: db).migrate()
        #expect(try await db.checkWritable(timeout: .seconds(5)) == StoreSchemaVersions.metadataStore)

        try await projects.upsert(Project(id: "default", name: "default"))
        let acme = try await projects.createProject(name: "Acme Corp", actor: "admin-token")
        #expect(acme.id == "acme-corp")
        await #expect { _ = try await projects.createProject(name: "Acme Corp", actor: "admin-token") } throws: { ($0 as? AccessError)?.isConflict == true }
        #expect(try await projects.renameProject(id: "acme-corp", to: "Acme", actor: "admin-token").name == "Acme")
        #expect(try await projects.setRetention(id: "acme-corp", days: 30, actor: "admin-token").retentionDays == 30)
        #expect(try await projects.setRetention(id: "acme-corp", days: 0, actor: "admin-token").retentionDays == Project.retentionForever)
        await #expect { _ = try await projects.setRetention(id: "acme-corp", days: 99_999, actor: "admin-token") } throws: { ($0 as? AccessError)?.isInvalid == true }
        #expect(try await projects.projects().map(\.id) == ["acme-corp", "default"])

        // Scopes and expiry.
        let (key, record) = try await projects.createKey(projectID: "acme-corp", name: "ci", scopes: [.ingest, .read], expiresInSeconds: 3600, actor: "admin-token")
        let auth = try #require(try await projects.authenticateKey(key))
        #expect(auth.project.id == "acme-corp" && auth.scopes == [.ingest, .read] && auth.keyID == record.id)
        #expect(try await projects.key(id: record.id)?.lastUsedUnixNanos != nil)
        #expect(try await projects.authenticateKey(key + "x") == nil)
        // Rotation with overlap: both work; the old one now expires within the overlap.
        let rotated = try await projects.rotateKey(id: record.id, overlapSeconds: 60, actor: "admin-token")
        #expect(try await projects.authenticateKey(key) != nil)
        #expect(try await projects.authenticateKey(rotated.key)?.scopes == [.ingest, .read])
        #expect((rotated.old.expiresUnixNanos ?? .max) <= ProjectStore.nowNanos() + 61_000_000_000)
        // Rotation without overlap revokes at once; revocation stops a key.
        let again = try await projects.rotateKey(id: rotated.record.id, overlapSeconds: 0, actor: "admin-token")
        #expect(try await projects.authenticateKey(rotated.key) == nil)
        try await projects.revokeKey(id: again.record.id, actor: "admin-token")
        #expect(try await projects.authenticateKey(again.key) == nil)
        #expect(try await projects.keys(projectID: "acme-corp").map(\.status).sorted() == ["active", "revoked", "revoked"])
        // Caller-chosen keys: idempotent for the same project, refused for another.
        try await projects.addKey("bootstrap-key-0123", projectID: "default", name: "bootstrap")
        try await projects.addKey("bootstrap-key-0123", projectID: "default", name: "bootstrap")
        await #expect(throws: StoreError.self) { try await projects.addKey("bootstrap-key-0123", projectID: "acme-corp", name: "x") }

        // The admin token: configured, replaced, compared by hash.
        _ = try await projects.ensureAdminToken(configured: "first-admin-token-0123")
        _ = try await projects.ensureAdminToken(configured: "second-admin-token-0123")
        let fresh = ProjectStore(db: db)
        #expect(try await fresh.isAdminToken("second-admin-token-0123"))
        #expect(try await !fresh.isAdminToken("first-admin-token-0123"))

        // Sessions: sign-in needs `read`; a session lives while its key does.
        let ingestOnly = try await projects.createKey(projectID: "acme-corp", name: "ingest", scopes: [.ingest], actor: "admin-token")
        #expect(try await sessions.create(key: ingestOnly.key, idleSeconds: 60, absoluteSeconds: 600) == nil)
        let reader = try await projects.createKey(projectID: "acme-corp", name: "reader", scopes: [.read], actor: "admin-token")
        let s = try #require(try await sessions.create(key: reader.key, idleSeconds: 60, absoluteSeconds: 600))
        #expect(try await sessions.authenticate(id: s.id, idleSeconds: 60)?.project.id == "acme-corp")
        #expect(try await sessions.count() == 1)
        #expect(try await sessions.deleteSessions(keyID: reader.record.id) == 1)
        #expect(try await sessions.authenticate(id: s.id, idleSeconds: 60) == nil)
        let t = try #require(try await sessions.create(key: reader.key, idleSeconds: 60, absoluteSeconds: 600))
        #expect(try await sessions.delete(id: t.id))
        // Expired: idle past its expiry.
        let u = try #require(try await sessions.create(key: reader.key, idleSeconds: 1, absoluteSeconds: 600, nowUnixMs: 1_000))
        #expect(try await sessions.authenticate(id: u.id, idleSeconds: 1, nowUnixMs: 5_000) == nil)

        // The audit log: newest first, per project, paged.
        try await projects.recordAudit(actor: "key:x", action: "custom.thing", projectID: "acme-corp", target: "t", detail: String(repeating: "é", count: 2000))
        let log = try await projects.auditLog(projectID: "acme-corp", limit: 100)
        #expect(log.first?.action == "custom.thing" && (log.first?.detail.utf8.count ?? 0) <= 1024)
        for action in ["project.create", "project.rename", "project.retention", "key.create", "key.rotate", "key.revoke"] {
            #expect(log.contains { $0.action == action }, "audit has \(action)")
        }
        #expect(log.map(\.seq) == log.map(\.seq).sorted(by: >))
        let page = try await projects.auditLog(projectID: "acme-corp", limit: 2, beforeSeq: log[1].seq)
        #expect(page.map(\.seq) == Array(log.map(\.seq)[2..<4]))
        #expect(try await projects.auditLog(projectID: nil, limit: 1000).count >= log.count)
    }

    /// Tiers and the rate-limit counters: leases are exact even when replicas lease at once.
    static func rateLimits(_ db: any MetadataDatabase) async throws {
        let store = RateLimitStore(db: db)
        try await store.setProjectTier("acme-corp", tier: "pro", actor: "admin-token")
        await #expect(throws: AccessError.self) { try await store.setProjectTier("nope", tier: "pro", actor: "admin-token") }
        #expect(try await store.projectTier("acme-corp") == "pro")
        let w = RateLimitStore.Window(subject: "project:acme-corp", dimension: "requests", kind: "minute", start: 1_800_000_000)
        #expect(try await store.lease(w, want: 60, limit: 100) == (60, 60))
        #expect(try await store.lease(w, want: 60, limit: 100) == (40, 100))
        #expect(try await store.lease(w, want: 1, limit: 100) == (0, 100))
        #expect(try await store.lease(w, want: 5, limit: 100, force: true) == (5, 105))
        // Twenty replicas lease at once: the grants add up to the limit exactly.
        let w2 = RateLimitStore.Window(subject: "project:acme-corp", dimension: "spans", kind: "day", start: 1_799_971_200)
        let granted = try await withThrowingTaskGroup(of: Int64.self) { group in
            for _ in 0..<20 { group.addTask { try await RateLimitStore(db: db).lease(w2, want: 10, limit: 150).granted } }
            return try await group.reduce(0, +)
        }
        #expect(granted == 150)
        let usage = try await store.usage(subjects: ["project:acme-corp"], minuteStart: 1_800_000_000, dayStart: 1_799_971_200)
        #expect(usage["project:acme-corp"]?["requests"]?["minute"] == 105)
        #expect(usage["project:acme-corp"]?["spans"]?["day"] == 150)
        // Past windows go as new ones are leased.
        _ = try await store.lease(RateLimitStore.Window(subject: "project:acme-corp", dimension: "requests", kind: "minute", start: 1_800_000_060), want: 1, limit: 100, expireBefore: 1_800_000_060)
        #expect(try await store.usage(subjects: ["project:acme-corp"], minuteStart: 1_800_000_000, dayStart: 0)["project:acme-corp"]?["requests"]?["minute"] == nil)
    }

    /// Values keep their kind and extremes through a round trip; integers stay 64-bit.
    static func values(_ db: any MetadataDatabase) async throws {
        try await db.write { c in
            try c.execute(c.dialect == .postgres
                ? "CREATE TABLE conformance_values (i BIGINT, r DOUBLE PRECISION, t TEXT, b BYTEA)"
                : "CREATE TABLE conformance_values (i INTEGER, r REAL, t TEXT, b BLOB)")
            try c.run("INSERT INTO conformance_values (i, r, t, b) VALUES (?, ?, ?, ?)", [.integer(.max), .real(-1.5e300), .text("ünïcødé ' ? $1"), .blob([0, 255, 1])])
            try c.run("INSERT INTO conformance_values (i, r, t, b) VALUES (?, ?, ?, ?)", [.integer(.min), .null, .text(""), .blob([])])
        }
        let rows = try await db.read { c in try c.query("SELECT i, r, t, b FROM conformance_values ORDER BY i DESC") }
        #expect(rows.count == 2)
        #expect(rows[0]["i"] == .integer(.max) && rows[0]["r"] == .real(-1.5e300) && rows[0]["t"] == .text("ünïcødé ' ? $1") && rows[0]["b"] == .blob([0, 255, 1]))
        #expect(rows[1]["i"] == .integer(.min) && rows[1]["r"] == .null && rows[1]["t"] == .text(""))
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM conformance_values WHERE t = ?", [.text("")]) } == .integer(1))
        #expect(try await db.read { c in try c.scalar("SELECT MIN(i, 7) FROM conformance_values WHERE i > 0") } == .integer(7))
        // A failing statement fails its transaction and leaves nothing behind.
        await #expect(throws: StoreError.self) {
            try await db.write { c in
                try c.run("INSERT INTO conformance_values (i) VALUES (?)", [.integer(1)])
                try c.run("INSERT INTO no_such_table (i) VALUES (1)")
            }
        }
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM conformance_values") } == .integer(2))
        // An error thrown by the body rolls back too.
        struct Stop: Error {}
        await #expect(throws: Stop.self) {
            try await db.write { c in
                try c.run("DELETE FROM conformance_values")
                throw Stop()
            }
        }
        #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM conformance_values") } == .integer(2))
        try await db.write { c in try c.execute("DROP TABLE conformance_values") }
    }

    /// Providers with sealed secrets, evaluators, datasets, runs and their items, webhooks, the
    /// online queue and project deletion, through the evaluation service on this database.
    static func evaluation(_ db: any MetadataDatabase, dir: String) async throws {
        let receiver = Receiver(secret: "hook-secret")
        try await receiver.run { hookPort in
            // Generous webhook timeouts: on a loaded test machine the receiver can take more than 400 ms.
            let settings = EvaluationSettings(webhooks: .init(retrySchedule: [.milliseconds(50), .milliseconds(100)], timeout: .seconds(10)), outbound: .testLoopback)
            let r = try await Runner(dir: dir, settings: settings, metadata: db)
            let ev = r.service
            let p = "acme-corp"
            _ = try await ev.putProvider(projectID: p, ProviderConfig(name: "judge", kind: .openai, baseURL: "https://llm.example/v1", apiKey: "sk-plain-secret-42", model: "gpt-4o-mini"))
            let stored = try await db.read { c in try c.scalar("SELECT config FROM eval_providers WHERE project_id = ?", [.text(p)])?.string } ?? ""
            #expect(!stored.isEmpty && !stored.contains("sk-plain-secret-42"), "the provider key is sealed at rest")
            #expect(try await ev.listProviders(projectID: p).first.map { !$0.apiKey.contains("sk-plain-secret-42") } == true)
            #expect(try await ev.putEvaluator(projectID: p, .init(name: "len", type: "length", max: 1000)).version == 1)
            #expect(try await ev.putEvaluator(projectID: p, .init(name: "len", type: "length", max: 2000)).version == 2)
            #expect(try await ev.listEvaluators(projectID: p).map(\.spec.name) == ["len"])

            let ds = try await ev.createDataset(projectID: p, name: "d", items: items(5))
            _ = try await ev.addItems(projectID: p, datasetID: ds.id, items: items(2, prefix: "more"))
            let stored7 = try await ev.items(projectID: p, datasetID: ds.id, limit: 100, offset: 0)
            #expect(stored7.count == 7 && stored7.last?.input == .string("more question 1: what is 1 + 1?"))

            let hook = try await ev.createWebhook(projectID: p, url: "http://127.0.0.1:\(hookPort)/hook", secret: "hook-secret", events: ["run.completed"])
            #expect(try await ev.testWebhook(projectID: p, id: hook.id).status == "delivered")
            let exp = try await ev.createExperiment(projectID: p, name: "e", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["len"], concurrency: 3)
            let run = try await r.waitForRun(p, try await ev.startRun(projectID: p, experimentID: exp.id).id)
            #expect(run.status == .completed && run.done == 7 && run.errors == 0, "\(run.status) \(run.done) \(run.error)")
            let results = try await ev.runItems(projectID: p, id: run.id)
            #expect(results.count == 7 && results.allSatisfy { $0.error == nil })
            #expect(try await ev.listRuns(projectID: p).map(\.id) == [run.id])
            let deadline = ContinuousClock.now + .seconds(20)
            while receiver.snapshot.events.filter({ $0 == "run.completed" }).isEmpty, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(receiver.snapshot.events.contains("run.completed"))
            #expect(try await ev.deliveries(projectID: p, webhookID: hook.id).count >= 2)

            // The online queue: queued once per span, evaluated, counted.
            let rule = try await ev.createRule(projectID: p, name: "all", filter: RuleFilter(), samplingRate: 1, evaluators: ["len"])
            let spans = (0..<3).map { i in
                SpanRow(projectID: p, traceID: String(format: "%032x", 0xabc0 + i), spanID: String(format: "%016x", i + 1), startUnixNanos: nowNanos(), durationNanos: 1_000_000,
                        service: "app", name: "chat", kind: .client, operation: "chat", provider: "openai", model: "gpt-4o", attributesJSON: "{}", input: "[]", output: "[\"hi\"]")
            }
            _ = try await r.store.insert(StoreBatch(projectID: p, batchID: "conformance", spans: spans, rollups: []))
            #expect(try await ev.spansStored(projectID: p, spans: spans) == .init(queued: 3, alreadyQueued: 0, skippedOverShare: 0))
            #expect(try await ev.spansStored(projectID: p, spans: spans) == .init(queued: 0, alreadyQueued: 3, skippedOverShare: 0))
            var stats = try await ev.onlineQueueStats(projectID: p)
            let until = ContinuousClock.now + .seconds(20)
            while stats.evaluated < 3, ContinuousClock.now < until {
                try await Task.sleep(for: .milliseconds(20))
                stats = try await ev.onlineQueueStats(projectID: p)
            }
            #expect(stats.enqueued == 3 && stats.evaluated == 3 && stats.queued == 0, "\(stats)")
            #expect(try await r.store.scores(projectID: p, runID: rule.id).count == 3)

            // Deleting the project removes every metadata row it owns, children included; the audit stays.
            try await ProjectStore(db: db).deleteProject(id: p, actor: "admin-token")
            for table in ["api_keys", "eval_providers", "eval_evaluators", "eval_datasets", "eval_runs", "eval_webhooks", "eval_online_queue", "project_tiers"] {
                #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM \(table) WHERE project_id = ?", [.text(p)]) } == .integer(0), "\(table)")
            }
            #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM eval_items WHERE dataset_id = ?", [.text(ds.id)]) } == .integer(0))
            #expect(try await db.read { c in try c.scalar("SELECT count(*) FROM eval_run_items WHERE run_id = ?", [.text(run.id)]) } == .integer(0))
            #expect(try await ProjectStore(db: db).auditLog(projectID: p, limit: 5).first?.action == "project.delete")
            // Runner.stop would close the database: the caller does.
            await r.group.triggerGracefulShutdown()
            _ = await r.task.result
            await r.store.shutdown()
        }
    }

    /// Leases on shared work between two workers (owners "A" and "B") on one database: claims skip
    /// each other's live leases, a lease that ran out is claimable by the other, only the holder
    /// of a claim records its result, the heartbeat extends only the worker's own claims, a paid
    /// item's third claim fails it naming the rule, and the online queue's rows behave the same.
    static func leases(_ db: any MetadataDatabase) async throws {
        let settings = WorkLeaseSettings(duration: .milliseconds(400))
        let a = RunItemClaims(db: db, lease: WorkLease(settings, owner: "A"))
        let b = RunItemClaims(db: db, lease: WorkLease(settings, owner: "B"))
        let runID = "run_leases"
        try await db.write { c in
            try c.run("INSERT INTO eval_runs (id, project_id, experiment_id, dataset_id, name, status, config, total, created_unix_ms) VALUES (?, 'lease-p', 'e', 'd', 'n', 'running', '{}', 5, 1)", [.text(runID)])
            for i in 0..<5 { try c.run("INSERT INTO eval_run_items (run_id, item_id, seq, state) VALUES (?, ?, ?, 'pending')", [.text(runID), .text("item\(i)"), .integer(Int64(i))]) }
        }
        func row(_ item: String) async throws -> (state: String, owner: String?, claims: Int64, error: String?) {
            try await db.read { c in
                let r = try c.query("SELECT state, owner, claims, error FROM eval_run_items WHERE run_id = ? AND item_id = ?", [.text(runID), .text(item)]).first
                return (r?[0].string ?? "", r?[1].string, r?[2].int64 ?? -1, r?[3].string)
            }
        }
        func done(_ w: RunItemClaims, _ item: String, claim: Int64) async throws -> Int {
            let owner = w.lease.owner
            return try await db.write { c in
                try RunItemClaims.markDone(c, runID: runID, itemID: item, owner: owner, claim: claim, output: "o", latencyMs: nil, error: nil, results: "[]", finishedMs: 1)
            }
        }
        let first = try await a.claim(runID: runID, limit: 3, maxClaims: 2, paid: true)
        #expect(first.items.map(\.item.id) == ["item0", "item1", "item2"] && first.items.allSatisfy { $0.claim == 1 } && !first.isolated)
        let second = try await b.claim(runID: runID, limit: 10, maxClaims: 2, paid: true)
        #expect(second.items.map(\.item.id) == ["item3", "item4"], "B skips A's live claims")
        #expect(try await b.claim(runID: runID, limit: 10, maxClaims: 2, paid: true).items.isEmpty)
        #expect(try await a.extend() == 3, "each heartbeat extends its own claims only")
        #expect(try await b.extend() == 2)
        #expect(try await row("item0").owner == "A")
        #expect(try await row("item3").owner == "B")
        #expect(try await a.claimableRuns().isEmpty, "every item is held under a live lease")

        // A's leases run out (A stopped): B claims A's items again, one suspect at a time.
        try await Task.sleep(for: .milliseconds(600))
        #expect(try await b.claimableRuns().map(\.runID) == [runID])
        let again = try await b.claim(runID: runID, limit: 10, maxClaims: 2, paid: true)
        #expect(again.isolated && again.items.map(\.item.id) == ["item0"] && again.items.first?.claim == 2)
        #expect(try await done(a, "item0", claim: 1) == 0, "A's late result is not recorded: B holds the item")
        #expect(try await done(b, "item0", claim: 2) == 1)
        #expect(try await done(b, "item0", claim: 2) == 0, "recorded once")
        #expect(try await row("item0").state == "done")

        // A paid item claimed twice without a result fails at its third claim, naming the rule.
        try await db.write { c in try c.run("UPDATE eval_run_items SET claims = 2, lease_until_ms = 0 WHERE run_id = ? AND item_id = 'item1'", [.text(runID)]) }
        let third = try await a.claim(runID: runID, limit: 10, maxClaims: 2, paid: true)
        #expect(third.failed == 1)
        let failed = try await row("item1")
        #expect(failed.state == "done" && failed.claims == 2 && failed.error?.contains("paid at most twice") == true, "\(failed)")
        #expect(try await db.read { c in try c.scalar("SELECT errors FROM eval_runs WHERE id = ?", [.text(runID)])?.int64 } == 1)
        // A graceful stop gives back only the stopping worker's claims, uncounted.
        let held = try await row(third.items.first?.item.id ?? "")
        #expect(held.owner == "A")
        try await b.release(runID: runID)
        #expect(try await row(third.items.first?.item.id ?? "").owner == "A", "B's release leaves A's claim alone")
        try await a.release(runID: runID)
        let released = try await row(third.items.first?.item.id ?? "")
        #expect(released.state == "pending" && released.owner == nil && released.claims == held.claims - 1)

        // The online queue: the same rules for its rows.
        let qa = OnlineQueue(db: db, perProjectLimit: 100, maxClaims: 2, lease: WorkLease(settings, owner: "A"))
        let qb = OnlineQueue(db: db, perProjectLimit: 100, maxClaims: 2, lease: WorkLease(settings, owner: "B"))
        let refs = (1...3).map { OnlineQueue.Ref(traceID: "t\($0)", spanID: "s\($0)", startUnixNanos: 1) }
        #expect(try await qa.enqueue(projectID: "lease-q", refs: refs).queued == 3)
        let qc = try #require(try await qa.claim(after: nil, limit: 10).claim)
        #expect(qc.rows.count == 3 && !qc.suspect)
        #expect(try await qb.claim(after: nil, limit: 10).claim == nil, "B skips A's live claims")
        #expect(try await qb.extend() == 0)
        #expect(try await qa.extend() == 3)
        try await Task.sleep(for: .milliseconds(600))
        let taken = try #require(try await qb.claim(after: nil, limit: 10).claim)
        #expect(taken.suspect && taken.rows.count == 1, "a row whose lease ran out is claimed again, alone")
        #expect(try await qa.complete(projectID: "lease-q", ids: taken.rows.map(\.id), evaluated: 1, missing: 0) == 0, "A no longer holds it")
        #expect(try await qb.complete(projectID: "lease-q", ids: taken.rows.map(\.id), evaluated: 1, missing: 0, callsRepeated: 1) == 1)
        let stats = try await qb.stats(projectID: "lease-q")
        #expect(stats.evaluated == 1 && stats.queued == 2 && stats.judgeCallsRepeated == 1, "\(stats)")
    }
}
