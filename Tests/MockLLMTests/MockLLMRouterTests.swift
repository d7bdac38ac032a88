import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import MockLLM

@Suite("Mock LLM routes")
struct MockLLMRouterTests {
    static func json(_ o: Any) -> ByteBuffer { ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: o)) }
    static func object(_ b: ByteBuffer) -> [String: Any] { (try? JSONSerialization.jsonObject(with: Data(b.readableBytesView))) as? [String: Any] ?? [:] }

    func withApp(_ edit: (inout MockLLMConfiguration) -> Void = { _ in }, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var c = MockLLMConfiguration.default
        c.port = 0
        edit(&c)
        try await buildMockLLMApplication(configuration: c).test(.router, body)
    }

    @Test("same request and seed give the same answer; another seed another")
    func determinism() async throws {
        try await withApp { client in
            let req: [String: Any] = ["model": "gpt-4o", "messages": [["role": "user", "content": "hello"]]]
            var answers: [String] = []
            for seed in ["1", "1", "2"] {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: [.contentType: "application/json", HTTPField.Name("x-mock-seed")!: seed], body: Self.json(req)) { r in
                    #expect(r.status == .ok)
                    let choices = Self.object(r.body)["choices"] as? [[String: Any]]
                    answers.append((choices?.first?["message"] as? [String: Any])?["content"] as? String ?? "")
                }
            }
            #expect(answers[0] == answers[1] && answers[0] != answers[2] && !answers[0].isEmpty)
        }
    }

    @Test("bad requests get 400 in each provider's error format, naming the field")
    func badInput() async throws {
        try await withApp { client in
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: "{not json")) { r in
                #expect(r.status == .badRequest)
                #expect(((Self.object(r.body)["error"] as? [String: Any])?["message"] as? String)?.contains("JSON") == true)
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: Self.json(["model": "gpt-4o", "messages": "hi"])) { r in
                #expect(r.status == .badRequest)
                #expect(String(buffer: r.body).contains("messages"))
            }
            try await client.execute(uri: "/v1/messages", method: .post, body: Self.json(["model": "claude-haiku-4-5", "messages": [["role": "user", "content": "x"]]])) { r in
                #expect(r.status == .badRequest)
                let o = Self.object(r.body)
                #expect(o["type"] as? String == "error")
                #expect(((o["error"] as? [String: Any])?["message"] as? String)?.contains("max_tokens") == true)
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: [HTTPField.Name("x-mock-fault")!: "teapot"], body: Self.json(["model": "gpt-4o", "messages": [["role": "user", "content": "x"]]])) { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("x-mock-fault"))
            }
        }
    }

    @Test("faults: 429 with Retry-After, 500, Anthropic 529 overloaded")
    func faults() async throws {
        try await withApp({ $0.retryAfterSeconds = 3 }) { client in
            let oa = Self.json(["model": "gpt-4o", "messages": [["role": "user", "content": "x"]]])
            let an = Self.json(["model": "claude-haiku-4-5", "max_tokens": 5, "messages": [["role": "user", "content": "x"]]])
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: [HTTPField.Name("x-mock-fault")!: "429"], body: oa) { r in
                #expect(r.status == .tooManyRequests && r.headers[.retryAfter] == "3")
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: [HTTPField.Name("x-mock-fault")!: "500"], body: oa) { r in
                #expect(r.status == .internalServerError)
            }
            try await client.execute(uri: "/v1/messages", method: .post, headers: [HTTPField.Name("x-mock-fault")!: "529"], body: an) { r in
                #expect(r.status.code == 529)
                #expect(((Self.object(r.body)["error"] as? [String: Any])?["type"] as? String) == "overloaded_error")
            }
        }
        // Configured rates are honoured over many requests.
        try await withApp({ $0.faults.rate429 = 0.3 }) { client in
            var limited = 0
            for i in 0..<200 {
                try await client.execute(uri: "/v1/chat/completions", method: .post, body: Self.json(["model": "gpt-4o", "messages": [["role": "user", "content": "q\(i)"]]])) { r in
                    if r.status == .tooManyRequests { limited += 1 }
                }
            }
            #expect(limited > 35 && limited < 85)
        }
    }

    @Test("Anthropic streams follow the documented event order")
    func anthropicEventOrder() async throws {
        try await withApp { client in
            try await client.execute(uri: "/v1/messages", method: .post, body: Self.json(["model": "claude-haiku-4-5", "max_tokens": 20, "stream": true, "messages": [["role": "user", "content": "x"]]])) { r in
                #expect(r.headers[.contentType] == "text/event-stream")
                let events = String(buffer: r.body).split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) }
                #expect(events.first == "message_start")
                #expect(Array(events.prefix(3)) == ["message_start", "content_block_start", "ping"])
                #expect(Array(events.suffix(3)) == ["content_block_stop", "message_delta", "message_stop"])
                #expect(events.dropFirst(3).dropLast(3).allSatisfy { $0 == "content_block_delta" })
            }
        }
    }

    @Test func latencyModels() {
        #expect(LatencyModel("uniform:100-500") == .uniform(minMs: 100, maxMs: 500))
        #expect(LatencyModel("lognormal:p50=200,p95=800") == .logNormal(p50Ms: 200, p95Ms: 800))
        #expect(LatencyModel("fixed:-1") == nil && LatencyModel("gaussian:3") == nil)
        var samples: [Double] = []
        var rng = MockRNG(seed: 1, body: [1])
        for _ in 0..<20_000 { samples.append(LatencyModel.logNormal(p50Ms: 200, p95Ms: 800).sample(rng.unit(), rng.unit())) }
        samples.sort()
        #expect(abs(samples[10_000] - 200) < 15)
        #expect(abs(samples[19_000] - 800) < 80)
    }
}
