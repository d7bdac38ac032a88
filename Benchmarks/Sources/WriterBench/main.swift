// The writer benchmark: the same ~1.3 KB span rows (with prompt and completion text) inserted into the
// same ClickHouse server, same schema, same batch size, once by EvalForge's writer (ClickHouseStore over
// HTTP RowBinary) and once by the server's own clickhouse-client (native protocol, fed RowBinary).
// Prints one JSON line last. Usage: WriterBench --url http://127.0.0.1:18133 --port 19133 [--rows N] [--batch N]
import EvalForgeModel
import EvalForgeStore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

func argument(_ name: String, _ fallback: String) -> String {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: name), i + 1 < a.count { return a[i + 1] }
    return fallback
}

func log(_ s: String) { FileHandle.standardError.write(Data(("writer-bench: " + s + "\n").utf8)) }

func cpuMicros() -> Double {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec)
}

@discardableResult
func clickhouseClient(_ port: String, _ args: [String], stdin: String? = nil) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/clickhouse-client")
    p.arguments = ["--host", "127.0.0.1", "--port", port] + args
    let out = Pipe()
    p.standardOutput = out
    if let stdin { p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: stdin)) }
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw StoreError.rejected("clickhouse-client \(args.joined(separator: " ")) exited \(p.terminationStatus)") }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Realistic LLM spans: prompt and completion text, attributes, ids; about 1.3 KB each in RowBinary.
func makeSpans(_ n: Int, projectID: String) -> [SpanRow] {
    let base: Int64 = 1_767_225_600_000_000_000
    let words = ["invoice", "refund", "account", "shipping", "order", "billing", "password", "upgrade", "plan", "support", "delivery", "warranty"]
    var rng = SystemRandomNumberGenerator()
    var spans: [SpanRow] = []
    spans.reserveCapacity(n)
    for i in 0..<n {
        let trace = i / 4
        let text = (0..<70).map { _ in words[Int.random(in: 0..<words.count, using: &rng)] }.joined(separator: " ")
        let answer = (0..<45).map { _ in words[Int.random(in: 0..<words.count, using: &rng)] }.joined(separator: " ")
        spans.append(SpanRow(
            projectID: projectID, traceID: String(format: "%016llx%016llx", UInt64(trace) &* 0x9E37_79B9_7F4A_7C15, UInt64(trace)),
            spanID: String(format: "%016llx", UInt64(i) &+ 1), parentSpanID: i % 4 == 0 ? "" : String(format: "%016llx", UInt64(trace * 4) &+ 1),
            startUnixNanos: base + Int64(i) * 1_000_000, durationNanos: 400_000_000 + Int64(i % 1000) * 1_000_000, service: "checkout-\(i % 3)",
            name: "chat gpt-4o-mini", kind: .client, status: i % 50 == 0 ? .error : .ok, operation: "chat", provider: "openai", model: "gpt-4o-mini",
            inputTokens: 500 + Int64(i % 300), outputTokens: 120 + Int64(i % 80), cacheReadTokens: Int64(i % 7) * 10, costUSD: 0.000_15 * Double(1 + i % 9),
            ttftNanos: 150_000_000 + Int64(i % 100) * 1_000_000, userID: "user-\(i % 997)", sessionID: "session-\(i % 4001)", tags: ["prod", "checkout"],
            attributesJSON: "{\"gen_ai.response.id\":\"chatcmpl-\(i)\",\"gen_ai.response.finish_reasons\":[\"stop\"],\"server.address\":\"api.openai.com\"}",
            input: "[{\"role\":\"system\",\"content\":\"You are a helpful support agent.\"},{\"role\":\"user\",\"content\":\"\(text)\"}]",
            output: "[{\"role\":\"assistant\",\"content\":\"\(answer)\"}]"))
    }
    return spans
}

let url = argument("--url", "http://127.0.0.1:18133")
let port = argument("--port", "19133")
let rows = Int(argument("--rows", "200000")) ?? 200_000
let batch = Int(argument("--batch", "10000")) ?? 10_000
var logger = Logger(label: "writer-bench")
logger.logLevel = .warning

do {
    for db in ["evalforge_bench_writer", "evalforge_bench_peer"] {
        try clickhouseClient(port, ["--query", "DROP DATABASE IF EXISTS \(db)"])
    }
    let writerStore = try await ClickHouseStore(configuration: ClickHouseConfiguration(url: url, database: "evalforge_bench_writer", batchRows: batch), logger: logger)
    try await writerStore.migrate()
    let peerStore = try await ClickHouseStore(configuration: ClickHouseConfiguration(url: url, database: "evalforge_bench_peer", batchRows: batch), logger: logger)
    try await peerStore.migrate()   // the same schema for the peer
    let version = writerStore.serverVersion

    log("generating \(rows) spans")
    let spans = makeSpans(rows, projectID: "bench")
    let batches = stride(from: 0, to: rows, by: batch).map { StoreBatch(projectID: "bench", batchID: "b\($0)", spans: Array(spans[$0..<min(rows, $0 + batch)]), rollups: []) }

    // The peer's input: the same rows, RowBinary, in a file clickhouse-client reads in blocks of `batch` rows.
    let (columns, bytes) = peerStore.rowBinary(spans, projectID: "bench")
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("writer-bench-\(getpid()).bin")
    try Data(bytes).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    log("row size \(bytes.count / rows) bytes (RowBinary)")

    // Ours: batches submitted by two concurrent callers (as two collector connections would).
    log("writer: \(batches.count) batches of \(batch)")
    let cpu0 = cpuMicros()
    let t0 = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for lane in 0..<2 {
            group.addTask {
                for (i, b) in batches.enumerated() where i % 2 == lane { _ = try await writerStore.insert(b) }
            }
        }
        try await group.waitForAll()
    }
    let writerSeconds = Double((ContinuousClock.now - t0).components.attoseconds) / 1e18 + Double((ContinuousClock.now - t0).components.seconds)
    let writerCPU = cpuMicros() - cpu0

    log("peer: clickhouse-client")
    let t1 = ContinuousClock.now
    try clickhouseClient(port, ["--max_insert_block_size", String(batch), "--query", "INSERT INTO evalforge_bench_peer.spans (\(columns)) FORMAT RowBinary"], stdin: file.path)
    let d1 = ContinuousClock.now - t1
    let peerSeconds = Double(d1.components.seconds) + Double(d1.components.attoseconds) / 1e18

    let writerCount = Int(try clickhouseClient(port, ["--query", "SELECT count() FROM evalforge_bench_writer.spans"])) ?? -1
    let peerCount = Int(try clickhouseClient(port, ["--query", "SELECT count() FROM evalforge_bench_peer.spans"])) ?? -1
    guard writerCount == rows, peerCount == rows else { throw StoreError.rejected("row counts differ: writer \(writerCount), peer \(peerCount), expected \(rows)") }
    await writerStore.shutdown()
    await peerStore.shutdown()

    let ours = Double(rows) / writerSeconds
    let peer = Double(rows) / peerSeconds
    func r(_ x: Double, _ places: Double = 1) -> Double { (x * places).rounded() / places }
    log(String(format: "writer %.0f rows/s (%.2f s), clickhouse-client %.0f rows/s (%.2f s)", ours, writerSeconds, peer, peerSeconds))
    print("{\"bench\":\"writer\",\"rows_per_sec\":\(Int(ours)),\"peer\":\"clickhouse-client\",\"peer_rows_per_sec\":\(Int(peer)),\"ratio\":\(r(ours / peer, 100)),\"writer_cpu_us_per_row\":\(r(writerCPU / Double(rows), 100)),\"server_version\":\"\(version)\",\"rows\":\(rows),\"batch_rows\":\(batch),\"row_bytes\":\(bytes.count / rows)}")
} catch {
    log("failed: \(error)")
    exit(1)
}
