import Foundation
import Testing

@testable import Backend

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestProcesses

/// Issue 16 §3, the production shape with real processes: a backend with `--role ingest,query` and
/// one with `--role worker` on one data directory (the shared metadata file and telemetry store).
/// Spans matching an online rule are queued by the ingest backend and evaluated only once a worker
/// runs; the worker serves no ingest.
@Suite("Backend roles as separate processes", .serialized)
struct BackendRoleProcessTests {
    static func start(role: String, port: Int, dir: String) throws -> RunningBackend {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        p.arguments = ["backend", "--role", role, "--port", "\(port)", "--operator-port", "0", "--data-dir", dir, "--api-key", TestBackend.apiKey, "--log-level", "error"]
        var environment = ProcessInfo.processInfo.environment
        for name in ["EVALFORGE_CLICKHOUSE_URL", "EVALFORGE_POSTGRES_URL", "EVALFORGE_ROLE"] { environment[name] = nil }
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return RunningBackend(p)
    }

    static func call(_ port: Int, _ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.httpMethod = method
        request.setValue("Bearer \(TestBackend.apiKey)", forHTTPHeaderField: "Authorization")
        request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        request.httpBody = body
        request.timeoutInterval = 30
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? -1
        return (status, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    @Test("spans queued by an ingest,query backend are evaluated only by a worker process; the worker refuses ingest naming the role",
          .timeLimit(.minutes(5)), .enabled(if: TestProcesses.evalforgeMissing == nil, "needs the evalforge executable (swift build)"))
    func ingestQueryThenWorker() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-roles-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (front, back) = (TestProcesses.freeLoopbackPort(), TestProcesses.freeLoopbackPort())
        let ingestQuery = try Self.start(role: "ingest,query", port: front, dir: dir)
        defer { ingestQuery.kill(SIGKILL) }
        try #require(await TestProcesses.waitHealthy(front), "the ingest,query backend did not start")

        #expect(try await Self.call(front, "POST", "/api/evaluators", body: Data(#"{"name": "len", "type": "length", "max": 1000}"#.utf8)).status == 201)
        #expect(try await Self.call(front, "POST", "/api/online-rules", body: Data(#"{"name": "all", "evaluators": ["len"], "samplingRate": 1}"#.utf8)).status == 201)
        let t = OTLPFixtures.traceID()
        let otlp = try OTLPFixtures.request((1...3).map { OTLPFixtures.legacySpan(trace: t, id: UInt64($0)) }).serializedData()
        #expect(try await Self.call(front, "POST", "/v1/traces", body: otlp, contentType: "application/x-protobuf").status == 200)
        func queue() async throws -> (enqueued: Int, evaluated: Int) {
            let j = try await Self.call(front, "GET", "/api/online-queue").json
            return ((j["enqueued"] as? Int) ?? -1, (j["evaluated"] as? Int) ?? -1)
        }
        #expect(try await queue().enqueued == 3, "ingest queued the spans")
        try await Task.sleep(for: .seconds(3))
        #expect(try await queue().evaluated == 0, "no worker, no evaluation")

        let worker = try Self.start(role: "worker", port: back, dir: dir)
        defer { worker.kill(SIGKILL) }
        try #require(await TestProcesses.waitHealthy(back), "the worker did not start")
        let refused = try await Self.call(back, "POST", "/v1/traces", body: otlp, contentType: "application/x-protobuf")
        #expect(refused.status == 404 && refused.json["served_by_roles"] as? [String] == ["ingest"] && refused.json["roles"] as? [String] == ["worker"], "\(refused)")
        let deadline = ContinuousClock.now + .seconds(60)
        var seen = try await queue()
        while seen.evaluated < 3, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            seen = try await queue()
        }
        #expect(seen.evaluated == 3, "the worker evaluated the queued spans: \(seen)")
        #expect(exitsCleanly(worker), "the worker stops on SIGTERM")
    }

    func exitsCleanly(_ worker: RunningBackend) -> Bool {
        let end = worker.kill(SIGTERM)
        return end.reason == .exit && end.status == 0
    }
}
