import EvalForgeCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
@testable import Evaluation

/// A provider that answers absurdly: the judge client records each answer as an evaluation error
/// with the reason (never a trap on `Int64(1e300)`), and parses `Retry-After` with bounds (`inf`
/// used to trap on `Int64(inf * 1000)`).
@Suite(.serialized) struct ProviderAnswerTests {
    static let verdict = #"{\"score\": 0.9, \"label\": \"pass\", \"explanation\": \"fine\"}"#

    /// The fake provider: the `x-case` request header picks the answer; `retry-*` cases answer 429
    /// with that Retry-After once per case, then a valid verdict.
    final class Seen: Sendable {
        let counts = Mutex<[String: Int]>([:])
    }

    static func provider(_ seen: Seen) -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/v1/chat/completions") { req, _ -> Response in
            _ = try await req.body.collect(upTo: 1 << 20)
            let c = req.headers[.init("x-case")!] ?? ""
            let n = seen.counts.withLock { s -> Int in s[c, default: 0] += 1; return s[c, default: 0] }
            func json(_ text: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
                var h = headers
                h[.contentType] = "application/json"
                return Response(status: status, headers: h, body: .init(byteBuffer: .init(string: text)))
            }
            let good = #"{"choices": [{"message": {"role": "assistant", "content": "\#(verdict)"}}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}"#
            if c.hasPrefix("retry-") {
                let value = String(c.dropFirst("retry-".count)).replacingOccurrences(of: "_", with: " ")
                if n == 1 { return json(#"{"error": "slow down"}"#, status: .tooManyRequests, headers: [.retryAfter: value]) }
                return json(good)
            }
            switch c {
            case "tokens-1e300": return json(#"{"choices": [{"message": {"content": "\#(verdict)"}}], "usage": {"prompt_tokens": 1e300, "completion_tokens": 5}}"#)
            case "tokens-negative": return json(#"{"choices": [{"message": {"content": "\#(verdict)"}}], "usage": {"prompt_tokens": 10, "completion_tokens": -5}}"#)
            case "tokens-int64max": return json(#"{"choices": [{"message": {"content": "\#(verdict)"}}], "usage": {"prompt_tokens": 9223372036854775807, "completion_tokens": 1}}"#)
            case "tokens-string": return json(#"{"choices": [{"message": {"content": "\#(verdict)"}}], "usage": {"prompt_tokens": "NaN", "completion_tokens": 1}}"#)
            case "tokens-fraction": return json(#"{"choices": [{"message": {"content": "\#(verdict)"}}], "usage": {"prompt_tokens": 2.5, "completion_tokens": 1}}"#)
            case "usage-not-object": return json(#"{"choices": [{"message": {"content": "\#(verdict)"}}], "usage": "lots"}"#)
            case "no-choices": return json(#"{"usage": {"prompt_tokens": 1}}"#)
            case "content-number": return json(#"{"choices": [{"message": {"content": 42}}]}"#)
            case "no-content": return json(#"{"choices": [{"message": {"role": "assistant"}}]}"#)
            case "no-usage": return json(#"{"choices": [{"message": {"content": "\#(verdict)"}}]}"#)
            default: return json(good)
            }
        }
        return router
    }

    @Test func absurdAnswersAreRecordedAsErrors() async throws {
        let seen = Seen()
        let app = Application(router: Self.provider(seen), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let r = try await Runner(dir: tempDir())
            let ev = r.service
            let cases: [(String, String?)] = [
                ("tokens-1e300", "usage.prompt_tokens"), ("tokens-negative", "usage.completion_tokens"), ("tokens-int64max", "usage.prompt_tokens"),
                ("tokens-string", "usage.prompt_tokens"), ("tokens-fraction", "usage.prompt_tokens"), ("usage-not-object", "usage is a string"),
                ("no-choices", "choices[0].message"), ("content-number", "content"), ("no-content", "neither content nor tool calls"), ("no-usage", nil),
            ]
            for (c, reason) in cases {
                _ = try await ev.putProvider(projectID: "p1", ProviderConfig(name: c, kind: .openai, baseURL: "http://127.0.0.1:\(port)/v1", model: "gpt-4o-mini", maxRetries: 1, backoffMs: 10, headers: ["x-case": c]))
                let spec = EvaluatorSpec(name: "judge-\(c)", type: "judge", rubric: .relevance, provider: c)
                let (results, _) = try await ev.evaluate(projectID: "p1", evaluators: [], specs: [spec], inputs: [EvaluationInput(input: "q", output: "a")])
                let result = try #require(results.first?.first)
                if let reason {
                    #expect(result.label == "error", "\(c): \(result)")
                    #expect(result.error?.hasPrefix("malformed_answer") == true && result.error?.contains(reason) == true, "\(c): \(result.error ?? "nil")")
                    #expect(result.usage.inputTokens == 0 && result.usage.outputTokens == 0)
                } else {
                    #expect(result.score == 0.9 && result.error == nil, "\(c): \(result)")
                }
            }
            await r.stop()
        }
    }

    @Test func retryAfterFromTheProviderIsBounded() async throws {
        let seen = Seen()
        let app = Application(router: Self.provider(seen), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let r = try await Runner(dir: tempDir())
            let ev = r.service
            // Each answers 429 once with this Retry-After, then a verdict: the retry comes after the
            // provider's own backoff (10 ms), not after `inf` (which trapped) or a garbage wait.
            for value in ["inf", "-inf", "nan", "1e300", "-5", "garbage", "0x10", "Sun,_06_Nov_1994_08:49:37_GMT", "0", "0.05"] {
                let name = "retry-\(value)"
                _ = try await ev.putProvider(projectID: "p1", ProviderConfig(name: name, kind: .openai, baseURL: "http://127.0.0.1:\(port)/v1", model: "gpt-4o-mini", maxRetries: 2, backoffMs: 10, headers: ["x-case": name]))
                let start = ContinuousClock.now
                let (results, _) = try await ev.evaluate(projectID: "p1", evaluators: [], specs: [EvaluatorSpec(name: "j", type: "judge", rubric: .relevance, provider: name)], inputs: [EvaluationInput(input: "q", output: "a")])
                let took = start.duration(to: .now)
                let result = try #require(results.first?.first)
                #expect(result.score == 0.9 && result.error == nil, "\(value): \(result)")
                #expect(took < .seconds(3), "\(value): \(took)")
            }
            #expect(seen.counts.withLock { $0.values.allSatisfy { $0 == 2 } })
            await r.stop()
        }
    }

    @Test func retryAfterParsing() {
        let cap = Duration.seconds(30)
        let now: Int64 = 784_111_777  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.parse("2", maximum: cap) == .seconds(2))
        #expect(RetryAfter.parse(" 1.5 ", maximum: cap) == .milliseconds(1500))
        #expect(RetryAfter.parse("99999999999999999999999999", maximum: cap) == cap)
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:50:07 GMT", nowUnixSeconds: now, maximum: cap) == .seconds(30))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:47 GMT", nowUnixSeconds: now, maximum: cap) == .seconds(10))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:27 GMT", nowUnixSeconds: now, maximum: cap) == .zero)  // in the past
        #expect(RetryAfter.parse("Fri, 31 Dec 9999 23:59:59 GMT", nowUnixSeconds: now, maximum: cap) == cap)
        for bad in ["inf", "-inf", "nan", "NaN", "1e300", "-1", "-0.5", "", "   ", "garbage", "0x1p3", "1.", ".5", "1,5", String(repeating: "9", count: 100)] {
            #expect(RetryAfter.parse(bad, maximum: cap) == nil, "\(bad)")
        }
        #expect(RetryAfter.parse(nil, maximum: cap) == nil)
    }
}
