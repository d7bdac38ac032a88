import Backend
import EvalForgeCore
import EvalForgeOTLP
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TestProcesses
import Testing

/// The backend costs spans sent straight to its OTLP endpoint from the price file, and the real
/// `evalforge backend` / `evalforge collector` take `--price-file`, refusing a bad one by name.
@Suite("Backend and CLI: the price file")
struct BackendPriceFileTests {
    static let file = """
        {"version": "ops-2", "models": [
          {"model": "house-model-7b", "input": 1, "output": 1},
          {"model": "house-model-7b", "input": 4, "output": 4, "valid_from": "2026-01-01"}
        ]}
        """

    static func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "prices-\(UUID().uuidString).json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("direct OTLP spans are costed from the configured price file at their day's price")
    func backendCostsFromFile() async throws {
        let path = try Self.write(Self.file)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var c = TestBackend.configuration(store: .sqlite)
        c.priceTable = try PriceFile.load(path: path)
        let (app, services) = try await BackendApp.build(configuration: c, logger: TestBackend.logger, closesStoreAtShutdown: false)
        let t = OTLPFixtures.traceID()
        // legacySpan starts on 2026-01-01: the newer price (4 USD per million tokens) applies.
        let body = try OTLPFixtures.request([OTLPFixtures.legacySpan(trace: t, id: 1, model: "house-model-7b", input: 1000, output: 200)]).serializedBytes() as [UInt8]
        try await app.test(.router) { client in
            let r = try await client.execute(uri: "/v1/traces", method: .post, headers: [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/x-protobuf"], body: ByteBuffer(bytes: body))
            #expect(r.status == .ok)
        }
        let spans = try await services.store.trace(projectID: "default", traceID: t.hexString)
        let cost = try #require(spans.first?.costUSD)
        #expect(abs(cost - 1200 * 4 / 1e6) < 1e-12)
        await TestStore.tearDown(services)
    }

    static var binary: String { TestProcesses.evalforge }

    /// Runs `evalforge <arguments>` until it exits or `timeout`; returns the exit status (nil when it
    /// was still running and was stopped) and what it wrote to stderr.
    static func run(_ arguments: [String], timeout: Duration = .seconds(20)) async throws -> (status: Int32?, stderr: String) {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["EVALFORGE_PRICE_FILE"] = nil
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = ContinuousClock.now + timeout
        while p.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let stillRunning = p.isRunning
        if stillRunning {
            p.terminate()
            p.waitUntilExit()
        }
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (stillRunning ? nil : p.terminationStatus, text)
    }

    @Test("evalforge collector and backend refuse a bad --price-file, naming what is wrong, and start with a good one", .timeLimit(.minutes(2)))
    func cliFlag() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the evalforge executable first (or set EVALFORGE_BIN): \(Self.binary)")
        let bad = try Self.write(#"{"version": "x", "models": [{"model": "m", "input": -1, "output": 1}]}"#)
        let good = try Self.write(Self.file)
        let dir = NSTemporaryDirectory() + "evalforge-pricefile-\(UUID().uuidString)"
        defer {
            for f in [bad, good, dir] { try? FileManager.default.removeItem(atPath: f) }
        }
        let collectorArgs = ["collector", "--open", "--operator-port", "0", "--port", "\(TestProcesses.freeLoopbackPort())", "--queue-dir", dir + "/wal", "--backend-url", "http://127.0.0.1:9"]
        let backendArgs = ["backend", "--operator-port", "0", "--port", "\(TestProcesses.freeLoopbackPort())", "--data-dir", dir + "/data", "--log-level", "error"]
        for args in [collectorArgs, backendArgs] {
            let refused = try await Self.run(args + ["--price-file", bad])
            #expect(refused.status != nil && refused.status != 0, "\(args[0])")
            #expect(refused.stderr.contains("models[0].input"), "\(args[0]): \(refused.stderr)")
            let missing = try await Self.run(args + ["--price-file", dir + "/nope.json"])
            #expect(missing.status != nil && missing.status != 0 && missing.stderr.contains("nope.json"), "\(args[0]): \(missing.stderr)")
            // A good file: the process starts and keeps serving until stopped.
            let started = try await Self.run(args + ["--price-file", good], timeout: .seconds(3))
            #expect(started.status == nil, "\(args[0]) exited: \(started.stderr)")
        }
    }
}
