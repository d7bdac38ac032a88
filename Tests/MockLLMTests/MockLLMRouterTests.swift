import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import MockLLM

@Suite("Mock LLM routes")
struct MockLLMRouterTests {
    @Test("same request and seed give the same answer; another seed another")
    func determinism() async throws {
        try await Mock.withApp { client in
            var answers: [String] = []
            var ids: [String] = []
            for seed in ["1", "1", "2"] {
                let r = try await Mock.post(client, Mock.openAI, Mock.openAIRequest("hello"), headers: ["x-mock-seed": seed])
                #expect(r.status == .ok)
                let o = Mock.object(r.body)
                let choices = o["choices"] as? [[String: Any]]
                answers.append((choices?.first?["message"] as? [String: Any])?["content"] as? String ?? "")
                ids.append(o["id"] as? String ?? "")
            }
            #expect(answers[0] == answers[1] && answers[0] != answers[2] && !answers[0].isEmpty)
            #expect(ids[0] == ids[1] && ids[0] != ids[2] && ids[0].hasPrefix("chatcmpl-"))
        }
    }

    @Test("the configured seed decides the answer; the same request gives the same bytes apart from `created`")
    func configuredSeed() async throws {
        func answer(seed: UInt64) async throws -> (String, [String: Any]) {
            let box = Box()
            try await Mock.withApp({ $0.seed = seed }) { client in
                let r = try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("Tell me about tracing"))
                box.value = String(buffer: r.body)
            }
            return (box.value, Mock.object(box.value))
        }
        let (a, _) = try await answer(seed: 7)
        let (b, _) = try await answer(seed: 7)
        let (c, _) = try await answer(seed: 8)
        #expect(a == b)
        #expect(a != c)
    }

    @Test("Anthropic streams follow the documented event order")
    func anthropicEventOrder() async throws {
        try await Mock.withApp { client in
            let r = try await Mock.post(client, Mock.anthropic, Mock.anthropicRequest("x", maxTokens: 20, extra: ["stream": true]))
            #expect(r.headers[.contentType] == "text/event-stream")
            let events = Mock.events(r.body).compactMap(\.event)
            #expect(Array(events.prefix(3)) == ["message_start", "content_block_start", "ping"])
            #expect(Array(events.suffix(3)) == ["content_block_stop", "message_delta", "message_stop"])
            #expect(events.count > 6)
            #expect(events.dropFirst(3).dropLast(3).allSatisfy { $0 == "content_block_delta" })
            // Each event's data has the event's type.
            for e in Mock.events(r.body) { #expect(Mock.object(e.data)["type"] as? String == e.event) }
        }
    }

    @Test func latencyModels() {
        #expect(LatencyModel("none") == LatencyModel.none)
        #expect(LatencyModel("fixed:200") == .fixed(ms: 200))
        #expect(LatencyModel("uniform:100-500") == .uniform(minMs: 100, maxMs: 500))
        #expect(LatencyModel("lognormal:p50=200,p95=800") == .logNormal(p50Ms: 200, p95Ms: 800))
        #expect(LatencyModel("fixed:-1") == nil && LatencyModel("gaussian:3") == nil && LatencyModel("uniform:5-1") == nil)
        #expect(LatencyModel("lognormal:p50=200") == nil && LatencyModel("fixed:abc") == nil)
        var samples: [Double] = []
        var rng = MockRNG(seed: 1, body: [1])
        for _ in 0..<20_000 { samples.append(LatencyModel.logNormal(p50Ms: 200, p95Ms: 800).sample(rng.unit(), rng.unit())) }
        samples.sort()
        #expect(abs(samples[10_000] - 200) < 15)
        #expect(abs(samples[19_000] - 800) < 80)
        for _ in 0..<1000 {
            let u = LatencyModel.uniform(minMs: 100, maxMs: 500).sample(rng.unit(), rng.unit())
            #expect(u >= 100 && u <= 500)
        }
    }

    @Test("GET /v1/models and /healthz")
    func modelsAndHealth() async throws {
        try await Mock.withApp { client in
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/v1/models", method: .get) { r in
                let o = Mock.object(r.body)
                #expect(o["object"] as? String == "list")
                #expect((o["data"] as? [[String: Any]])?.contains { $0["id"] as? String == "gpt-4o" } == true)
            }
        }
    }
}

/// A mutable holder for values leaving a `@Sendable` test closure.
final class Box: Sendable {
    private let storage = Mutex("")
    var value: String {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}
