import EvalForgeModel
import EvalForgeOTLP
import Foundation
import Testing
import TestProcesses

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `evalforge backend --clickhouse-cluster` as a process: refused configurations, and two backends on
/// different nodes of a real 2 × 2 ClickHouse 18.16 cluster (EVALFORGE_TEST_CLICKHOUSE_CLUSTER_URLS,
/// set by scripts/test when scripts/cluster storage-up works) starting at once on a fresh database,
/// one ingesting over OTLP, the other answering the trace.
@Suite("Backend in ClickHouse cluster mode", .serialized)
struct ClusterBackendTests {
    static var clusterURLs: [String] {
        (ProcessInfo.processInfo.environment["EVALFORGE_TEST_CLICKHOUSE_CLUSTER_URLS"] ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    static func start(_ args: [String], dir: String) throws -> (ChildProcess, Pipe) {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        p.arguments = ["backend", "--operator-port", "0", "--data-dir", dir, "--log-level", "error"] + args
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "EVALFORGE_CLICKHOUSE_URL")
        env.removeValue(forKey: "EVALFORGE_CLICKHOUSE_CLUSTER")
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return (p, err)
    }

    @Test("a cluster without a ClickHouse URL, or a name that is not an identifier, stops the start naming the problem", .enabled(if: TestProcesses.evalforgeMissing == nil, "needs the evalforge executable"))
    func refused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-cluster-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = "\(TestProcesses.freeLoopbackPort())"
        for (args, message) in [
            (["--port", port, "--clickhouse-cluster", "evalforge"], "needs --clickhouse-url"),
            (["--port", port, "--clickhouse-url", "http://127.0.0.1:9", "--clickhouse-cluster", "two words"], "'two words': expected the cluster's name"),
            (["--port", port, "--clickhouse-url", "http://127.0.0.1:9", "--clickhouse-cluster", "x`; DROP DATABASE evalforge"], "expected the cluster's name"),
            (["--port", port, "--clickhouse-url", "http://127.0.0.1:9", "--clickhouse-mutation-cluster", "evalforge_mutations"], "needs --clickhouse-cluster"),
            (["--port", port, "--clickhouse-url", "http://127.0.0.1:9", "--clickhouse-cluster", "evalforge", "--clickhouse-mutation-cluster", "a b"], "'a b': expected a cluster's name"),
        ] {
            let (p, err) = try Self.start(args, dir: dir)
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus != 0)
            #expect(text.contains(message), "\(args): \(text)")
        }
    }

    @Test("two backends on different nodes start at once on a fresh database; a trace ingested through one is read through the other",
          .enabled(if: TestProcesses.evalforgeMissing == nil && clusterURLs.count >= 2, "EVALFORGE_TEST_CLICKHOUSE_CLUSTER_URLS not set (scripts/test sets it when scripts/cluster storage-up works)"))
    func twoBackends() async throws {
        let urls = Self.clusterURLs
        let db = "evalforge_cluster_backend_\(UInt32.random(in: 0...UInt32.max))"
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-cluster-backends-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var backends: [ChildProcess] = []
        defer {
            for b in backends where b.isRunning { kill(b.processIdentifier, SIGKILL); b.waitUntilExit() }
        }
        var ports: [Int] = []
        for (i, url) in [urls[0], urls[urls.count - 1]].enumerated() {
            let port = TestProcesses.freeLoopbackPort()
            let (p, _) = try Self.start(["--port", "\(port)", "--api-key", TestBackend.apiKey, "--clickhouse-url", url, "--clickhouse-database", db, "--clickhouse-cluster", "evalforge",
                                         "--clickhouse-mutation-cluster", "evalforge_mutations"], dir: root + "/\(i)")
            backends.append(p)
            ports.append(port)
        }
        for port in ports { try #require(await TestProcesses.waitHealthy(port, within: .seconds(60)), "backend on \(port) did not start") }

        let trace = OTLPFixtures.traceID()
        let body = try OTLPFixtures.request((1...5).map { OTLPFixtures.legacySpan(trace: trace, id: UInt64($0)) }).serializedData()
        var post = URLRequest(url: URL(string: "http://127.0.0.1:\(ports[0])/v1/traces")!)
        post.httpMethod = "POST"
        post.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
        post.setValue("Bearer \(TestBackend.apiKey)", forHTTPHeaderField: "Authorization")
        post.httpBody = body
        let (_, posted) = try await URLSession.shared.data(for: post)
        #expect((posted as? HTTPURLResponse)?.statusCode == 200)

        let id = String(format: "%016llx%016llx", trace.high, trace.low)
        var get = URLRequest(url: URL(string: "http://127.0.0.1:\(ports[1])/api/traces/\(id)")!)
        get.setValue("Bearer \(TestBackend.apiKey)", forHTTPHeaderField: "Authorization")
        let (data, got) = try await URLSession.shared.data(for: get)
        #expect((got as? HTTPURLResponse)?.statusCode == 200, "\(String(decoding: data, as: UTF8.self))")
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let summary = json?["trace"] as? [String: Any]
        #expect((summary?["span_count"] as? NSNumber)?.intValue == 5, "\(json ?? [:])")

        for b in backends { kill(b.processIdentifier, SIGTERM); b.waitUntilExit() }
        var drop = URLRequest(url: URL(string: urls[0])!)
        drop.httpMethod = "POST"
        drop.httpBody = Data("DROP DATABASE IF EXISTS \(db) ON CLUSTER evalforge".utf8)
        _ = try? await URLSession.shared.data(for: drop)
    }
}
