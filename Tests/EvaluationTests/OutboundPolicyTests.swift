import AsyncHTTPClient
import Backend
import EvalForgeStore
import Foundation
import Hummingbird
import HummingbirdTesting
import MockLLM
import NIOCore
import Synchronization
import Testing
@testable import Evaluation

/// The outbound policy (SSRF): URLs a project chooses are resolved once, every address is checked,
/// the connection goes to the checked address, redirects are not followed. Real getaddrinfo, real
/// HTTP on loopback (the allow-list lets the tests reach their own servers).
@Suite(.serialized) struct OutboundPolicyTests {
    let project = "p-outbound"

    /// Every spelling of a loopback, metadata or otherwise non-public address that an attacker
    /// would try; decimal, octal, hex and short IPv4 forms are the addresses inet_aton reads.
    static let refused = [
        "http://127.0.0.1:9/", "http://localhost:9/", "http://localhost.:9/", "http://LocalHost:9/x", "http://api.localhost:9/",
        "http://[::1]:9/", "http://[::ffff:127.0.0.1]:9/", "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:9/", "http://[::]:9/",
        "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://0x7f000001/", "http://127.1/", "http://017700000001/",
        "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/", "http://100.64.0.1/",
        "http://[fe80::1]/", "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://224.0.0.1/", "http://[ff02::1]/",
        "http://255.255.255.255/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::]/",
        "https://127.0.0.1/", "http://user:pw@127.0.0.1:9/",
    ]

    @Test(arguments: refused) func nonPublicAddressesAreRefused(_ url: String) async throws {
        do {
            let c = try await OutboundPolicy.publicOnly.check(url: url, field: "webhook.url")
            Issue.record("\(url) was accepted as \(c.address)")
        } catch {
            #expect(error.isRefused, "\(url): \(error.message)")
            #expect(error.message.hasPrefix("webhook.url: "))
            #expect(error.message.contains("--outbound-allow"), "\(error.message)")
        }
    }

    @Test func numericFormsAreTheAddressesTheyEncode() async throws {
        let policy = try OutboundPolicy(allowList: "127.0.0.1")
        for url in ["http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://127.1/", "http://localhost./"] {
            let c = try await policy.check(url: url, field: "target.url")
            #expect(c.address == "127.0.0.1", "\(url) → \(c.address)")
        }
        // 0177.0.0.1 is octal: not 177.0.0.1.
        let eight = try await OutboundPolicy.publicOnly.check(url: "http://8.8.8.8:443/", field: "f")
        #expect(eight.address == "8.8.8.8" && eight.port == 443)
        let publicV6 = try await OutboundPolicy.publicOnly.check(url: "https://[2606:4700::1111]/", field: "f")
        #expect(publicV6.address == "2606:4700::1111" && publicV6.port == 443)
    }

    @Test func allowListEntries() async throws {
        let policy = try OutboundPolicy(allowList: " 10.0.0.0/8 , fd00::/8, [::1]:8080, llm.internal:8000, 192.168.1.5, localhost:11434 ")
        #expect(try await policy.check(url: "http://10.200.1.1:1234/", field: "f").address == "10.200.1.1")
        #expect(try await policy.check(url: "http://[fd00::5]/", field: "f").address == "fd00::5")
        #expect(try await policy.check(url: "http://[::1]:8080/", field: "f").address == "::1")
        #expect(try await policy.check(url: "http://192.168.1.5:99/", field: "f").address == "192.168.1.5")
        #expect(try await policy.check(url: "http://localhost:11434/v1", field: "f").address == "127.0.0.1")
        for url in ["http://[::1]:8081/", "http://192.168.1.6/", "http://localhost:11435/", "http://127.0.0.1:11434/", "http://11.0.0.1.example.invalid/"] {
            await #expect(throws: OutboundError.self, "\(url)") { _ = try await policy.check(url: url, field: "f") }
        }
        for bad in ["10.0.0.0/33", "llm:99999", "[::1", "[::1]x", "a b", "::1/129", "300.1.1.1/8", "host:"] {
            #expect(throws: OutboundError.self, "\(bad)") { _ = try OutboundPolicy(allowList: bad) }
        }
    }

    /// The ClickHouse store and the backend's listener stay refused when a network entry covers
    /// their address; only an entry naming the exact port opens them.
    @Test func storageAndOwnListenersAreProtected() async throws {
        let chURL = ProcessInfo.processInfo.environment["EVALFORGE_TEST_CLICKHOUSE_URL"] ?? "http://127.0.0.1:18124"
        let chPort = try #require(URL(string: chURL)?.port)
        var configuration = BackendConfiguration(host: "0.0.0.0", port: 3999, clickHouse: ClickHouseConfiguration(url: chURL), outboundAllowList: "127.0.0.0/8,::1,localhost")
        let policy = try configuration.outboundPolicy()
        for url in ["http://127.0.0.1:\(chPort)/?query=SELECT%201", "http://localhost:\(chPort)/", "http://127.0.0.1:3999/api/traces", "http://localhost.:3999/"] {
            do {
                _ = try await policy.check(url: url, field: "target.url")
                Issue.record("\(url) was accepted")
            } catch {
                #expect(error.isRefused)
                #expect(error.message.contains("ClickHouse") || error.message.contains("listener"), "\(error.message)")
            }
        }
        #expect(try await policy.check(url: "http://127.0.0.1:\(chPort + 1)/", field: "f").address == "127.0.0.1")
        configuration.outboundAllowList = "127.0.0.1:\(chPort)"
        #expect(try await configuration.outboundPolicy().check(url: "http://127.0.0.1:\(chPort)/", field: "f").address == "127.0.0.1")
    }

    /// An `http` experiment target aimed at the ClickHouse HTTP port (which would answer with every
    /// project's spans) is refused when the experiment is created, loopback allow-list or not.
    @Test func httpTargetAtClickHouseIsRefused() async throws {
        let chURL = ProcessInfo.processInfo.environment["EVALFORGE_TEST_CLICKHOUSE_URL"] ?? "http://127.0.0.1:18124"
        let chPort = try #require(URL(string: chURL)?.port)
        let policy = try BackendConfiguration(clickHouse: ClickHouseConfiguration(url: chURL), outboundAllowList: OutboundPolicy.testLoopbackList).outboundPolicy()
        let r = try await Runner(dir: tempDir(), settings: EvaluationSettings(outbound: policy))
        let ev = r.service
        let ds = try await ev.createDataset(projectID: project, name: "d", items: items(2))
        _ = try await ev.putEvaluator(projectID: project, .init(name: "len", type: "length", max: 1000))
        for url in ["http://127.0.0.1:\(chPort)/?query=SELECT%20*%20FROM%20evalforge.spans%20FORMAT%20JSON", "http://localhost:\(chPort)/"] {
            do {
                _ = try await ev.createExperiment(projectID: project, name: "steal", datasetID: ds.id, target: Target(type: "http", url: url), evaluators: ["len"], concurrency: 1)
                Issue.record("\(url) was accepted")
            } catch let e as EvaluationError {
                #expect(e.isInvalidArgument && e.message.hasPrefix("target.url: ") && e.message.contains("ClickHouse"), "\(e)")
            }
        }
        #expect(try await ev.listExperiments(projectID: project).isEmpty)
        await r.stop()
    }

    /// Saving a webhook, target or provider URL the policy refuses answers 400 naming the field.
    @Test func configurationTimeRefusalsOverHTTP() async throws {
        try await LiveBackend.run(allowList: "") { port, _ in
            for url in ["http://169.254.169.254/latest/meta-data/", "http://2130706433:9/", "http://[::ffff:127.0.0.1]:9/"] {
                let a = try await call(port, "POST", "/api/webhooks", #"{"url":"\#(url)","events":[]}"#)
                #expect(a.status == 400, "\(url): \(a.status) \(a.body)")
                #expect(a.error.hasPrefix("url: "), "\(a.body)")
            }
            let p2 = try await call(port, "POST", "/api/providers", #"{"name":"local","kind":"openai","baseURL":"http://localhost:8080/v1","model":"m"}"#)
            #expect(p2.status == 400, "\(p2.status) \(p2.body)")
            #expect(p2.error.contains("provider.baseURL"), "\(p2.body)")
            // Provider secrets are answered as hints only: the API key and every header value.
            let saved = try await call(port, "POST", "/api/providers", #"{"name":"pub","kind":"openai","baseURL":"https://8.8.8.8/v1","model":"m","apiKey":"sk-live-0123456789abcd","headers":{"OpenAI-Organization":"org-secret-value-42","X-Short":"xyz"}}"#)
            #expect(saved.status == 201, "\(saved.body)")
            let providers = try await call(port, "GET", "/api/providers")
            #expect(providers.status == 200 && !providers.body.contains("sk-live-0123456789") && !providers.body.contains("org-secret") && !providers.body.contains("xyz"), "\(providers.body)")
            #expect(providers.body.contains("••••abcd") && providers.body.contains("••••e-42"), "\(providers.body)")
            let list = try await call(port, "GET", "/api/webhooks")
            #expect(list.status == 200 && !list.body.contains("169.254"))
        }
    }

    /// URLs saved while allowed (or before an upgrade) are checked again at each connection: the
    /// webhook, the judge provider and the http target all fail with the reason, nothing is sent.
    @Test func everyConnectionIsCheckedAgain() async throws {
        let hits = Mutex(0)
        let endpoint = Router()
        endpoint.post("/answer") { _, _ -> Response in
            hits.withLock { $0 += 1 }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"output":"four"}"#)))
        }
        let receiver = Receiver(secret: "s")
        try await Application(router: endpoint, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger).test(.live) { client in
            try await withMockLLM { llmPort in
                try await receiver.run { hookPort in
                    let targetPort = try #require(client.port)
                    let dir = tempDir()
                    var r = try await Runner(dir: dir)
                    var ev = r.service
                    _ = try await ev.putProvider(projectID: project, ProviderConfig(name: "judge", kind: .openai, baseURL: "http://localhost:\(llmPort)/v1", apiKey: "k", model: "gpt-4o-mini", maxRetries: 3, backoffMs: 10))
                    _ = try await ev.putEvaluator(projectID: project, .init(name: "j", type: "judge", rubric: .toxicity, provider: "judge"))
                    let hook = try await ev.createWebhook(projectID: project, url: "http://127.0.0.1:\(hookPort)/hook", secret: "s", events: [])
                    let ds = try await ev.createDataset(projectID: project, name: "d", items: items(2))
                    let exp = try await ev.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "http", url: "http://127.0.0.1:\(targetPort)/answer"), evaluators: ["j"], concurrency: 1)
                    // Allowed: everything reaches its server (the name `localhost` goes to its checked address).
                    let ok = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
                    #expect(ok.status == .completed && ok.errors == 0, "\(ok.error)")
                    #expect(hits.withLock { $0 } == 2)
                    #expect(try await ev.testWebhook(projectID: project, id: hook.id).status == "delivered")
                    await r.stop()

                    // The operator removes the allow-list: the stored URLs are refused at connection time.
                    let attemptsBefore = receiver.snapshot.attempts
                    r = try await Runner(dir: dir, settings: EvaluationSettings(webhooks: .init(retrySchedule: [], timeout: .milliseconds(400))))
                    ev = r.service
                    let refused = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
                    #expect(refused.status == .failed)
                    let results = try await ev.runItems(projectID: project, id: refused.id)
                    #expect(results.count == 2)
                    #expect(results.allSatisfy { ($0.error ?? "").contains("refused by the outbound policy") && ($0.error ?? "").contains("target.url") }, "\(results.map { $0.error ?? "" })")
                    #expect(hits.withLock { $0 } == 2)
                    let d = try await ev.testWebhook(projectID: project, id: hook.id)
                    #expect(d.status == "failed" && d.lastError.hasPrefix("refused: webhook.url: "), "\(d.lastError)")
                    #expect(receiver.snapshot.attempts == attemptsBefore)
                    // The judge: refused once, not retried.
                    let judged = try await ev.evaluate(projectID: project, evaluators: ["j"], specs: [], inputs: [EvaluationInput(input: "hi", output: "hello")])
                    let judgeError = judged.results.first?.first?.error ?? ""
                    #expect(judgeError.contains("refused by the outbound policy") && judgeError.contains("loopback"), "\(judgeError)")
                    #expect(judged.results.first?.first?.calls.first?.attempts == 1)
                    await r.stop()
                }
            }
        }
    }

    /// A checked, allowed host answering 302 to a refused address: the redirect is not followed.
    @Test func redirectsAreNotFollowed() async throws {
        let receiver = Receiver(secret: "s")
        try await receiver.run { hookPort in
            let bouncer = Router()
            bouncer.post("/hook") { _, _ -> Response in
                Response(status: .found, headers: [.location: "http://127.0.0.1:\(hookPort)/hook"])
            }
            bouncer.post("/answer") { _, _ -> Response in
                Response(status: .temporaryRedirect, headers: [.location: "http://169.254.169.254/latest/meta-data/"])
            }
            try await Application(router: bouncer, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger).test(.live) { client in
                let bouncePort = try #require(client.port)
                // Only the bouncer is allowed; the receiver's port is not.
                let policy = try OutboundPolicy(allowList: "127.0.0.1:\(bouncePort)")
                let r = try await Runner(dir: tempDir(), settings: EvaluationSettings(webhooks: .init(retrySchedule: [], timeout: .milliseconds(2000)), outbound: policy))
                let ev = r.service
                await #expect(throws: EvaluationError.self) { _ = try await ev.createWebhook(projectID: project, url: "http://127.0.0.1:\(hookPort)/hook", secret: "s", events: []) }
                let hook = try await ev.createWebhook(projectID: project, url: "http://127.0.0.1:\(bouncePort)/hook", secret: "s", events: [])
                let d = try await ev.testWebhook(projectID: project, id: hook.id)
                #expect(d.status == "failed" && d.lastError.contains("302") && d.lastError.contains("redirects are not followed"), "\(d.lastError)")
                #expect(receiver.snapshot.attempts == 0)

                let ds = try await ev.createDataset(projectID: project, name: "d", items: items(1))
                _ = try await ev.putEvaluator(projectID: project, .init(name: "len", type: "length", max: 1000))
                let exp = try await ev.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "http", url: "http://127.0.0.1:\(bouncePort)/answer"), evaluators: ["len"], concurrency: 1)
                let run = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
                let item = try #require(try await ev.runItems(projectID: project, id: run.id).first)
                #expect((item.error ?? "").contains("307") && (item.error ?? "").contains("redirects are not followed"), "\(item.error ?? "")")
                await r.stop()
            }
        }
    }

    /// Only the target's declared output is kept; error texts carry a bounded excerpt.
    @Test func targetAnswersAreBounded() async throws {
        let endpoint = Router()
        endpoint.post("/object") { _, _ -> Response in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"rows":[{"secret":"every project's spans"}]}"#)))
        }
        endpoint.post("/error") { _, _ -> Response in
            Response(status: .internalServerError, body: .init(byteBuffer: ByteBuffer(string: String(repeating: "x", count: 50_000))))
        }
        try await Application(router: endpoint, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger).test(.live) { client in
            let port = try #require(client.port)
            let r = try await Runner(dir: tempDir())
            let ev = r.service
            let ds = try await ev.createDataset(projectID: project, name: "d", items: items(1))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "len", type: "length", max: 1000))
            for (path, want) in [("object", "without an 'output' field"), ("error", "answered 500")] {
                let exp = try await ev.createExperiment(projectID: project, name: path, datasetID: ds.id, target: Target(type: "http", url: "http://127.0.0.1:\(port)/\(path)"), evaluators: ["len"], concurrency: 1)
                let run = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
                let item = try #require(try await ev.runItems(projectID: project, id: run.id).first)
                let error = item.error ?? ""
                #expect(error.contains(want), "\(error)")
                #expect(!error.contains("every project") && error.utf8.count < 400, "\(error.utf8.count) bytes")
                #expect(item.output == nil || item.output == "")
            }
            await r.stop()
        }
    }

    /// An http URL is sent to the checked IP with the original Host header (virtual hosts keep working).
    @Test func hostHeaderIsTheOriginalName() async throws {
        let endpoint = Router()
        endpoint.post("/answer") { req, _ -> Response in
            let host = req.head.authority ?? ""
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"output":"\#(host)"}"#)))
        }
        try await Application(router: endpoint, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: testLogger).test(.live) { client in
            let port = try #require(client.port)
            let r = try await Runner(dir: tempDir(), settings: EvaluationSettings(outbound: try OutboundPolicy(allowList: "localhost:\(port)")))
            let ev = r.service
            let ds = try await ev.createDataset(projectID: project, name: "d", items: items(1))
            _ = try await ev.putEvaluator(projectID: project, .init(name: "len", type: "length", max: 1000))
            let exp = try await ev.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "http", url: "http://localhost:\(port)/answer?x=1#frag"), evaluators: ["len"], concurrency: 1)
            let run = try await r.waitForRun(project, try await ev.startRun(projectID: project, experimentID: exp.id).id)
            let item = try #require(try await ev.runItems(projectID: project, id: run.id).first)
            #expect(item.output == "localhost:\(port)", "\(item.output ?? "") \(item.error ?? "")")
            await r.stop()
        }
    }
}
