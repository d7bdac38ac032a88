import AsyncHTTPClient
import Backend
import EvalForgeModel
import EvalForgeStore
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
@testable import Evaluation
import TestProcesses

/// The online-evaluation queue is durable: ingest queues a batch's spans in the metadata file before
/// it acknowledges the batch (a resent batch too), and a backend killed while evaluating them
/// evaluates them after its restart, each result stored once. Before, the queue lived in memory and
/// a restart or kill -9 lost it.
@Suite(.serialized) struct OnlineQueueTests {
    /// An OTLP/JSON request with `count` model calls and one plain span (not queued: rules
    /// evaluate model calls by default) in trace `trace`.
    static func otlp(trace: String, count: Int, firstSpan: Int = 1) -> String {
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        // Each span asks something else, so the judge's result cache (keyed by content) cannot
        // answer one span with another's verdict and every evaluation reaches the judge.
        var spans = (0..<count).map { i in
            """
            {"traceId":"\(trace)","spanId":"\(String(format: "%016x", firstSpan + i))","name":"chat gpt-4o","kind":3,"startTimeUnixNano":"\(now)","endTimeUnixNano":"\(now + 1_000_000)",
             "attributes":[{"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
             {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
             {"key":"gen_ai.input.messages","value":{"stringValue":"[{\\"role\\":\\"user\\",\\"content\\":\\"question \(firstSpan + i)\\"}]"}}]}
            """
        }
        spans.append(#"{"traceId":"\#(trace)","spanId":"00000000000000ff","name":"handler","kind":2,"startTimeUnixNano":"\#(now)","endTimeUnixNano":"\#(now + 5_000_000)"}"#)
        return #"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"app"}}]},"scopeSpans":[{"spans":[\#(spans.joined(separator: ","))]}]}]}"#
    }

    static func postOTLP(_ port: Int, _ body: String) async throws -> HTTPAnswer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/traces")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(LiveBackend.apiKey)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return HTTPAnswer(status: Int(response.status.code), body: String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    /// Polls the rule's scores until `count` are stored (or 60 s passed), then returns them.
    static func waitForScores(_ port: Int, rule: String, count: Int) async throws -> [JSON] {
        var scores: [JSON] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            scores = try await call(port, "GET", "/api/scores?runId=\(rule)").json?.arrayValue ?? []
            if scores.count >= count { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return scores
    }

    static let traceA = String(repeating: "a1", count: 16)
    static let traceB = String(repeating: "b2", count: 16)

    /// Spans ingested over HTTP are scored; the same request sent again (answered as a duplicate)
    /// does not queue them twice; a batch stored by an attempt that ended before its spans were
    /// queued (a crash between the two) is queued by its resend, answered "duplicate".
    @Test func ingestedSpansAreScoredOnceAndADuplicateStillQueues() async throws {
        try await LiveBackend.run { port, services in
            #expect(try await call(port, "POST", "/api/evaluators", #"{"name": "len", "type": "length", "max": 1000}"#).status == 201)
            let rule = try await call(port, "POST", "/api/online-rules", #"{"name": "all", "evaluators": ["len"], "samplingRate": 1}"#)
            let ruleID = try #require(rule.json?["id"]?.stringValue, "\(rule.body)")

            let body = Self.otlp(trace: Self.traceA, count: 2)
            #expect(try await Self.postOTLP(port, body).status == 200)
            #expect(try await Self.postOTLP(port, body).status == 200)  // a resend: duplicate
            var scores = try await Self.waitForScores(port, rule: ruleID, count: 2)
            #expect(scores.count == 2 && scores.allSatisfy { $0["traceID"]?.stringValue == Self.traceA && $0["source"] == "online" }, "\(scores)")
            let queue = try await call(port, "GET", "/api/online-queue")
            #expect(queue.status == 200)
            #expect(queue.json?["limit"] == 10_000, "\(queue.body)")
            #expect(queue.json?["enqueued"] == 2, "\(queue.body)")
            // A resend after the spans were evaluated (their rows are done) does not queue them again.
            var evaluated = queue.json
            let deadline = ContinuousClock.now + .seconds(30)
            while evaluated?["evaluated"] != 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                evaluated = try await call(port, "GET", "/api/online-queue").json
            }
            #expect(evaluated?["evaluated"] == 2 && evaluated?["queued"] == 0, "\(evaluated?.text ?? "")")
            #expect(try await Self.postOTLP(port, body).status == 200)
            let afterResend = try await call(port, "GET", "/api/online-queue")
            #expect(afterResend.json?["enqueued"] == 2 && afterResend.json?["queued"] == 0, "\(afterResend.body)")

            // The first attempt stored the batch and stopped before queueing it; the resend is a
            // duplicate for the store and still queues the spans.
            let span = SpanRow(projectID: "default", traceID: Self.traceB, spanID: "00000000000000b1", startUnixNanos: nowNanos(), durationNanos: 1_000_000,
                               service: "app", name: "chat", kind: .client, operation: "chat", provider: "openai", model: "gpt-4o", input: "[]", output: "[]")
            let batch = StoreBatch(projectID: "default", batchID: "crashed-before-enqueue", spans: [span], rollups: [])
            #expect(try await services.store.insert(batch) == .stored)
            #expect(try await services.ingest.ingest(batch) == .duplicate)
            scores = try await Self.waitForScores(port, rule: ruleID, count: 3)
            #expect(scores.filter { $0["traceID"]?.stringValue == Self.traceB }.count == 1, "\(scores)")

            // Settled: every queued span evaluated once, nothing left.
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await Self.waitForScores(port, rule: ruleID, count: 3).count == 3)
            let settled = try await call(port, "GET", "/api/online-queue").json
            #expect(settled?["queued"] == 0 && settled?["skippedOverShare"] == 0, "\(settled?.text ?? "")")
            #expect(settled?["enqueued"] == 3 && settled?["evaluated"] == 3, "\(settled?.text ?? "")")
        }
    }

    /// The real thing: `evalforge backend` acknowledges a batch and is killed with SIGKILL while a
    /// judge evaluates its spans (the judge holds its answers). After the restart the spans are
    /// evaluated again and each score and evaluation span is stored exactly once.
    @Test func killDashNineBeforeEvaluationFinished() async throws {
        let binary = TestProcesses.evalforge
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let arrivals = Shared(0)
        let hold = Shared(true)
        let router = Router()
        router.post("/v1/chat/completions") { req, _ -> Response in
            _ = try await req.body.collect(upTo: 1 << 20)
            arrivals.withLock { $0 += 1 }
            let end = ContinuousClock.now + .seconds(300)
            while hold.withLock({ $0 }), ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
            let verdict = #"{\"score\": 0.9, \"label\": \"pass\", \"explanation\": \"fine\"}"#
            let answer = #"{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"\#(verdict)"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: .init(string: answer)))
        }
        let judge = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger)
        try await judge.test(.live) { client in
            let judgePort = try #require(client.port)
            defer { hold.withLock { $0 = false } }
            let dir = tempDir()
            var port = TestProcesses.freeLoopbackPort()
            var backend = try CrashLoopTests.startBackend(binary, port: port, dir: dir)
            defer { if backend.isRunning { kill(backend.processIdentifier, SIGKILL); backend.waitUntilExit() } }
            try #require(await TestProcesses.waitHealthy(port))
            let provider = #"{"name": "judge", "kind": "openai", "baseURL": "http://127.0.0.1:\#(judgePort)/v1", "apiKey": "k", "model": "m", "timeoutMs": 300000, "maxRetries": 0}"#
            #expect(try await call(port, "POST", "/api/providers", provider).status == 201)
            #expect(try await call(port, "POST", "/api/evaluators", #"{"name": "rel", "type": "judge", "rubric": "relevance", "provider": "judge"}"#).status == 201)
            let rule = try await call(port, "POST", "/api/online-rules", #"{"name": "all", "evaluators": ["rel"], "samplingRate": 1}"#)
            let ruleID = try #require(rule.json?["id"]?.stringValue, "\(rule.body)")

            // Acknowledged, then killed while the judge holds all three evaluations.
            #expect(try await Self.postOTLP(port, Self.otlp(trace: Self.traceA, count: 3)).status == 200)
            let deadline = ContinuousClock.now + .seconds(60)
            while arrivals.withLock({ $0 }) < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try #require(arrivals.withLock { $0 } == 3, "the three spans were not sent to the judge")
            kill(backend.processIdentifier, SIGKILL)
            backend.waitUntilExit()

            // The judge answers from now on; the restarted backend evaluates the queued spans.
            hold.withLock { $0 = false }
            port = TestProcesses.freeLoopbackPort()
            backend = try CrashLoopTests.startBackend(binary, port: port, dir: dir)
            try #require(await TestProcesses.waitHealthy(port))
            let scores = try await Self.waitForScores(port, rule: ruleID, count: 3)
            #expect(scores.count == 3, "\(scores)")
            var queue = JSON.null
            let settled = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < settled {
                queue = try await call(port, "GET", "/api/online-queue").json ?? .null
                if queue["queued"] == 0 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(queue["queued"] == 0 && queue["enqueued"] == 3 && queue["evaluated"] == 3 && queue["failedAfterClaims"] == 0, "\(queue.text)")
            #expect(arrivals.withLock { $0 } == 6, "each span judged once before the kill and once after: \(arrivals.withLock { $0 })")
            kill(backend.processIdentifier, SIGTERM)
            backend.waitUntilExit()

            // In the store: three scores (one per span, the verdict after the restart) and three
            // evaluation spans, each once.
            let store = try SQLiteStore(path: dir + "/evalforge-telemetry.sqlite", logger: testLogger)
            let stored = try await store.scores(projectID: "default", runID: ruleID)
            #expect(stored.count == 3 && Set(stored.map(\.spanID)).count == 3 && stored.allSatisfy { $0.value == 0.9 }, "\(stored)")
            let trace = try await store.trace(projectID: "default", traceID: Self.traceA)
            let evaluated: Set<String> = ["0000000000000001", "0000000000000002", "0000000000000003"]
            let evaluations = trace.filter { $0.service == EvaluationSpans.service && evaluated.contains($0.parentSpanID) }
            #expect(evaluations.count == 3 && Set(evaluations.map(\.parentSpanID)).count == 3, "\(evaluations.map(\.name))")
            await store.shutdown()
        }
    }
}
