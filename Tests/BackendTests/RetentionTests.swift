@testable import Backend
import EvalForgeModel
@testable import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TestProcesses
import Testing

/// Per-project retention (issue 15 §8): the admin API, the settings page, the CLI, the server
/// default, and the retention job deleting through the real stores.
@Suite("Retention: settings and the retention job")
struct RetentionTests {
    static let day: Int64 = 86_400

    static func configuration(store: TestStore = .sqlite, defaultDays: Int = 0) -> BackendConfiguration {
        var c = AccessControlTests.configuration(store: store)
        c.defaultRetentionDays = defaultDays
        return c
    }

    @Test("admin API: set, read and list retention; bad values get a 400 naming the field; only the project's admins")
    func adminAPI() async throws {
        let (app, services) = try await BackendApp.build(configuration: Self.configuration(defaultDays: 90), logger: TestBackend.logger, closesStoreAtShutdown: false)
        let reader = try await services.projects.createKey(projectID: "default", name: "reader", scopes: [.read])
        _ = try await services.projects.createProject(name: "other", actor: "test")
        let otherAdmin = try await services.projects.createKey(projectID: "other", name: "admin", scopes: [.admin])
        try await app.test(.router) { client in
            let admin = AccessControlTests.admin
            func put(_ body: String, headers: HTTPFields = AccessControlTests.admin, project: String = "default") async throws -> (HTTPResponse.Status, [String: Any], String) {
                let r = try await client.execute(uri: "/api/admin/projects/\(project)/retention", method: .put, headers: headers, body: ByteBuffer(string: body))
                return (r.status, AccessControlTests.json(r.body), String(buffer: r.body))
            }
            // The server default until the project has its own.
            let initial = try await client.execute(uri: "/api/admin/projects/default/retention", method: .get, headers: admin)
            #expect(initial.status == .ok)
            #expect(AccessControlTests.json(initial.body)["retention_days"] as? Int == 90)
            #expect(AccessControlTests.json(initial.body)["source"] as? String == "default")

            let set = try await put(#"{"retention_days": 30}"#)
            #expect(set.0 == .ok && set.1["retention_days"] as? Int == 30 && set.1["source"] as? String == "project", "\(set.2)")
            #expect(try await services.projects.project(id: "default")?.retentionDays == 30)
            let list = AccessControlTests.json(try await client.execute(uri: "/api/admin/projects", method: .get, headers: admin).body)["projects"] as? [[String: Any]] ?? []
            #expect(list.first { $0["id"] as? String == "default" }?["retention_days"] as? Int == 30)

            // Refused, naming the problem; nothing changes.
            for (body, want) in [(#"{"retention_days": -1}"#, "retention_days"), (#"{"retention_days": 100000}"#, "retention_days"),
                                 (#"{"retention_days": 1e300}"#, "retention_days"), (#"{"retention_days": "ten"}"#, "retention_days"),
                                 (#"{"retention_days": 2.5}"#, "retention_days"), (#"{}"#, "retention_days"), ("{nope", "JSON")] {
                let r = try await put(body)
                #expect(r.0 == .badRequest && r.2.contains(want), "\(body) → \(r.0) \(r.2)")
            }
            #expect(try await services.projects.project(id: "default")?.retentionDays == 30)
            #expect(try await put(#"{"retention_days": 7}"#, project: "ghost").0 == .notFound)

            // Forever (0) and back to the server default (null).
            let forever = try await put(#"{"retention_days": 0}"#)
            #expect(forever.0 == .ok && forever.1["retention_days"] as? Int == 0 && forever.1["source"] as? String == "project")
            let inherit = try await put(#"{"retention_days": null}"#)
            #expect(inherit.0 == .ok && inherit.1["retention_days"] as? Int == 90 && inherit.1["source"] as? String == "default")

            // A key needs the admin scope of that very project.
            #expect(try await put(#"{"retention_days": 1}"#, headers: AccessControlTests.bearer(reader.key)).0 == .forbidden)
            #expect(try await put(#"{"retention_days": 1}"#, headers: AccessControlTests.bearer(otherAdmin.key)).0 == .forbidden)
            let own = try await put(#"{"retention_days": 14}"#, headers: AccessControlTests.bearer(otherAdmin.key), project: "other")
            #expect(own.0 == .ok && own.1["retention_days"] as? Int == 14)

            let audit = try await services.projects.auditLog(projectID: "default", limit: 10).filter { $0.action == "project.retention" }.map(\.detail)
            #expect(audit.contains("retention=default -> 30d") && audit.contains("retention=30d -> forever") && audit.contains("retention=forever -> default"), "\(audit)")
        }
        await TestStore.tearDown(services)
    }

    @Test("settings page: shows and sets the retention; a bad value is refused with the reason")
    func settingsPage() async throws {
        let (app, services) = try await BackendApp.build(configuration: Self.configuration(defaultDays: 45), logger: TestBackend.logger, closesStoreAtShutdown: false)
        try await app.test(.router) { client in
            var h = AccessControlTests.bearer(TestBackend.apiKey, json: false)
            let page = String(buffer: try await client.execute(uri: "/settings", method: .get, headers: h).body)
            #expect(page.contains("id=\"retention\"") && page.contains("Keeps 45 days (the server default"), "\(page)")
            h[.contentType] = "application/x-www-form-urlencoded"
            let bad = try await client.execute(uri: "/settings/retention", method: .post, headers: h, body: ByteBuffer(string: "retention_days=-5"))
            #expect(bad.status == .badRequest && String(buffer: bad.body).contains("retention_days"))
            let absurd = try await client.execute(uri: "/settings/retention", method: .post, headers: h, body: ByteBuffer(string: "retention_days=99999999999999999999999"))
            #expect(absurd.status == .badRequest)
            var crossSite = h
            crossSite[.origin] = "http://evil.example"
            #expect(try await client.execute(uri: "/settings/retention", method: .post, headers: crossSite, body: ByteBuffer(string: "retention_days=1")).status == .forbidden)
            #expect(try await services.projects.project(id: "default")?.followsDefaultRetention == true)
            let ok = try await client.execute(uri: "/settings/retention", method: .post, headers: h, body: ByteBuffer(string: "retention_days=7"))
            #expect(ok.status == .seeOther)
            #expect(try await services.projects.project(id: "default")?.retentionDays == 7)
            let shown = String(buffer: try await client.execute(uri: "/settings", method: .get, headers: AccessControlTests.bearer(TestBackend.apiKey, json: false)).body)
            #expect(shown.contains("Keeps 7 days.") && shown.contains("value=\"7\""))
            // Empty: back to the server default.
            #expect(try await client.execute(uri: "/settings/retention", method: .post, headers: h, body: ByteBuffer(string: "retention_days=")).status == .seeOther)
            #expect(try await services.projects.project(id: "default")?.followsDefaultRetention == true)
        }
        await TestStore.tearDown(services)
    }

    @Test("cutoffs: whole UTC days, the project's days or the server default, forever left out")
    func cutoffs() {
        let now = Date(timeIntervalSince1970: TimeInterval(20_000 * Self.day + 12 * 3600))
        let projects = [Project(id: "own", name: "own", retentionDays: 7), Project(id: "inherits", name: "inherits"),
                        Project(id: "forever", name: "forever", retentionDays: Project.retentionForever), Project(id: "garbage", name: "g", retentionDays: -42)]
        let c = RetentionService.cutoffs(projects, defaultDays: 30, now: now)
        #expect(c == ["own": (20_000 - 7) * Self.day * 1_000_000_000, "inherits": (20_000 - 30) * Self.day * 1_000_000_000, "garbage": (20_000 - 30) * Self.day * 1_000_000_000])
        #expect(RetentionService.cutoffs(projects, defaultDays: 0, now: now) == ["own": (20_000 - 7) * Self.day * 1_000_000_000])
        // A clock before 1970 plus the longest retention: nothing, no trap.
        #expect(RetentionService.cutoffs([Project(id: "x", name: "x", retentionDays: 3650)], defaultDays: 0, now: Date(timeIntervalSince1970: -1e300)).isEmpty)
    }

    /// One span with its rollup, `daysAgo` days before `now` (at noon UTC).
    static func batch(project: String, trace: Int, daysAgo: Int64, now: Int64) -> StoreBatch {
        let start = ((now / Self.day - daysAgo) * Self.day + 12 * 3600) * 1_000_000_000
        let span = SpanRow(projectID: project, traceID: String(format: "%032x", trace), spanID: String(format: "%016x", trace), startUnixNanos: start, durationNanos: 1_000_000,
                           service: "svc", name: "chat", kind: .client, operation: "chat", provider: "openai", model: "gpt-4o", inputTokens: 10, outputTokens: 2, costUSD: 0.001)
        var v = RollupValue()
        v.requests = 1
        v.inputTokens = 10
        v.outputTokens = 2
        v.costUSD = 0.001
        let key = RollupKey(minuteUnix: start / 1_000_000_000 / 60 * 60, project: project, service: "svc", provider: "openai", model: "gpt-4o", isError: false)
        return StoreBatch(projectID: project, batchID: "b\(trace)", spans: [span], rollups: [RollupRow(key: key, value: v)])
    }

    @Test("the retention job: a project's setting, the server default and 'forever', through the real store", arguments: TestStore.available)
    func retentionJob(_ store: TestStore) async throws {
        let (_, services) = try await BackendApp.build(configuration: Self.configuration(store: store, defaultDays: 30), logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        let now = Int64(Date().timeIntervalSince1970)
        _ = try await services.projects.createProject(name: "short", actor: "test")
        _ = try await services.projects.createProject(name: "forever", actor: "test")
        _ = try await services.projects.setRetention(id: "short", days: 7, actor: "test")
        _ = try await services.projects.setRetention(id: "forever", days: 0, actor: "test")
        // 60, 10 and 1 day(s) ago in each project; "default" follows the server's 30 days.
        var trace = 0
        for project in ["default", "short", "forever"] {
            for ago: Int64 in [60, 10, 1] {
                trace += 1
                #expect(try await services.store.insert(Self.batch(project: project, trace: trace, daysAgo: ago, now: now)) == .stored)
            }
        }
        func requests(_ project: String, fromDaysAgo: Int64, toDaysAgo: Int64) async throws -> UInt64 {
            let from = (now / Self.day - fromDaysAgo) * Self.day, to = (now / Self.day - toDaysAgo + 1) * Self.day
            return try await services.store.metrics(MetricsQuery(projectID: project, fromUnix: from, toUnix: to, intervalSeconds: Self.day)).reduce(0) { $0 + $1.value.requests }
        }
        let yesterday = try await requests("default", fromDaysAgo: 1, toDaysAgo: 1)
        #expect(yesterday == 1)
        let job = RetentionService(store: services.store, projects: services.projects, interval: .seconds(3600), defaultDays: services.configuration.defaultRetentionDays, logger: TestBackend.logger)
        await job.runOnce()
        func spans(_ project: String) async throws -> Int { try await services.store.countSpans(projectID: project, fromUnixNanos: nil, toUnixNanos: nil) }
        #expect(try await spans("default") == 2, "30 days (server default): the 60-day-old span went")
        #expect(try await spans("short") == 1, "7 days: only yesterday's span is left")
        #expect(try await spans("forever") == 3, "forever keeps everything")
        #expect(try await requests("default", fromDaysAgo: 70, toDaysAgo: 31) == 0)
        #expect(try await requests("default", fromDaysAgo: 1, toDaysAgo: 1) == yesterday, "kept days' rollups unchanged")
        #expect(try await requests("short", fromDaysAgo: 70, toDaysAgo: 2) == 0)
        #expect(try await requests("forever", fromDaysAgo: 70, toDaysAgo: 1) == 3)
        await TestStore.tearDown(services)
    }

    @Test("CLI: evalforge admin projects set-retention, and the backend's --retention-days default", .timeLimit(.minutes(3)))
    func cli() async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-retention-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = TestProcesses.freeLoopbackPort()
        let token = "efadmin_retention_test_token_0123456789"
        let backend = ChildProcess()
        backend.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        backend.arguments = ["backend", "--port", "\(port)", "--operator-port", "0", "--data-dir", dir, "--log-level", "error", "--retention-days", "60"]
        var env = ProcessInfo.processInfo.environment
        env["EVALFORGE_CLICKHOUSE_URL"] = nil
        env["EVALFORGE_API_KEY"] = nil
        env["EVALFORGE_ADMIN_TOKEN"] = token
        backend.environment = env
        try backend.run()
        defer { if backend.isRunning { backend.terminate(); backend.waitUntilExit() } }
        #expect(await TestProcesses.waitHealthy(port))

        let list = try await AdminCLITests.evalforge(["admin", "projects", "list"], token: token, port: port)
        #expect(list.stdout.contains("60d"), "the server default shows: \(list.stdout)")
        let set = try await AdminCLITests.evalforge(["admin", "projects", "set-retention", "default", "14"], token: token, port: port)
        #expect(set.status == 0 && set.stdout.contains("keeps 14d"), "\(set.stdout) \(set.stderr)")
        #expect(try await AdminCLITests.evalforge(["admin", "projects", "list"], token: token, port: port).stdout.contains("14d"))
        let forever = try await AdminCLITests.evalforge(["admin", "projects", "set-retention", "default", "forever"], token: token, port: port)
        #expect(forever.status == 0 && forever.stdout.contains("forever"), "\(forever.stdout) \(forever.stderr)")
        let inherit = try await AdminCLITests.evalforge(["admin", "projects", "set-retention", "default", "default"], token: token, port: port)
        #expect(inherit.status == 0 && inherit.stdout.contains("60d") && inherit.stdout.contains("default"), "\(inherit.stdout) \(inherit.stderr)")
        for bad in ["100000", "3651", "soon"] {
            let r = try await AdminCLITests.evalforge(["admin", "projects", "set-retention", "default", bad], token: token, port: port)
            #expect(r.status != 0 && r.stderr.contains("DAYS"), "\(bad): \(r.stderr)")
        }
        let ghost = try await AdminCLITests.evalforge(["admin", "projects", "set-retention", "ghost", "3"], token: token, port: port)
        #expect(ghost.status != 0 && ghost.stderr.contains("ghost"))

        // A bad server default is refused at start, naming the flag.
        let refused = ChildProcess()
        refused.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        refused.arguments = ["backend", "--port", "\(TestProcesses.freeLoopbackPort())", "--operator-port", "0", "--data-dir", dir + "/2", "--retention-days", "5000"]
        refused.environment = env
        let err = Pipe()
        refused.standardError = err
        refused.standardOutput = Pipe()
        try refused.run()
        let text = await Task.detached { String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }.value
        refused.waitUntilExit()
        #expect(refused.terminationStatus != 0 && text.contains("--retention-days"), "\(text)")
    }
}
