import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import MockLLM

@Suite("Mock LLM over a socket")
struct LiveServerTests {
    @Test("port 0: onServerRunning reports the bound port")
    func boundPort() async throws {
        let reported = Mutex<Int?>(nil)
        try await Mock.withLiveApp({ c in c.onServerRunning = { port in reported.withLock { $0 = port } } }) { client in
            let port = reported.withLock { $0 }
            #expect(port != nil && port != 0)
            #expect(port == client.port)
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
        }
    }

    @Test("time to first token and inter-token delay, configured and per request")
    func latency() async throws {
        // A per-request override of 0 ms against a configured minute: the answer comes (far) sooner.
        try await Mock.withLiveApp({ $0.latency = .fixed(ms: 60_000) }) { client in
            let start = ContinuousClock.now
            _ = try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("b"), headers: ["x-mock-latency-ms": "0"])
            #expect(ContinuousClock.now - start < .seconds(30))
        }
        try await Mock.withLiveApp({ $0.latency = .fixed(ms: 300) }) { client in
            let clock = ContinuousClock()
            var start = clock.now
            _ = try await Mock.post(client, Mock.openAI, Mock.openAIRequest("a"))
            #expect(clock.now - start >= .milliseconds(300))

            start = clock.now
            _ = try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("b"), headers: ["x-mock-latency-ms": "250"])
            #expect(clock.now - start >= .milliseconds(250))

            // 10 tokens with 20 ms between chunks: at least ~12 chunk gaps after the first byte.
            start = clock.now
            let r = try await Mock.post(
                client, Mock.openAI, Mock.openAIRequest("c", extra: ["stream": true, "max_tokens": 10]),
                headers: ["x-mock-latency-ms": "0", "x-mock-inter-token-ms": "20"])
            #expect(Mock.events(r.body).count == 13)
            #expect(clock.now - start >= .milliseconds(240))
        }
    }

    @Test("hundreds of concurrent slow requests overlap instead of queueing")
    func concurrency() async throws {
        try await Mock.withLiveApp({ $0.latency = .fixed(ms: 300); $0.interChunkDelay = .milliseconds(5) }) { client in
            guard let port = client.port else { return }
            let clock = ContinuousClock()
            let start = clock.now
            let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        // 200 connections at once: a read may wait longer than the 15 s default on a
                        // loaded machine; the bound that matters is the total below.
                        try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(60))) { c in
                            let streaming = i.isMultiple(of: 2)
                            let request = i.isMultiple(of: 3)
                                ? Mock.anthropicRequest("q\(i)", maxTokens: 10, extra: ["stream": streaming])
                                : Mock.openAIRequest("q\(i)", extra: ["stream": streaming, "max_tokens": 10])
                            let path = i.isMultiple(of: 3) ? Mock.anthropic : Mock.openAI
                            let r = try await c.execute(.init(path, method: .post, authority: "localhost", headers: Mock.headers(), body: Mock.body(request)))
                            return r.status == .ok
                        }
                    }
                }
                var all = true
                for try await ok in group { all = all && ok }
                return all
            }
            #expect(ok)
            // Serially this would take 200 × 0.35 s = 70 s; overlapping it takes a few seconds (more
            // on a loaded machine or under the thread sanitizer).
            #expect(clock.now - start < .seconds(45))
        }
    }
}
