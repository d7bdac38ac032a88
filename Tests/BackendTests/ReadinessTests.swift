@testable import Backend
import EvalForgeCore
@testable import EvalForgeStore
import Foundation
import TestProcesses
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Issue 16 §4b: `/healthz` is liveness, `/readyz` readiness (the stores can take writes), both with
/// the version and the schema versions.
@Suite("Backend readiness and versions")
struct ReadinessTests {
    static func json(_ body: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])
    }

    @Test("/healthz and /readyz carry the version and the schema versions; /readyz is 200 on writable stores", arguments: TestStore.available)
    func readyWithVersions(_ store: TestStore) async throws {
        let config = TestBackend.configuration(store: store)
        let (app, services) = try await BackendApp.build(configuration: config, logger: TestBackend.logger, closesStoreAtShutdown: false)
        store.expectIsStore(services.store)
        try await app.test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            let h = try Self.json(health.body)
            #expect(h["status"] as? String == "ok" && h["version"] as? String == EvalForgeVersion.release)
            let schema = try #require(h["schema"] as? [String: Any])
            #expect(schema["telemetry"] as? Int == services.store.schemaVersion && services.store.schemaVersion > 0)
            #expect(schema["metadata"] as? Int == BackendReadiness.metadataSchemaVersion)
            #expect(schema["forward_protocol"] as? Int == EvalForgeVersion.forwardProtocol)

            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .ok, "\(String(buffer: ready.body))")
            let r = try Self.json(ready.body)
            #expect(r["status"] as? String == "ready" && r["version"] as? String == EvalForgeVersion.release)
            // Freshly migrated by this binary: the databases are at this binary's versions.
            let database = try #require(r["database_schema"] as? [String: Any])
            #expect(database["telemetry"] as? Int == services.store.schemaVersion)
            #expect(database["metadata"] as? Int == BackendReadiness.metadataSchemaVersion)
        }
        await TestStore.tearDown(services)
    }

    @Test("the schema versions --version prints are the ones the stores migrate to")
    func schemaVersionsAgree() async throws {
        #expect(StoreSchemaVersions.clickHouse == ClickHouseFlavor(version: "26.9").migrations(database: "x").last?.version)
        #expect(StoreSchemaVersions.clickHouse == ClickHouseFlavor(version: "18.16.1").migrations(database: "x").last?.version)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-schema-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteStore(path: dir + "/t.sqlite", logger: TestBackend.logger)
        try await store.migrate()
        #expect(try await store.checkReady(timeout: .seconds(5)) == StoreSchemaVersions.sqliteTelemetry)
        await store.shutdown()
    }

    // MARK: ClickHouse stopped

    /// A private ClickHouse 18.16 (tests/clickhouse/legacy-server.sh, its own name and port) that
    /// the test stops and starts; never the shared test servers.
    static let serverName = "backend-readiness"
    static let port = 18157
    static var script: String {
        ProcessInfo.processInfo.environment["EVALFORGE_TEST_CLICKHOUSE_CONTROL"].flatMap { $0.isEmpty ? nil : $0 }
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("tests/clickhouse/legacy-server.sh").path
    }
    /// Runs where the ClickHouse 18.16 tests run (the legacy server is installed and wanted).
    static var privateServerPossible: Bool {
        TestStore.clickHouseLegacy.isAvailable
            && (FileManager.default.isExecutableFile(atPath: "/usr/bin/clickhouse-server") || FileManager.default.isExecutableFile(atPath: "/usr/sbin/clickhouse-server"))
    }

    static func control(_ action: String) throws {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script, action, serverName, String(port)]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw StoreError.unavailable("legacy-server.sh \(action) failed with status \(p.terminationStatus)") }
    }

    @Test("ClickHouse stopped: /readyz answers 503 naming it within seconds while /healthz stays 200; started again: ready",
          .enabled(if: privateServerPossible, "needs Debian's clickhouse-server and \(TestStore.legacyVariable) (scripts/test sets it)"),
          .timeLimit(.minutes(3)))
    func clickHouseStopped() async throws {
        try Self.control("clean")
        try Self.control("start")
        defer { try? Self.control("clean") }
        var config = TestBackend.configuration()
        config.clickHouse = ClickHouseConfiguration(url: "http://127.0.0.1:\(Self.port)", database: "evalforge_readiness", batchRows: 1, flushIntervalMilliseconds: 10)
        let (app, services) = try await BackendApp.build(configuration: config, logger: TestBackend.logger, closesStoreAtShutdown: false)
        TestStore.clickHouseLegacy.expectIsStore(services.store)
        try await app.test(.live) { client in
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)

            try Self.control("stop")
            try await Task.sleep(for: BackendReadiness.reuseFor + .milliseconds(100))  // past the cached answer
            let asked = ContinuousClock.now
            let down = try await client.execute(uri: "/readyz", method: .get)
            let took = ContinuousClock.now - asked
            #expect(down.status == .serviceUnavailable, "\(String(buffer: down.body))")
            #expect(took < .seconds(5), "readiness took \(took): it must not wait out the store's retries")
            let d = try Self.json(down.body)
            #expect(d["status"] as? String == "not ready")
            let reason = try #require(d["reason"] as? String)
            #expect(reason.contains("telemetry store") && reason.contains("ClickHouse") && reason.contains("\(Self.port)"), "\(reason)")
            #expect(!reason.contains("metadata"), "the metadata file is fine: \(reason)")
            #expect(d["version"] as? String == EvalForgeVersion.release)
            // Liveness is not readiness.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)

            try Self.control("start")
            let deadline = ContinuousClock.now + .seconds(30)
            var status = HTTPResponse.Status.serviceUnavailable
            while status != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(300))
                status = try await client.execute(uri: "/readyz", method: .get).status
            }
            #expect(status == .ok, "not ready again 30 s after ClickHouse was started")
        }
        await services.store.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDirectory)
    }
}
