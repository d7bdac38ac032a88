import AsyncHTTPClient
import EvalForgeAsyncHTTPClient
import EvalForgeSDK
import Foundation
import NIOCore

/// The AsyncHTTPClient transport's figures: the time one chat completion takes through
/// `LLMAsyncHTTPClient.send` against the same call through bare AsyncHTTPClient (same HTTPClient,
/// same loopback stand-in answering a fixed completion, same run, interleaved), and the fraction of
/// its spans delivered to the OTLP receiver when calls are made at `rate` per second.
struct TransportFigures: Sendable {
    var bareMicros: Double
    var instrumentedMicros: Double
    var overheadMicros: Double { instrumentedMicros - bareMicros }
    /// Spans this pipeline recorded (one per call: warm-up, rounds and the rate run).
    var recorded: Int
    var achievedRate: Double
}

func measureAsyncHTTPClientTransport(sinkBase: String, rounds: Int, rate: Int, seconds: Int) async throws -> TransportFigures {
    var c = EvalForge.Configuration.default
    c.exporter.endpoint = sinkBase + "/ahc/v1/traces"
    let pipeline = EvalForge.Pipeline(configuration: c)
    let runner = Task { try await pipeline.run() }
    let http = LLMAsyncHTTPClient.sharedHTTPClient
    let client = try LLMAsyncHTTPClient(api: .openAIChatCompletions, baseURL: sinkBase + "/llm/v1", apiKey: "k", httpClient: http, pipeline: pipeline)
    let body = Data(#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":20}"#.utf8)

    func bare() async throws {
        var request = HTTPClientRequest(url: sinkBase + "/llm/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await http.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
    }
    func instrumented() async throws { _ = try await client.send(body) }

    // Warm-up, then interleaved rounds so drift hits both alike.
    for _ in 0..<200 {
        try await bare()
        try await instrumented()
    }
    var bareTimes: [Double] = []
    var oursTimes: [Double] = []
    for _ in 0..<rounds {
        var t = monotonicNanos()
        try await bare()
        bareTimes.append(Double(monotonicNanos() - t) / 1000)
        t = monotonicNanos()
        try await instrumented()
        oursTimes.append(Double(monotonicNanos() - t) / 1000)
    }
    func median(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.sorted()[v.count / 2] }

    // Delivery: `rate` calls per second from 64 workers for `seconds`.
    let deadline = monotonicNanos() + UInt64(seconds) * 1_000_000_000
    let workers = 64
    let perWorkerInterval = UInt64(1_000_000_000) * UInt64(workers) / UInt64(max(1, rate))
    let start = monotonicNanos()
    let calls = try await withThrowingTaskGroup(of: Int.self) { group in
        for w in 0..<workers {
            group.addTask {
                var n = 0
                var next = start + UInt64(w) * perWorkerInterval / UInt64(workers)
                while monotonicNanos() < deadline {
                    let now = monotonicNanos()
                    if next > now { try await Task.sleep(for: .nanoseconds(Int64(next - now))) }
                    next += perWorkerInterval
                    _ = try? await client.send(body)
                    n += 1
                }
                return n
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = Double(monotonicNanos() - start) / 1e9
    await pipeline.shutdown()
    runner.cancel()
    let recorded = pipeline.statistics.recorded  // every call of this pipeline, warm-up and rounds included
    return TransportFigures(
        bareMicros: median(bareTimes), instrumentedMicros: median(oursTimes),
        recorded: recorded, achievedRate: Double(calls) / elapsed)
}
