import EvalForgeOTLP
import Foundation
import Synchronization
import Testing

@testable import Backend

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestProcesses

/// Issue 15 §7: limits hold across replicas. Two real `evalforge backend` processes share one data
/// directory (the metadata file holds the shared counters); clients send OTLP batches to both at
/// once, far past the tier's span budget. What the two accept together is at most the limit and at
/// least 95 % of it, and exactly that is stored.
@Suite("Rate limits across two backend replicas", .serialized)
struct RateLimitReplicaTests {
    static let adminToken = "replica-admin-token-0123456789abcdef"

    static func start(port: Int, dir: String, tiers: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        p.arguments = ["backend", "--port", "\(port)", "--data-dir", dir, "--api-key", TestBackend.apiKey, "--log-level", "error",
                       "--rate-limit-tiers", tiers, "--default-tier", "replica-test"]
        var environment = ProcessInfo.processInfo.environment
        environment["EVALFORGE_CLICKHOUSE_URL"] = nil
        environment["EVALFORGE_ADMIN_TOKEN"] = adminToken
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test("two replicas, concurrent senders: accepted spans within 5 % of the limit, never above; stored = accepted",
          .timeLimit(.minutes(5)))
    func twoReplicas() async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-replicas-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let limit = 2_000
        let tiers = dir + "/tiers.json"
        // The span budget is the same per minute and per day, so a minute boundary during the test
        // changes nothing: the day's budget binds.
        try Data(#"{"tiers":{"replica-test":{"spans":{"per_minute":\#(limit),"per_day":\#(limit),"burst":0},"requests":{"per_minute":1000000,"per_day":1000000}}}}"#.utf8).write(to: URL(fileURLWithPath: tiers))
        let ports = [TestProcesses.freeLoopbackPort(), TestProcesses.freeLoopbackPort()]
        let first = try Self.start(port: ports[0], dir: dir, tiers: tiers)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL); first.waitUntilExit() } }
        try #require(await TestProcesses.waitHealthy(ports[0]), "replica 1 did not start")
        let second = try Self.start(port: ports[1], dir: dir, tiers: tiers)
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL); second.waitUntilExit() } }
        try #require(await TestProcesses.waitHealthy(ports[1]), "replica 2 did not start")

        let perBatch = 10
        /// One sender's tally: spans accepted and refused, answers with all three headers, other statuses.
        struct Tally: Sendable {
            var accepted = 0, refused = 0, headers = 0, retryAfterMissing = 0
            var other: [Int] = []
        }
        let tallies: [Tally] = await withTaskGroup(of: Tally.self) { g in
            for sender in 0..<8 {
                g.addTask {
                    var tally = Tally()
                    for i in 0..<60 {
                        let port = ports[(sender + i) % 2]
                        let t = OTLPFixtures.traceID()
                        guard let body = try? OTLPFixtures.request((1...perBatch).map { OTLPFixtures.legacySpan(trace: t, id: UInt64($0)) }).serializedData() else { continue }
                        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/traces")!)
                        request.httpMethod = "POST"
                        request.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
                        request.setValue("Bearer \(TestBackend.apiKey)", forHTTPHeaderField: "Authorization")
                        request.httpBody = body
                        guard let (_, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else {
                            tally.other.append(-1)
                            continue
                        }
                        if http.value(forHTTPHeaderField: "X-RateLimit-Limit") != nil, http.value(forHTTPHeaderField: "X-RateLimit-Remaining") != nil,
                           http.value(forHTTPHeaderField: "X-RateLimit-Reset") != nil { tally.headers += 1 }
                        switch http.statusCode {
                        case 200: tally.accepted += perBatch
                        case 429:
                            tally.refused += perBatch
                            if http.value(forHTTPHeaderField: "Retry-After") == nil { tally.retryAfterMissing += 1 }
                        default: tally.other.append(http.statusCode)
                        }
                    }
                    return tally
                }
            }
            return await g.reduce(into: []) { $0.append($1) }
        }
        let n = tallies.map(\.accepted).reduce(0, +)
        let other = tallies.flatMap(\.other)
        #expect(tallies.map(\.retryAfterMissing).reduce(0, +) == 0, "every 429 carries Retry-After")
        #expect(other.isEmpty, "answers other than 200 and 429: \(other)")
        #expect(tallies.map(\.headers).reduce(0, +) == 8 * 60, "every answer carries X-RateLimit-*")
        #expect(n <= limit, "accepted \(n) spans; the limit is \(limit)")
        #expect(Double(n) >= Double(limit) * 0.95, "accepted \(n) spans; within 5 % of \(limit) expected")
        #expect(tallies.map(\.refused).reduce(0, +) == 8 * 60 * perBatch - n)

        // What was accepted is what is stored (read through replica 2).
        // The fixtures' spans start at 2026-01-01T00:00:00Z.
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(ports[1])/api/usage?from=1767225000&to=1767226000")!)
        request.setValue("Bearer \(TestBackend.apiKey)", forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: request)
        let usage = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect((usage?["spans"] as? NSNumber)?.intValue == n, "\(usage ?? [:])")
    }
}
