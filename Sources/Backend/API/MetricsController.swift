import EvalForgeModel
import EvalForgeStore
import Foundation
import Hummingbird

/// `GET /api/metrics`: time series and breakdowns merged from the rollups (requests, errors, tokens,
/// cost, latency and TTFT percentiles), grouped by model, provider, service or user, at any interval
/// that is a multiple of a minute.
struct MetricsController: Sendable {
    let store: any SpanStore

    static let parameters: Set<String> = ["from", "to", "interval", "group_by", "service", "provider", "model"]
    static let dimensions: [String: MetricsDimension] = Dictionary(uniqueKeysWithValues: MetricsDimension.allCases.map { ($0.rawValue, $0) })

    func addRoutes(to group: RouterGroup<BackendRequestContext>) {
        group.get(use: metrics)
    }

    @Sendable func metrics(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let p = try QueryParameters(request, allowed: Self.parameters)
        let query = try Self.query(p, projectID: project.id, now: Date())
        return try APIResponse.json(try await Self.report(store: store, query: query))
    }

    /// The query a request asks for. Defaults: the last 24 hours, an interval giving at most about
    /// 200 buckets, no grouping.
    static func query(_ p: QueryParameters, projectID: String, now: Date) throws -> MetricsQuery {
        let nowUnix = Int64(now.timeIntervalSince1970)
        let to = try p.time("to").map { floorDiv($0, 1_000_000_000) } ?? (nowUnix / 60 + 1) * 60
        let from = try p.time("from").map { floorDiv($0, 1_000_000_000) } ?? to - 86_400
        guard from < to else { throw HTTPError(.badRequest, message: "time range is empty: 'from' must be before 'to'") }
        let interval: Int64
        if let s = p.string("interval") {
            guard let secs = TimeParsing.seconds(s), secs > 0, secs <= 400 * 86_400 else {
                throw HTTPError(.badRequest, message: "parameter 'interval' must be seconds or a duration like 60, 5m, 1h, 1d, at most 400d; got '\(s.prefix(64))'")
            }
            interval = secs
        } else {
            interval = autoInterval(seconds: to - from)
        }
        let groupBy = try p.oneOf("group_by", dimensions, default: .none)
        let q = MetricsQuery(projectID: projectID, fromUnix: from, toUnix: to, intervalSeconds: interval, groupBy: groupBy,
                             service: p.string("service"), provider: p.string("provider"), model: p.string("model"))
        do {
            try MetricsBucketing.validate(q)
        } catch let e as StoreError {
            throw HTTPError(.badRequest, message: e.message)
        }
        return q
    }

    /// The smallest round interval giving at most `buckets` buckets over a range.
    static func autoInterval(seconds: Int64, buckets: Int64 = 200) -> Int64 {
        let steps: [Int64] = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604_800]
        return steps.first { seconds / $0 <= buckets } ?? 604_800 * ((seconds / buckets) / 604_800 + 1)
    }

    static func report(store: any SpanStore, query: MetricsQuery) async throws -> MetricsDTO {
        let buckets = try await storeCall { try await store.metrics(query) }
        return build(query: query, buckets: buckets)
    }

    static func build(query: MetricsQuery, buckets: [MetricsBucket]) -> MetricsDTO {
        var byGroup: [String: [MetricsBucket]] = [:]
        var overall: [Int64: RollupValue] = [:]
        var total = RollupValue()
        for b in buckets {
            byGroup[b.group, default: []].append(b)
            overall[b.bucketUnix, default: RollupValue()].merge(b.value)
            total.merge(b.value)
        }
        var series: [(RollupValue, MetricsSeriesDTO)] = byGroup.map { group, bs in
            var t = RollupValue()
            for b in bs { t.merge(b.value) }
            let points = bs.sorted { $0.bucketUnix < $1.bucketUnix }.map { MetricsPointDTO(t: $0.bucketUnix, values: MetricsValuesDTO($0.value)) }
            return (t, MetricsSeriesDTO(group: group, points: points, totals: MetricsValuesDTO(t)))
        }
        series.sort { ($0.0.costUSD, $0.0.requests, $1.1.group) > ($1.0.costUSD, $1.0.requests, $0.1.group) }
        return MetricsDTO(
            fromUnix: query.fromUnix, toUnix: query.toUnix, intervalSeconds: query.intervalSeconds, groupBy: query.groupBy.rawValue,
            series: series.map(\.1), totals: MetricsValuesDTO(total),
            overall: overall.keys.sorted().map { MetricsPointDTO(t: $0, values: MetricsValuesDTO(overall[$0] ?? RollupValue())) })
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
