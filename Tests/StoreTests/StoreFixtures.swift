import EvalForgeModel
import EvalForgeStore
import Foundation

/// Deterministic telemetry for the store conformance suite: traces of an agent root span, two LLM
/// calls and a tool span, across models, providers, services, users, sessions and tags.
enum StoreFixtures {
    /// 2026-01-01T00:00:00Z, so every fixture lands in known minutes.
    static let baseUnix: Int64 = 1_767_225_600
    static let models = ["gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o"]
    static let providers = ["openai", "anthropic", "openai"]

    static func traceID(_ i: Int) -> String { String(format: "%032x", 0xabc0_0000 + i) }
    static func spanID(_ i: Int, _ j: Int) -> String { String(format: "%016x", (i + 1) * 16 + j) }

    /// Spans of trace `i`: starts `i` minutes after the base; every 5th trace has an error LLM call.
    static func spans(trace i: Int, projectID: String) -> [SpanRow] {
        let start = (baseUnix + Int64(i) * 60) * 1_000_000_000
        let m = i % models.count
        let tid = traceID(i)
        let user = "user-\(i % 4)"
        let session = "session-\(i % 6)"
        let tags = i % 2 == 0 ? ["beta", "checkout"] : ["checkout"]
        let error = i % 5 == 4
        var rows = [SpanRow(projectID: projectID, traceID: tid, spanID: spanID(i, 0), startUnixNanos: start, durationNanos: 2_000_000_000 + Int64(i) * 1_000_000,
                            service: "svc-\(i % 2)", name: "agent.run", kind: .server, status: error ? .error : .ok, operation: "invoke_agent",
                            userID: user, sessionID: session, tags: tags, attributesJSON: "{\"http.route\":\"/chat\"}")]
        for j in 1...2 {
            let isErr = error && j == 2
            rows.append(SpanRow(projectID: projectID, traceID: tid, spanID: spanID(i, j), parentSpanID: spanID(i, 0),
                                startUnixNanos: start + Int64(j) * 100_000_000, durationNanos: 500_000_000 + Int64(j) * 10_000_000,
                                service: "svc-\(i % 2)", name: "chat \(models[m])", kind: .client, status: isErr ? .error : .ok,
                                statusMessage: isErr ? "rate limited" : "", operation: "chat", provider: providers[m], model: models[m],
                                inputTokens: 100 + Int64(i), outputTokens: 20 + Int64(j), cacheReadTokens: j == 1 ? 50 : 0, reasoningTokens: m == 2 ? 7 : 0,
                                costUSD: m == 1 && j == 2 ? nil : 0.001 * Double(j + i % 3), ttftNanos: 120_000_000 + Int64(j),
                                userID: user, sessionID: session, tags: tags, attributesJSON: "{\"gen_ai.response.id\":\"r-\(i)-\(j)\"}",
                                input: "[{\"role\":\"user\",\"content\":\"question \(i) about invoices\"}]",
                                output: "[{\"role\":\"assistant\",\"content\":\"answer \(i)\(i == 7 ? " mentions Zebra" : "")\"}]",
                                eventsJSON: "[]"))
        }
        rows.append(SpanRow(projectID: projectID, traceID: tid, spanID: spanID(i, 3), parentSpanID: spanID(i, 0),
                            startUnixNanos: start + 1_000_000_000, durationNanos: 30_000_000, service: "svc-\(i % 2)", name: "execute_tool lookup",
                            operation: "execute_tool", userID: user, sessionID: session, tags: tags))
        return rows
    }

    /// Rollups of the LLM spans of `spans` (what the collector would compute).
    static func rollups(_ spans: [SpanRow]) -> [RollupRow] {
        var table: [RollupKey: RollupValue] = [:]
        for s in spans where s.isLLMCall {
            let key = RollupKey(minuteUnix: s.startUnixNanos / 1_000_000_000 / 60 * 60, project: s.projectID, service: s.service, provider: s.provider, model: s.model, isError: s.isError)
            var v = table[key] ?? RollupValue()
            v.requests += 1
            if s.isError { v.errors += 1 }
            v.inputTokens += UInt64(s.inputTokens)
            v.outputTokens += UInt64(s.outputTokens)
            v.cacheReadTokens += UInt64(s.cacheReadTokens)
            v.reasoningTokens += UInt64(s.reasoningTokens)
            if let c = s.costUSD { v.costUSD += c } else { v.costUnknownRequests += 1 }
            v.latencyMs.add(Double(s.durationNanos) / 1e6)
            if let t = s.ttftNanos { v.ttftMs.add(Double(t) / 1e6) }
            table[key] = v
        }
        return table.map { RollupRow(key: $0.key, value: $0.value) }
    }

    /// One batch holding traces `range`.
    static func batch(_ range: Range<Int>, projectID: String, batchID: String) -> StoreBatch {
        let spans = range.flatMap { Self.spans(trace: $0, projectID: projectID) }
        return StoreBatch(projectID: projectID, batchID: batchID, spans: spans, rollups: rollups(spans))
    }

    static func uniqueProject(_ name: String) -> String {
        "\(name)-\(UInt32.random(in: 0...UInt32.max))"
    }
}
