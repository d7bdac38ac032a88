import EvalForgeStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
@testable import Evaluation
import TestProcesses

/// Issue 16 §3: several `evalforge backend` processes share the evaluation work of one metadata
/// database (Postgres when EVALFORGE_TEST_POSTGRES_URL is set, and the shared SQLite file) through
/// leases. kill -9 of the backend working on a run: the other finishes it, every item has exactly
/// one result, no judge call is paid more than twice per item, and the repeated calls are counted.
/// Webhook deliveries one backend holds are not sent by the other while its lease lives.
@Suite(.serialized) struct SharedWorkTests {
    /// Lease length of the backends under test (EVALFORGE_WORK_LEASE_S): short, so a killed
    /// backend's claims run out within the test.
    static let leaseSeconds = 3

    /// Two backends on one metadata database and one data folder (the telemetry store and the
    /// secrets key), started one after the other (the second finds the schema migrated).
    final class TwoBackends: Sendable {
        let dir: String
        let postgres: PostgresMetadataConfiguration?
        let ports: [Int]
        let processes: Mutex<[ChildProcess]>

        init(_ kind: TestMetadata, leaseSeconds: Int) async throws {
            dir = tempDir()
            var postgresURL: String?
            if kind == .postgres {
                let c = try await TestMetadata.freshPostgres(localDirectory: nil)
                let base = try #require(TestMetadata.postgresURL)
                postgresURL = base + (base.contains("?") ? "&" : "?") + "search_path=" + (c.searchPath ?? "public")
                postgres = c
            } else {
                postgres = nil
            }
            ports = [TestProcesses.freeLoopbackPort(), TestProcesses.freeLoopbackPort()]
            processes = Mutex([])
            for port in ports {
                let p = ChildProcess()
                p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
                p.arguments = ["backend", "--operator-port", "0", "--port", "\(port)", "--data-dir", dir, "--api-key", LiveBackend.apiKey, "--log-level", "error",
                               "--outbound-allow", OutboundPolicy.testLoopbackList] + (postgresURL.map { ["--postgres-url", $0] } ?? [])
                var environment = ProcessInfo.processInfo.environment
                environment["EVALFORGE_CLICKHOUSE_URL"] = nil
                environment["EVALFORGE_POSTGRES_URL"] = nil
                environment["EVALFORGE_WORK_LEASE_S"] = "\(leaseSeconds)"
                p.environment = environment
                p.standardOutput = FileHandle.nullDevice
                try p.run()
                processes.withLock { $0.append(p) }
                try #require(await TestProcesses.waitHealthy(port), "backend on \(port) did not start")
            }
        }

        func kill(_ i: Int, _ signal: Int32) {
            let p = processes.withLock { $0[i] }
            guard p.isRunning else { return }
            p.signal(signal)
            p.waitUntilExit()
        }

        func stop() async {
            for i in ports.indices { kill(i, SIGKILL) }
            if let postgres { await TestMetadata.drop(postgres) }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// A judge (OpenAI chat completions) that answers after `latency` and counts its calls per
    /// dataset item (the item's input, "item-NNN", is in the judge's prompt); plus a webhook
    /// receiver at /hook that records each delivery's id and event.
    final class Judge: Sendable {
        let calls = Mutex<[String: Int]>([:])
        let deliveries = Mutex<[(id: String, event: String)]>([])
        let latency: Duration
        init(latency: Duration) { self.latency = latency }

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.post("/v1/chat/completions") { req, _ -> Response in
                let body = String(buffer: try await req.body.collect(upTo: 1 << 20))
                let item = body.firstMatch(of: /item-(\d{3})/).map { String($0.0) } ?? "?"
                self.calls.withLock { $0[item, default: 0] += 1 }
                try await Task.sleep(for: self.latency)
                let verdict = #"{\"score\": 0.9, \"label\": \"pass\", \"explanation\": \"fine\"}"#
                let answer = #"{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"\#(verdict)"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: .init(string: answer)))
            }
            router.post("/hook") { req, _ -> Response in
                let body = String(buffer: try await req.body.collect(upTo: 1 << 20))
                let j = JSON.parse(body)
                self.deliveries.withLock { $0.append((j?["id"]?.stringValue ?? "", j?["event"]?.stringValue ?? "")) }
                return Response(status: .ok)
            }
            return router
        }
    }

    @Test("kill -9 of the backend working on a run: the other completes it; one result per item; each judge call paid at most twice, the repeats counted",
          .timeLimit(.minutes(6)), arguments: TestMetadata.available)
    func killTheBackendWorkingOnARun(_ kind: TestMetadata) async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let judge = Judge(latency: .milliseconds(250))
        let app = Application(router: judge.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger)
        try await app.test(.live) { client in
            let judgePort = try #require(client.port)
            let backends = try await TwoBackends(kind, leaseSeconds: Self.leaseSeconds)
            do {
                let (a, b) = (backends.ports[0], backends.ports[1])
                let provider = #"{"name": "judge", "kind": "openai", "baseURL": "http://127.0.0.1:\#(judgePort)/v1", "apiKey": "k", "model": "m", "timeoutMs": 60000, "maxRetries": 0}"#
                #expect(try await call(a, "POST", "/api/providers", provider).status == 201)
                #expect(try await call(a, "POST", "/api/evaluators", #"{"name": "rel", "type": "judge", "rubric": "relevance", "provider": "judge"}"#).status == 201)
                #expect(try await call(a, "POST", "/api/webhooks", #"{"url": "http://127.0.0.1:\#(judgePort)/hook", "events": ["run.started", "run.progress", "run.completed", "run.failed"]}"#).status == 201)
                let total = 200
                let items = (0..<total).map { String(format: #"{"input": "item-%03d: what is %d + %d?", "output": "%d"}"#, $0, $0, $0, 2 * $0) }.joined(separator: ",")
                let ds = try await call(a, "POST", "/api/datasets", #"{"name": "d", "items": [\#(items)]}"#)
                let dsID = try #require(ds.json?["id"]?.stringValue, "\(ds.body)")
                let exp = try await call(a, "POST", "/api/experiments", #"{"datasetId": "\#(dsID)", "evaluators": ["rel"], "concurrency": 16, "target": {"type": "recorded"}}"#)
                let runID = try #require(exp.json?["run"]?["id"]?.stringValue, "\(exp.body)")

                // Mid-run: A started it (B polls and works on it too); judge calls are in flight.
                let deadline = ContinuousClock.now + .seconds(90)
                while judge.calls.withLock({ $0.values.reduce(0, +) }) < 50, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                let callsAtKill = judge.calls.withLock { $0.values.reduce(0, +) }
                try #require(callsAtKill >= 50 && callsAtKill < total, "not mid-run at the kill: \(callsAtKill) judge calls")
                backends.kill(0, SIGKILL)

                var run = JSON.null
                let done = ContinuousClock.now + .seconds(180)
                while ContinuousClock.now < done {
                    run = try await call(b, "GET", "/api/runs/\(runID)").json ?? .null
                    if run["status"] == "completed" || run["status"] == "failed" { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(run["status"] == "completed", "\(run.text.prefix(600))")
                #expect(run["done"] == .number(Double(total)) && run["errors"] == 0, "\(run.text.prefix(600))")

                // Exactly one result per item.
                let runItems = try #require(try await call(b, "GET", "/api/runs/\(runID)/items").json?.arrayValue)
                #expect(runItems.count == total)
                #expect(runItems.allSatisfy { $0["state"] == "done" && $0["results"]?.arrayValue?.count == 1 && ($0["error"] == nil || $0["error"] == .null) },
                        "\(runItems.first { $0["results"]?.arrayValue?.count != 1 }?.text.prefix(300) ?? "")")
                #expect(runItems.allSatisfy { let e = $0["results"]?.arrayValue?.first?["error"]; return e == nil || e == .null })

                // Each item's judge call paid at most twice; the calls in flight at the kill were repeated, and counted.
                let calls = judge.calls.withLock { $0 }
                #expect(calls.count == total && calls["?"] == nil, "judge calls for \(calls.count) items")
                let twice = calls.values.filter { $0 == 2 }.count
                #expect(calls.values.allSatisfy { $0 >= 1 && $0 <= 2 }, "\(calls.filter { $0.value > 2 })")
                #expect(twice >= 1, "no judge call was in flight at the kill: the test proved nothing")
                let judgeCalls = Int(run["judge"]?["calls"]?.doubleValue ?? -1)
                let repeated = Int(run["judge"]?["callsRepeated"]?.doubleValue ?? -1)
                let hits = Int(run["cacheHits"]?.doubleValue ?? -1)
                // One result per item: a fresh judge call or a hit of a verdict kept before the kill.
                #expect(judgeCalls + hits == total, "judge calls \(judgeCalls) + cache hits \(hits) for \(total) items")
                #expect(repeated >= twice, "\(repeated) repeated calls counted; \(twice) items were judged twice")

                // The run's webhooks once each across both backends (deliveries are at least once:
                // counted by delivery id per event).
                try await Task.sleep(for: .seconds(3))
                let delivered = judge.deliveries.withLock { $0 }
                func events(_ e: String) -> Int { Set(delivered.filter { $0.event == e }.map(\.id)).count }
                #expect(events("run.started") == 1 && events("run.completed") == 1 && events("run.failed") == 0, "\(delivered.map(\.event))")
                #expect(events("run.progress") <= 9, "\(delivered.map(\.event))")
            } catch {
                await backends.stop()
                throw error
            }
            await backends.stop()
        }
    }

    @Test("webhook deliveries one backend is sending are not sent by the other while its lease lives",
          .timeLimit(.minutes(4)), arguments: TestMetadata.available)
    func deliveriesAreNotSentTwice(_ kind: TestMetadata) async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        // Each receiver answer takes twice the lease: only the sender's heartbeat keeps the other
        // backend from claiming the delivery meanwhile.
        let hold: Duration = .seconds(2 * 2)
        let received = Mutex<[String: Int]>([:])
        let router = Router()
        router.post("/hook") { req, _ -> Response in
            let body = String(buffer: try await req.body.collect(upTo: 1 << 20))
            let id = JSON.parse(body)?["id"]?.stringValue ?? "?"
            received.withLock { $0[id, default: 0] += 1 }
            try await Task.sleep(for: hold)
            return Response(status: .ok)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger)
        try await app.test(.live) { client in
            let hookPort = try #require(client.port)
            let backends = try await TwoBackends(kind, leaseSeconds: 2)
            do {
                let (a, b) = (backends.ports[0], backends.ports[1])
                var hooks: [String] = []
                for _ in 0..<4 {
                    let h = try await call(a, "POST", "/api/webhooks", #"{"url": "http://127.0.0.1:\#(hookPort)/hook", "events": ["run.started", "run.completed"]}"#)
                    hooks.append(try #require(h.json?["id"]?.stringValue, "\(h.body)"))
                }
                #expect(try await call(a, "POST", "/api/evaluators", #"{"name": "len", "type": "length", "max": 1000}"#).status == 201)
                let ds = try await call(a, "POST", "/api/datasets", #"{"name": "d", "items": [{"input": "q", "output": "a"}, {"input": "r", "output": "b"}]}"#)
                let dsID = try #require(ds.json?["id"]?.stringValue)
                // Two runs, one started through each backend: 4 hooks × 2 events × 2 runs deliveries.
                for port in [a, b] {
                    let exp = try await call(port, "POST", "/api/experiments", #"{"datasetId": "\#(dsID)", "evaluators": ["len"], "target": {"type": "recorded"}}"#)
                    _ = try #require(exp.json?["run"]?["id"]?.stringValue, "\(exp.body)")
                }
                let expected = 16
                var states: [JSON] = []
                let deadline = ContinuousClock.now + .seconds(120)
                while ContinuousClock.now < deadline {
                    states = []
                    for h in hooks { states += try await call(b, "GET", "/api/webhooks/\(h)/deliveries").json?.arrayValue ?? [] }
                    if states.count == expected, states.allSatisfy({ $0["status"] == "delivered" }) { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(states.count == expected && states.allSatisfy { $0["status"] == "delivered" && $0["attempts"] == 1 }, "\(states.map { "\($0["status"] ?? .null) \($0["attempts"] ?? .null)" })")
                let counts = received.withLock { $0 }
                #expect(counts.count == expected, "\(counts.count) deliveries received")
                #expect(counts.values.allSatisfy { $0 == 1 }, "sent twice: \(counts.filter { $0.value > 1 })")
            } catch {
                await backends.stop()
                throw error
            }
            await backends.stop()
        }
    }
}
