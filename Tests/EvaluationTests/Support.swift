import AsyncHTTPClient
import Backend
import EvalForgeStore
import Foundation
import NIOCore
import Hummingbird
import HummingbirdTesting
import Logging
import MockLLM
import ServiceLifecycle
import Synchronization
import Testing
@testable import Evaluation

let testLogger: Logger = {
    var l = Logger(label: "evaluation-tests")
    l.logLevel = .warning
    return l
}()

func tempDir() -> String {
    let d = NSTemporaryDirectory() + "evalforge-eval-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

extension OutboundPolicy {
    /// The tests' mock LLMs, receivers and endpoints listen on loopback: the operator allow-list
    /// (`--outbound-allow`) lets them through, as an on-premises deployment's would.
    static let testLoopbackList = "127.0.0.0/8,::1,localhost"
    static let testLoopback: OutboundPolicy = (try? OutboundPolicy(allowList: testLoopbackList)) ?? .publicOnly
}

/// An EvaluationService over SQLite files in `dir` (or the given metadata database, e.g. Postgres),
/// with its background services running.
final class Runner: Sendable {
    let store: SQLiteStore
    let metadata: any MetadataDatabase
    let service: EvaluationService
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(dir: String, settings: EvaluationSettings = .init(webhooks: .init(retrySchedule: [.milliseconds(50), .milliseconds(100), .milliseconds(200)], timeout: .milliseconds(400)), outbound: .testLoopback),
         metadata: (any MetadataDatabase)? = nil) async throws {
        store = try SQLiteStore(path: dir + "/telemetry.sqlite", logger: testLogger)
        try await store.migrate()
        self.metadata = try metadata ?? SQLiteDatabase(path: dir + "/meta.sqlite")
        service = try await EvaluationService(store: store, metadata: self.metadata, logger: testLogger, settings: settings)
        let group = ServiceGroup(configuration: .init(services: service.services.map { .init(service: $0) }, logger: testLogger))
        self.group = group
        task = Task { try await group.run() }
    }

    /// Stops the background services (as a backend shutdown does) and closes the files.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
        await store.shutdown()
        await metadata.shutdown()
    }

    func waitForRun(_ project: String, _ id: String, timeout: Duration = .seconds(60), until: (Run) -> Bool = { $0.status == .completed || $0.status == .failed || $0.status == .cancelled }) async throws -> Run {
        let deadline = ContinuousClock.now + timeout
        while true {
            let r = try await service.run(projectID: project, id: id, withAggregates: false)
            if until(r) { return r }
            if ContinuousClock.now > deadline { Issue.record("run \(id) still \(r.status) with \(r.done)/\(r.total) after \(timeout)"); return r }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}

/// Runs the real mock LLM on a free loopback port.
func withMockLLM<T: Sendable>(latency: LatencyModel = .none, faults: MockLLMConfiguration.FaultRates = .init(), _ body: @Sendable (Int) async throws -> T) async throws -> T {
    var c = MockLLMConfiguration.default
    c.port = 0
    c.latency = latency
    c.faults = faults
    c.retryAfterSeconds = 0
    let app = buildMockLLMApplication(configuration: c, logger: testLogger)
    return try await app.test(.live) { client in
        try await body(try #require(client.port))
    }
}

/// A webhook receiver that verifies signatures; `behaviour(attempt)` decides each answer.
final class Receiver: Sendable {
    enum Answer: Sendable { case ok, fail, hang }
    struct State {
        var attempts = 0
        var verified = 0
        var rejected = 0
        var events: [String] = []
        var deliveries: [String] = []
    }
    let state = Mutex(State())
    let secret: String
    let behaviour: @Sendable (Int) -> Answer

    init(secret: String, behaviour: @escaping @Sendable (Int) -> Answer = { _ in .ok }) {
        self.secret = secret
        self.behaviour = behaviour
    }

    var snapshot: State { state.withLock { $0 } }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/hook") { req, _ -> Response in
            let body = String(buffer: try await req.body.collect(upTo: 1 << 20))
            let sig = req.headers[.init("X-EvalForge-Signature")!] ?? ""
            let ok = WebhookSignature.verify(header: sig, body: body, secret: self.secret)
            let event = JSON.parse(body)?["event"]?.stringValue ?? "?"
            let n = self.state.withLock { s -> Int in
                s.attempts += 1
                if ok { s.verified += 1 } else { s.rejected += 1 }
                return s.attempts
            }
            guard ok else { return Response(status: .unauthorized) }
            switch self.behaviour(n) {
            case .ok:
                self.state.withLock { $0.events.append(event); $0.deliveries.append(JSON.parse(body)?["id"]?.stringValue ?? "") }
                return Response(status: .ok)
            case .fail: return Response(status: .internalServerError)
            case .hang:
                try? await Task.sleep(for: .seconds(3))
                return Response(status: .ok)
            }
        }
        return router
    }

    func run<T: Sendable>(_ body: @Sendable (Int) async throws -> T) async throws -> T {
        let app = Application(router: router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger)
        return try await app.test(.live) { client in try await body(try #require(client.port)) }
    }
}

func items(_ n: Int, prefix: String = "q") -> [DatasetItem] {
    (0..<n).map { i in
        DatasetItem(input: .string("\(prefix) question \(i): what is \(i) + \(i)?"), expected: "\(2 * i)", output: "The answer is \(2 * i).", context: "Arithmetic: \(i) + \(i) = \(2 * i).")
    }
}

/// A real backend (`BackendApp.build`: routes, evaluation services, SQLite) listening on a free
/// loopback port, called over real HTTP with AsyncHTTPClient.
enum LiveBackend {
    static let apiKey = "ef_eval_test_key_0123456789"

    static func run<T: Sendable>(allowList: String = OutboundPolicy.testLoopbackList, metadata: TestMetadata = .sqlite, _ body: @Sendable (Int, BackendServices) async throws -> T) async throws -> T {
        let dir = tempDir()
        var configuration = BackendConfiguration(host: "127.0.0.1", port: 0, dataDirectory: dir, bootstrapAPIKey: apiKey, outboundAllowList: allowList)
        if metadata == .postgres { configuration.postgres = try await TestMetadata.freshPostgres(localDirectory: dir) }
        let (app, services) = try await BackendApp.build(configuration: configuration, logger: testLogger, closesStoreAtShutdown: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result: Result<T, any Error>
        do {
            result = .success(try await app.test(.live) { client in try await body(try #require(client.port), services) })
        } catch {
            result = .failure(error)
        }
        await services.store.shutdown()
        if metadata == .postgres { await TestMetadata.close(services.metadata) }
        return try result.get()
    }
}

/// One HTTP answer: status, body text, headers.
struct HTTPAnswer: Sendable {
    var status: Int
    var body: String
    var retryAfter: String?
    var json: JSON? { JSON.parse(body) }
    var error: String { json?["error"]?.stringValue ?? "" }
}

/// A request to the backend on `port` with the test key.
func call(_ port: Int, _ method: String, _ path: String, _ body: String? = nil, timeout: Duration = .seconds(30)) async throws -> HTTPAnswer {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
    request.method = .init(rawValue: method)
    request.headers.add(name: "Authorization", value: "Bearer \(LiveBackend.apiKey)")
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
    let buffer = try await response.body.collect(upTo: 64 << 20)
    return HTTPAnswer(status: Int(response.status.code), body: String(buffer: buffer), retryAfter: response.headers.first(name: "retry-after"))
}

/// A value shared by concurrent test tasks.
final class Shared<T: Sendable>: Sendable {
    private let m: Mutex<T>
    init(_ value: T) { m = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout T) -> R) -> R { m.withLock { body(&$0) } }
}
