import EvalForgeModel
import EvalForgeStore
import Foundation
import Hummingbird
import NIOCore

/// `GET /api/usage?from=<unix s>&to=<unix s>`: what a project has stored in a time range — span
/// count and the exact rollup totals (requests, errors, tokens, cost). Used by operators and by the
/// end-to-end benchmark to check that nothing was lost and the rollups are exact.
struct UsageController: Sendable {
    let store: any SpanStore

    func addRoutes(to group: RouterGroup<BackendRequestContext>) {
        group.get("usage", use: usage)
    }

    struct Usage: Codable, Sendable {
        var project: String
        var from: Int64
        var to: Int64
        var spans: Int
        var requests: UInt64
        var errors: UInt64
        var inputTokens: UInt64
        var outputTokens: UInt64
        var cacheReadTokens: UInt64
        var cacheCreationTokens: UInt64
        var reasoningTokens: UInt64
        var costUSD: Double
        var costUnknownRequests: UInt64

        enum CodingKeys: String, CodingKey {
            case project, from, to, spans, requests, errors
            case inputTokens = "input_tokens"
            case outputTokens = "output_tokens"
            case cacheReadTokens = "cache_read_tokens"
            case cacheCreationTokens = "cache_creation_tokens"
            case reasoningTokens = "reasoning_tokens"
            case costUSD = "cost_usd"
            case costUnknownRequests = "cost_unknown_requests"
        }
    }

    func usage(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let now = Int64(Date().timeIntervalSince1970)
        let p = try QueryParameters(request, allowed: ["from", "to"])
        func param(_ name: String, default value: Int64) throws -> Int64 {
            guard let text = p.string(name) else { return value }
            // Bounded so `v * 1_000_000_000` below stays inside Int64 (9.2e9 s is year 2261).
            guard let v = Int64(text), v >= 0, Double(v) <= TimeParsing.maxUnixSeconds else {
                throw HTTPError(.badRequest, message: "parameter '\(name)' must be Unix seconds between 0 and \(Int64(TimeParsing.maxUnixSeconds)), got '\(text.prefix(64))'")
            }
            return v
        }
        let from = try param("from", default: now - 86_400)
        let to = try param("to", default: now + 60)
        guard from < to else { throw HTTPError(.badRequest, message: "time range is empty: 'from' must be before 'to'") }
        guard to - from <= 400 * 86_400 else { throw HTTPError(.badRequest, message: "time range longer than 400 days") }
        let fromMinute = from - ((from % 60) + 60) % 60
        // One bucket covering every minute that overlaps [from, to).
        let interval = max(60, (to - fromMinute + 59) / 60 * 60)
        let buckets = try await store.metrics(MetricsQuery(projectID: project.id, fromUnix: fromMinute, toUnix: fromMinute + interval, intervalSeconds: interval))
        var total = RollupValue()
        for b in buckets { total.merge(b.value) }
        let spans = try await store.countSpans(projectID: project.id, fromUnixNanos: from * 1_000_000_000, toUnixNanos: to * 1_000_000_000)
        let usage = Usage(project: project.id, from: from, to: to, spans: spans, requests: total.requests, errors: total.errors, inputTokens: total.inputTokens,
                          outputTokens: total.outputTokens, cacheReadTokens: total.cacheReadTokens, cacheCreationTokens: total.cacheCreationTokens,
                          reasoningTokens: total.reasoningTokens, costUSD: total.costUSD, costUnknownRequests: total.costUnknownRequests)
        let data = try JSONEncoder().encode(usage)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
