import EvalForgeCrypto
import EvalForgeStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
@testable import Evaluation
import TestProcesses

/// An item whose evaluation ends the process (a crash, kill -9) is claimed at most `maxItemClaims`
/// times (its lease runs out after each crash and it is claimed again); then it fails with its
/// reason and the run goes on, instead of a crash loop.
@Suite(.serialized) struct CrashLoopTests {
    let project = "p1"

    /// The state a crash leaves, written into the metadata file: one item claimed three times (the
    /// process died each time), one claimed once (in flight at the last crash). At the next start
    /// the first fails with the reason, the second is evaluated alone, the rest normally.
    @Test func itemClaimedTooOftenFailsAndTheRunGoesOn() async throws {
        let dir = tempDir()
        var r = try await Runner(dir: dir)
        _ = try await r.service.putEvaluator(projectID: project, .init(name: "len", type: "length", max: 1000))
        let ds = try await r.service.createDataset(projectID: project, name: "d", items: items(6))
        let exp = try await r.service.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "recorded"), evaluators: ["len"], concurrency: 2)
        await r.stop()

        // A run as a crashed process leaves it (created while no engine runs).
        let metadata = try SQLiteDatabase(path: dir + "/meta.sqlite")
        let repo = EvalRepository(db: metadata, secrets: try SecretKeyring(current: SecretKeyring.loadOrCreateKeyFile(dir + "/secrets.key").key))
        let specs = try await repo.evaluators(project)
        let runID = try await repo.createRun(project, experiment: exp, config: RunConfig(target: exp.target, evaluators: specs, concurrency: 2))
        try await metadata.write { c in
            try c.run("UPDATE eval_runs SET status = 'running', started_unix_ms = 1 WHERE id = ?", [.text(runID)])
            try c.run("UPDATE eval_run_items SET state = 'claimed', claims = 3 WHERE run_id = ? AND seq = 3", [.text(runID)])
            try c.run("UPDATE eval_run_items SET state = 'claimed', claims = 1 WHERE run_id = ? AND seq = 4", [.text(runID)])
        }
        metadata.close()

        r = try await Runner(dir: dir)
        let run = try await r.waitForRun(project, runID)
        #expect(run.status == .completed)
        #expect(run.done == 6 && run.errors == 1)
        let runItems = try await r.service.runItems(projectID: project, id: runID)
        let failed = try #require(runItems.first { $0.seq == 3 })
        #expect(failed.state == "done" && failed.results.isEmpty)
        #expect(failed.error?.contains("claimed 3 times") == true, "\(failed.error ?? "")")
        #expect(runItems.filter { $0.seq != 3 }.allSatisfy { $0.error == nil && $0.results.count == 1 })
        let claims = try await r.metadata.read { c in
            try c.query("SELECT seq, claims FROM eval_run_items WHERE run_id = ?", [.text(runID)]).map { (Int($0[0].int64 ?? 0), $0[1].int64 ?? 0) }
        }
        #expect(claims.first { $0.0 == 3 }?.1 == 3, "not claimed a fourth time")
        #expect(claims.first { $0.0 == 4 }?.1 == 2)
        #expect(claims.filter { $0.0 != 3 && $0.0 != 4 }.allSatisfy { $0.1 == 1 })
        await r.stop()
    }

    /// The real thing: `evalforge backend` killed with SIGKILL each time it evaluates the poison
    /// item (an http target that never answers it). The item is tried three times, then fails
    /// with its reason; every other item is evaluated; the run completes.
    @Test func killDashNineWhileEvaluatingOneItem() async throws {
        let binary = TestProcesses.evalforge
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let arrivals = Shared(0)
        let release = Shared(false)  // ends the poison handlers when the test is done
        let requests = Shared<[String: Int]>([:])
        let router = Router()
        router.post("/answer") { req, _ -> Response in
            let body = String(buffer: try await req.body.collect(upTo: 1 << 20))
            let input = JSON.parse(body)?["input"]?.stringValue ?? ""
            requests.withLock { $0[input, default: 0] += 1 }
            if body.contains("poison") {
                arrivals.withLock { $0 += 1 }
                let end = ContinuousClock.now + .seconds(300)
                while !release.withLock({ $0 }), ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(50)) }
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: .init(string: #"{"output": "fine"}"#)))
        }
        let target = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger)
        try await target.test(.live) { client in
            let targetPort = try #require(client.port)
            defer { release.withLock { $0 = true } }
            let dir = tempDir()
            var port = TestProcesses.freeLoopbackPort()
            var backend = try Self.startBackend(binary, port: port, dir: dir)
            defer { if backend.isRunning { kill(backend.processIdentifier, SIGKILL); backend.waitUntilExit() } }
            try #require(await TestProcesses.waitHealthy(port))
            #expect(try await call(port, "POST", "/api/evaluators", #"{"name": "len", "type": "length", "max": 1000}"#).status == 201)
            let items = (0..<6).map { #"{"input": "\#($0 == 2 ? "poison" : "question \($0)")"}"# }.joined(separator: ",")
            let ds = try await call(port, "POST", "/api/datasets", #"{"name": "d", "items": [\#(items)]}"#)
            let dsID = try #require(ds.json?["id"]?.stringValue)
            let exp = try await call(port, "POST", "/api/experiments", #"{"datasetId": "\#(dsID)", "evaluators": ["len"], "concurrency": 2, "target": {"type": "http", "url": "http://127.0.0.1:\#(targetPort)/answer", "timeoutMs": 600000}}"#)
            let runID = try #require(exp.json?["run"]?["id"]?.stringValue, "\(exp.body)")

            for attempt in 1...3 {
                // Wait until the backend evaluates the poison item, then kill it.
                let deadline = ContinuousClock.now + .seconds(60)
                while arrivals.withLock({ $0 }) < attempt, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                try #require(arrivals.withLock { $0 } == attempt, "attempt \(attempt): the poison item was not evaluated")
                // Results finished meanwhile are committed within 250 ms although the poison item hangs.
                try await Task.sleep(for: .milliseconds(600))
                kill(backend.processIdentifier, SIGKILL)
                backend.waitUntilExit()
                port = TestProcesses.freeLoopbackPort()
                backend = try Self.startBackend(binary, port: port, dir: dir)
                try #require(await TestProcesses.waitHealthy(port))
            }
            // After the third kill the item is not claimed again: the run completes.
            var run = JSON.null
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                run = try await call(port, "GET", "/api/runs/\(runID)").json ?? .null
                if run["status"] == "completed" || run["status"] == "failed" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(run["status"] == "completed", "\(run.text.prefix(400))")
            #expect(run["done"] == 6 && run["errors"] == 1, "\(run.text.prefix(400))")
            #expect(arrivals.withLock { $0 } == 3)
            // Every other item was evaluated once: committed before the first kill, never repeated.
            let counts = requests.withLock { $0 }
            #expect(counts.filter { $0.key != "poison" }.count == 5 && counts.filter { $0.key != "poison" }.allSatisfy { $0.value == 1 }, "\(counts)")
            let runItems = try #require(try await call(port, "GET", "/api/runs/\(runID)/items").json?.arrayValue)
            #expect(runItems.count == 6)
            for item in runItems {
                if item["seq"] == 3 {
                    #expect(item["error"]?.stringValue?.contains("claimed 3 times") == true, "\(item.text.prefix(300))")
                } else {
                    #expect(item["error"] == nil || item["error"] == .null, "\(item.text.prefix(300))")
                    #expect(item["output"] == "fine")
                }
            }
        }
    }

    static func startBackend(_ binary: String, port: Int, dir: String) throws -> ChildProcess {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["backend", "--operator-port", "0", "--port", "\(port)", "--data-dir", dir, "--api-key", LiveBackend.apiKey, "--log-level", "error", "--outbound-allow", OutboundPolicy.testLoopbackList]
        // The killed process's claims run out after 3 s (the restarted one takes them up then).
        var environment = ProcessInfo.processInfo.environment
        environment["EVALFORGE_WORK_LEASE_S"] = "3"
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }


}
