import EvalForgeCore
import EvalForgeOTLP
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
import TestProcesses
#endif

@Suite("Crash recovery of the real `evalforge collector` process")
struct CrashRecoveryTests {

    static func start(port: Int, backend: Int, queue: String) throws -> ChildProcess {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        p.arguments = ["collector", "--open", "--operator-port", "0", "--port", "\(port)", "--backend-url", "http://127.0.0.1:\(backend)", "--queue-dir", queue, "--fsync", "always", "--log-level", "warning"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }


    @Test("kill -9 under load, restart: no acknowledged span lost, none stored twice")
    func killDashNine() async throws {
        #expect(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let backend = BackendStandIn()
        try await backend.buildApplication().test(.live) { backendClient in
            let backendPort = try #require(backendClient.port)
            let port = TestProcesses.freeLoopbackPort()
            let queue = CollectorPipelineTests.tempDir()
            var collector = try Self.start(port: port, backend: backendPort, queue: queue)
            #expect(await TestProcesses.waitHealthy(port))

            let shared = LoadState()
            let client = OTLPClient(url: "http://127.0.0.1:\(port)")
            // Two concurrent senders, each retrying a request until it is acknowledged.
            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            while !shared.stop.load(ordering: .relaxed) {
                                let t = SpanFactory.traceID()
                                let spans = (1...20).map { SpanFactory.span(trace: t, id: UInt64($0)) }
                                let r = SpanFactory.request(spans)
                                while !shared.stop.load(ordering: .relaxed) {
                                    if (try? await client.post(r)) == 200 {
                                        shared.acked.withLock { a in for s in spans { a.insert(Hex.encode(bytes: s.traceID) + Hex.encode(bytes: s.spanID)) } }
                                        break
                                    }
                                    try? await Task.sleep(for: .milliseconds(20))
                                }
                            }
                        }
                    }
                }
            }
            // Kill once the load is flowing (slow builds, e.g. under the thread sanitizer, take longer).
            let flowing = ContinuousClock.now + .seconds(60)
            while shared.acked.withLock({ $0.count }) < 200, ContinuousClock.now < flowing { try await Task.sleep(for: .milliseconds(100)) }
            try await Task.sleep(for: .milliseconds(500))
            kill(collector.processIdentifier, SIGKILL)
            collector.waitUntilExit()
            let ackedAtKill = shared.acked.withLock { $0.count }
            try await Task.sleep(for: .milliseconds(300))
            collector = try Self.start(port: port, backend: backendPort, queue: queue)
            #expect(await TestProcesses.waitHealthy(port))
            let resumed = shared.acked.withLock { $0.count }
            let after = ContinuousClock.now + .seconds(60)
            while shared.acked.withLock({ $0.count }) < resumed + 200, ContinuousClock.now < after { try await Task.sleep(for: .milliseconds(100)) }
            shared.stop.store(true, ordering: .relaxed)
            await load.value
            let all = shared.acked.withLock { $0 }
            #expect(ackedAtKill > 0)
            #expect(all.count > ackedAtKill)
            // Everything acknowledged reaches the backend, once.
            _ = await backend.waitFor(spans: all.count, timeout: .seconds(30))
            let stored = backend.stored.withLock { $0.spans.map { Hex.encode(bytes: $0.traceID) + Hex.encode(bytes: $0.spanID) } }
            #expect(all.isSubset(of: Set(stored)), "lost \(all.subtracting(stored).count) acknowledged spans")
            #expect(stored.count == Set(stored).count, "\(stored.count - Set(stored).count) spans stored twice")
            collector.terminate()
            collector.waitUntilExit()
        }
    }
}

final class LoadState: Sendable {
    let acked = Mutex<Set<String>>([])
    let stop = Atomic<Bool>(false)
}
