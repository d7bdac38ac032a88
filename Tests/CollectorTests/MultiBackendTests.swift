import EvalForgeCore
import EvalForgeOTLP
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Collector

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Issue 16 §4: a collector with several backends health-checks them and sends each batch to a
/// healthy one, failing over on transport errors and 5xx; other answers keep their meaning.
@Suite("Collector with several backends")
struct MultiBackendTests {
    @Test("backend URLs: a YAML list, one URL, a comma-separated EVALFORGE_BACKEND_URL; bad lists are refused by name")
    func configuration() throws {
        var c = CollectorConfiguration.default
        try c.apply(yaml: "forward: {backend_urls: ['http://a:3000', 'http://b:3000/'], health_interval_ms: 250, health_timeout_ms: 100}")
        #expect(c.backendURLs == ["http://a:3000", "http://b:3000/"] && c.healthInterval == .milliseconds(250) && c.healthTimeout == .milliseconds(100))
        try c.apply(yaml: "forward: {backend_url: 'http://only:3000'}")
        #expect(c.backendURLs == ["http://only:3000"] && c.backendURL == "http://only:3000")
        try c.apply(environment: ["EVALFORGE_BACKEND_URL": "http://x:1, http://y:2,,"])
        #expect(c.backendURLs == ["http://x:1", "http://y:2"])

        func error(_ yaml: String) -> String {
            var c = CollectorConfiguration.default
            do { try c.apply(yaml: yaml); return "" } catch { return "\(error)" }
        }
        #expect(error("forward: {backend_url: 'http://a', backend_urls: ['http://b']}").contains("both set"))
        #expect(error("forward: {backend_urls: []}").contains("forward.backend_urls"))
        #expect(error("forward: {backend_urls: ['http://a', 'ftp://b']}").contains("ftp://b"))
        #expect(error("forward: {backend_urls: ['http://a:1', 'http://a:1/']}").contains("twice"))
        #expect(error("forward: {backend_urls: 'http://a'}").contains("list"))
        #expect(error("forward: {health_interval_ms: 0}").contains("forward.health_interval_ms"))
        var e = CollectorConfiguration.default
        #expect(throws: CollectorError.self) { try e.apply(environment: ["EVALFORGE_BACKEND_URL": " , "]) }
        // A configuration built in code skips validate(): the pipeline refuses an empty list rather than trap.
        var empty = CollectorPipelineTests.config()
        empty.backendURLs = []
        #expect(throws: CollectorError.self) { _ = try CollectorPipeline(configuration: empty) }
    }

    /// Two stand-in backends and a collector forwarding to both.
    static func withTwoBackends(
        _ a: BackendStandIn, _ b: BackendStandIn,
        aURL: (@Sendable (Int) -> String)? = nil,
        _ edit: @escaping @Sendable (inout CollectorConfiguration) -> Void = { _ in },
        _ body: @Sendable (_ client: OTLPClient, _ pipeline: CollectorPipeline) async throws -> Void
    ) async throws {
        try await a.buildApplication().test(.live) { aClient in
            let aPort = try #require(aClient.port)
            try await b.buildApplication().test(.live) { bClient in
                let bPort = try #require(bClient.port)
                var c = CollectorPipelineTests.config()
                c.port = 0
                c.backendURLs = [aURL?(aPort) ?? "http://127.0.0.1:\(aPort)", "http://127.0.0.1:\(bPort)"]
                c.flushInterval = .milliseconds(50)
                c.maxBatchSpans = 20
                c.initialBackoff = .milliseconds(20)
                c.maxBackoff = .milliseconds(200)
                c.healthInterval = .milliseconds(100)
                c.healthTimeout = .seconds(10)  // generous: a check that times out under load would move batches
                edit(&c)
                let (app, pipeline) = try CollectorApp.build(configuration: c)
                try await app.test(.live) { collectorClient in
                    let port = try #require(collectorClient.port)
                    try await body(OTLPClient(url: "http://127.0.0.1:\(port)"), pipeline)
                }
            }
        }
    }

    /// Sends `requests` requests of 10 spans each; returns the spans sent.
    static func send(_ client: OTLPClient, requests: Int) async throws -> Int {
        for _ in 0..<requests {
            let t = SpanFactory.traceID()
            #expect(try await client.post(SpanFactory.request((1...10).map { SpanFactory.span(trace: t, id: UInt64($0)) })) == 200)
        }
        return requests * 10
    }

    static func waitUntil(_ timeout: Duration = .seconds(60), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    @Test("batches are spread over healthy backends; a backend that is not ready gets none, and gets batches again once ready")
    func notReadyBackendIsSkipped() async throws {
        let a = BackendStandIn(), b = BackendStandIn()
        a.down.store(true, ordering: .relaxed)
        try await Self.withTwoBackends(a, b) { client, pipeline in
            #expect(await Self.waitUntil { pipeline.statistics.backends.first?.healthy == false }, "A's /readyz answers 503 but A is still marked healthy")
            let requestsToA = a.requests.load(ordering: .relaxed)
            var sent = try await Self.send(client, requests: 10)
            #expect(await b.waitFor(spans: sent) == sent)
            #expect(a.requests.load(ordering: .relaxed) == requestsToA, "a batch went to the backend that is not ready")
            let s = pipeline.statistics
            let healthy = s.backends.map(\.healthy)
            #expect(healthy == [false, true])
            #expect(s.backends[0].reason?.contains("503") == true, "\(s.backends)")
            #expect(s.status == "ok", "one backend down is not degraded forwarding: \(s)")

            // A is ready again: after its next check it takes batches again.
            a.down.store(false, ordering: .relaxed)
            #expect(await Self.waitUntil { pipeline.statistics.backends.allSatisfy(\.healthy) })
            let deadline = ContinuousClock.now + .seconds(60)
            while a.spanCount == 0, ContinuousClock.now < deadline {
                sent += try await Self.send(client, requests: 3)
                try await Task.sleep(for: .milliseconds(60))
            }
            #expect(a.spanCount > 0, "the recovered backend got no batches")
            #expect(await Self.waitUntil { a.spanCount + b.spanCount >= sent && pipeline.statistics.queueDepthRecords == 0 })
            #expect(a.spanCount + b.spanCount == sent, "\(a.spanCount) + \(b.spanCount) spans stored, \(sent) sent")
            #expect(a.uniqueSpanIDs.isDisjoint(with: b.uniqueSpanIDs), "a batch was stored by both backends")
        }
    }

    @Test("a backend nobody answers on gets no batches: marked unhealthy with the reason, everything goes to the other at once")
    func deadBackendIsSkipped() async throws {
        let a = BackendStandIn(), b = BackendStandIn()
        // Nothing listens on the discard port (as in the receiver tests); a port that was free a
        // moment ago could be taken by another test's server meanwhile.
        let deadPort = 9
        try await Self.withTwoBackends(a, b, aURL: { _ in "http://127.0.0.1:\(deadPort)" }, { c in
            c.healthInterval = .seconds(600)
            c.initialBackoff = .seconds(30)  // a backoff would show as a stall
            c.maxBackoff = .seconds(30)
        }) { client, pipeline in
            let started = ContinuousClock.now
            let sent = try await Self.send(client, requests: 5)
            #expect(await b.waitFor(spans: sent, timeout: .seconds(20)) == sent)
            #expect(ContinuousClock.now - started < .seconds(20), "the batches waited for a backoff instead of going to the live backend")
            let s = pipeline.statistics
            #expect(s.backends[0].healthy == false && s.backends[0].reason?.contains("\(deadPort)") == true, "\(s.backends)")
            #expect(s.status == "ok")
        }
    }

    @Test("a 5xx from a backend that passes its readiness check fails the batch over to another at once, counted")
    func serverErrorFailsOver() async throws {
        let a = BackendStandIn(), b = BackendStandIn()
        a.forcedStatus.store(503, ordering: .relaxed)  // batches get 503, /readyz still 200
        try await Self.withTwoBackends(a, b, { c in
            c.healthInterval = .milliseconds(50)  // A keeps coming back as healthy, and keeps failing
            c.initialBackoff = .seconds(30)  // a backoff would show as a stall
            c.maxBackoff = .seconds(30)
        }) { client, pipeline in
            let started = ContinuousClock.now
            let sent = try await Self.send(client, requests: 10)
            #expect(await b.waitFor(spans: sent, timeout: .seconds(20)) == sent)
            #expect(ContinuousClock.now - started < .seconds(20), "a batch waited for a backoff instead of failing over")
            #expect(a.requests.load(ordering: .relaxed) >= 1, "no batch was offered to A: the failover was not exercised")
            let s = pipeline.statistics
            #expect(s.failovers >= 1 && s.failovers <= a.requests.load(ordering: .relaxed), "\(s.failovers) failovers, \(a.requests.load(ordering: .relaxed)) requests to A")
            #expect(a.spanCount == 0 && b.uniqueSpanIDs.count == sent)
            #expect(s.status == "ok", "one failing backend is not degraded forwarding: \(s)")
        }
    }

    @Test("400 from one backend dead-letters the batch; it is not sent to another")
    func malformedIsNotRetriedElsewhere() async throws {
        let a = BackendStandIn(), b = BackendStandIn()
        a.forcedStatus.store(400, ordering: .relaxed)
        try await Self.withTwoBackends(a, b, { c in
            c.healthInterval = .seconds(600)
            c.maxBatchSpans = 1000
            c.flushInterval = .milliseconds(300)
        }) { client, pipeline in
            // One batch, and round robin sends the first batch to the first backend.
            _ = try await Self.send(client, requests: 1)
            #expect(await Self.waitUntil { pipeline.statistics.deadLetters == 1 })
            try await Task.sleep(for: .milliseconds(300))
            #expect(b.requests.load(ordering: .relaxed) == 0, "the malformed batch was sent to the other backend")
            #expect(a.requests.load(ordering: .relaxed) == 1)
            #expect(pipeline.statistics.backends.allSatisfy { $0.healthy }, "a 400 says nothing about the backend's health: \(pipeline.statistics.backends)")
        }
    }

    @Test("collector /readyz answers 503 naming the full WAL while spans would be refused; /healthz stays 200")
    func readinessWhenTheQueueIsFull() async throws {
        let backend = BackendStandIn()
        backend.down.store(true, ordering: .relaxed)  // nothing is released
        try await ForwardingTests.withStack(backend: backend, { c in c.queueMaxBytes = 1 }) { url, pipeline in
            let (_, before) = try await URLSession.shared.data(from: URL(string: url + "/readyz")!)
            #expect((before as? HTTPURLResponse)?.statusCode == 200)
            _ = try await Self.send(OTLPClient(url: url), requests: 1)  // accepted: the WAL was below its cap
            let (data, after) = try await URLSession.shared.data(from: URL(string: url + "/readyz")!)
            #expect((after as? HTTPURLResponse)?.statusCode == 503)
            #expect(String(decoding: data, as: UTF8.self).contains("\"not ready\""))
            // The reason is in the statistics the operator listener serves (ReceiverTests covers that route).
            let s = pipeline.statistics
            #expect(!s.ready && s.notReadyReason?.contains("write-ahead log is full") == true, "\(s)")
            let (_, health) = try await URLSession.shared.data(from: URL(string: url + "/healthz")!)
            #expect((health as? HTTPURLResponse)?.statusCode == 200)
        }
    }

    @Test("shutdown while every backend fails: the forwarder stops (no spin on a cancelled task) and the batch stays queued")
    func shutdownWhileBackendsFail() async throws {
        let a = BackendStandIn(), b = BackendStandIn()
        a.down.store(true, ordering: .relaxed)
        b.down.store(true, ordering: .relaxed)
        let queue = CollectorPipelineTests.tempDir()
        let started = ContinuousClock.now
        try await Self.withTwoBackends(a, b, { c in
            c.queueDirectory = queue
            c.shutdownTimeout = .milliseconds(200)
        }) { client, pipeline in
            _ = try await Self.send(client, requests: 1)
            #expect(await Self.waitUntil { pipeline.statistics.forwardFailures > 0 })
        }
        // Before the fix the delivery loop of a cancelled task retried without sleeping (tens of
        // thousands of attempts a second) and the application never finished shutting down.
        #expect(ContinuousClock.now - started < .seconds(60))
        let requests = a.requests.load(ordering: .relaxed) + b.requests.load(ordering: .relaxed)
        #expect(requests < 1_000, "\(requests) requests: the forwarder spun")
        #expect(a.spanCount == 0 && b.spanCount == 0)
    }

    @Test("/healthz and /readyz carry the version, the formats and the backends")
    func healthCarriesVersion() async throws {
        let a = BackendStandIn(), b = BackendStandIn()
        try await Self.withTwoBackends(a, b) { client, pipeline in
            for path in ["/healthz", "/readyz"] {
                let (data, response) = try await URLSession.shared.data(from: URL(string: client.url + path)!)
                #expect((response as? HTTPURLResponse)?.statusCode == 200)
                #expect(String(decoding: data, as: UTF8.self).contains("\"version\":\"\(EvalForgeVersion.release)\""))
            }
            // The details the operator listener serves (ReceiverTests covers that route).
            let s = pipeline.statistics
            #expect(s.version == EvalForgeVersion.release && s.ready)
            #expect(s.schema == ["forward_protocol": EvalForgeVersion.forwardProtocol, "queue_format": EvalForgeVersion.collectorQueueFormat])
            #expect(s.backends.count == 2)
        }
    }
}
