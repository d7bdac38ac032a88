import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import MockLLM

@Suite("Fault injection")
struct FaultTests {
    static func error(_ r: TestResponse) -> [String: Any] { Mock.object(r.body)["error"] as? [String: Any] ?? [:] }

    @Test("x-mock-fault 429, 500, 529 in each provider's error format, with Retry-After on 429 and 529")
    func forcedFaults() async throws {
        try await Mock.withApp({ $0.retryAfterSeconds = 3 }) { client in
            let oa = Mock.openAIRequest("x")
            let an = Mock.anthropicRequest("x", maxTokens: 5)

            var r = try await Mock.post(client, Mock.openAI, oa, headers: ["x-mock-fault": "429"])
            #expect(r.status == .tooManyRequests && r.headers[.retryAfter] == "3")
            #expect(Self.error(r)["code"] as? String == "rate_limit_exceeded")
            #expect(Self.error(r)["type"] as? String == "rate_limit_exceeded")
            #expect(Self.error(r)["message"] is String && Self.error(r)["param"] is NSNull)
            r = try await Mock.post(client, Mock.openAI, oa, headers: ["x-mock-fault": "500"])
            #expect(r.status == .internalServerError && Self.error(r)["type"] as? String == "server_error")
            r = try await Mock.post(client, Mock.openAI, oa, headers: ["x-mock-fault": "529"])
            #expect(r.status == .serviceUnavailable && r.headers[.retryAfter] == "3")

            r = try await Mock.post(client, Mock.anthropic, an, headers: ["x-mock-fault": "429"])
            #expect(r.status == .tooManyRequests && r.headers[.retryAfter] == "3")
            #expect(Mock.object(r.body)["type"] as? String == "error" && Self.error(r)["type"] as? String == "rate_limit_error")
            r = try await Mock.post(client, Mock.anthropic, an, headers: ["x-mock-fault": "500"])
            #expect(r.status == .internalServerError && Self.error(r)["type"] as? String == "api_error")
            r = try await Mock.post(client, Mock.anthropic, an, headers: ["x-mock-fault": "529"])
            #expect(r.status.code == 529 && r.headers[.retryAfter] == "3")
            #expect(Self.error(r)["type"] as? String == "overloaded_error")
        }
    }

    @Test("x-mock-fault cut: the response stops half-way and the connection drops, streaming or not", arguments: [false, true])
    func cut(stream: Bool) async throws {
        try await Mock.withApp { client in
            for (path, request) in [(Mock.openAI, Mock.openAIRequest("x")), (Mock.anthropic, Mock.anthropicRequest("x"))] {
                await #expect(throws: ResponseCut.self) {
                    _ = try await Mock.post(client, path, request.merging(["stream": stream]) { _, b in b }, headers: ["x-mock-fault": "cut"])
                }
            }
        }
        // Over a socket the client sees the connection end before the response does.
        try await Mock.withLiveApp { client in
            for (path, request) in [(Mock.openAI, Mock.openAIRequest("x")), (Mock.anthropic, Mock.anthropicRequest("x"))] {
                await #expect(throws: (any Error).self) {
                    let r = try await Mock.post(client, path, request.merging(["stream": stream]) { _, b in b }, headers: ["x-mock-fault": "cut"])
                    // Should a client hand back the partial body, it must not be a complete answer.
                    if stream {
                        let last = Mock.events(r.body).last
                        if last?.data == "[DONE]" || last?.event == "message_stop" { return }
                    } else if !Mock.object(r.body).isEmpty {
                        return
                    }
                    throw ResponseCut()
                }
            }
        }
    }

    @Test("x-mock-fault malformed: a 200 with invalid JSON, or a stream with a broken event")
    func malformed() async throws {
        try await Mock.withApp { client in
            for (path, request) in [(Mock.openAI, Mock.openAIRequest("x")), (Mock.anthropic, Mock.anthropicRequest("x"))] {
                let r = try await Mock.post(client, path, request, headers: ["x-mock-fault": "malformed"])
                #expect(r.status == .ok)
                #expect((try? JSONSerialization.jsonObject(with: Data(r.body.readableBytesView))) == nil)
                let s = try await Mock.post(client, path, request.merging(["stream": true]) { _, b in b }, headers: ["x-mock-fault": "malformed"])
                #expect(s.headers[.contentType] == "text/event-stream")
                let events = Mock.events(s.body)
                #expect(!events.isEmpty && events.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.data.utf8))) == nil })
            }
        }
    }

    @Test("configured rates: about the configured share fails, reproducibly for a seed, and retries can succeed")
    func rates() async throws {
        func statuses(seed: UInt64) async throws -> [Int] {
            let seen = Mutex<[Int]>([])
            try await Mock.withApp({ $0.seed = seed; $0.faults = .init(rate429: 0.2, rate500: 0.1, rate529: 0.1) }) { client in
                for i in 0..<200 {
                    let path = i.isMultiple(of: 2) ? Mock.openAI : Mock.anthropic
                    let request = i.isMultiple(of: 2) ? Mock.openAIRequest("q\(i / 2)") : Mock.anthropicRequest("q\(i / 2)")
                    let code = try await Mock.post(client, path, request).status.code
                    seen.withLock { $0.append(code) }
                }
            }
            return seen.withLock { $0 }
        }
        let a = try await statuses(seed: 5)
        let b = try await statuses(seed: 5)
        let c = try await statuses(seed: 6)
        #expect(a == b)
        #expect(a != c)
        let limited = a.filter { $0 == 429 }.count
        let failed = a.filter { $0 == 500 }.count
        let overloaded = a.filter { [503, 529].contains($0) }.count
        #expect((20...60).contains(limited), "429s: \(limited)")
        #expect((6...35).contains(failed), "500s: \(failed)")
        #expect((6...35).contains(overloaded), "529/503s: \(overloaded)")
        #expect(a.filter { $0 == 200 }.count + limited + failed + overloaded == 200)

        // The same request retried draws again: it gets through.
        try await Mock.withApp({ $0.faults.rate429 = 0.5 }) { client in
            var attempts = 0
            var status = HTTPResponse.Status.tooManyRequests
            while status != .ok && attempts < 40 {
                status = try await Mock.post(client, Mock.openAI, Mock.openAIRequest("same")).status
                attempts += 1
            }
            #expect(status == .ok)
        }
    }

    @Test("a configured stream-cut rate cuts streams")
    func cutRate() async throws {
        try await Mock.withApp({ $0.faults.rateStreamCut = 1 }) { client in
            await #expect(throws: ResponseCut.self) {
                _ = try await Mock.post(client, Mock.openAI, Mock.openAIRequest("x", extra: ["stream": true]))
            }
        }
    }
}
