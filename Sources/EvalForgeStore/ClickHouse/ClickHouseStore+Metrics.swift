import EvalForgeModel
import Foundation
import Synchronization

/// The dimensions of a rollup row below the project and the time.
struct RollupDims: Hashable, Sendable {
    var service: String
    var provider: String
    var model: String
    var isError: Bool
}

/// Rollups merged per (project, UTC hour, dimensions), kept in the backend so a 30-day dashboard does
/// not re-merge every per-batch rollup row with FINAL on each request.
///
/// An hour is served from here only while its raw row count in `rollups` (counted without FINAL,
/// which reads just the sort-key prefix) equals the count recorded when the hour was merged, and an
/// hour is recorded only when, at merge time, that raw count (taken first) equaled the number of
/// distinct rows FINAL saw (taken second). Why that is exact: rows are only ever added (deletes are
/// handled below), and a row count that can only grow by new distinct rows or by duplicate copies
/// (which merges may later collapse) can come back to the recorded value only if neither happened.
/// Deletes: `deleteExpired` forgets the project's hours in this process; a delete by another
/// backend lowers an hour's count (retention deletes whole days), so the hour is merged again — and
/// the other backend's delete also bumps `CacheGeneration.telemetryDeletes`, on which every backend
/// forgets all hours (`forgetCachedAggregates`, within its poll interval), so rows arriving for a
/// deleted hour after the delete cannot bring its count back to a remembered value unnoticed.
final class RollupHourCache: Sendable {
    struct Entry: Sendable {
        var rows: UInt64
        var values: [RollupDims: RollupValue]
        /// `values` merged per value of each grouping (model, provider, service, none), for the
        /// queries without a filter: 6 merges per hour for a dashboard by model instead of ~60.
        var grouped: [MetricsDimension: [String: RollupValue]] = [:]

        init(rows: UInt64, values: [RollupDims: RollupValue]) {
            self.rows = rows
            self.values = values
        }

        mutating func group() {
            for dim in [MetricsDimension.none, .model, .provider, .service] {
                var g: [String: RollupValue] = [:]
                for (d, v) in values { g[Self.group(d, dim), default: RollupValue()].merge(v) }
                grouped[dim] = g
            }
        }

        static func group(_ d: RollupDims, _ dim: MetricsDimension) -> String {
            switch dim {
            case .model: d.model
            case .provider: d.provider
            case .service: d.service
            case .none, .user: ""
            }
        }
    }

    private struct Key: Hashable {
        var project: String
        var hour: Int64
    }

    /// Most (hour, dimensions) entries kept; beyond it the cache starts over.
    let capacity: Int
    private let state = Mutex<(entries: [Key: Entry], size: Int)>(([:], 0))

    init(capacity: Int = 200_000) {
        self.capacity = capacity
    }

    func entry(project: String, hour: Int64) -> Entry? {
        state.withLock { $0.entries[Key(project: project, hour: hour)] }
    }

    func store(project: String, hours: [Int64: Entry]) {
        state.withLock { s in
            let adding = hours.values.reduce(0) { $0 + max(1, $1.values.count) }
            if s.size + adding > capacity { s = ([:], 0) }
            for (hour, e) in hours where adding <= capacity {
                let key = Key(project: project, hour: hour)
                if let old = s.entries[key] { s.size -= max(1, old.values.count) }
                s.entries[key] = e
                s.size += max(1, e.values.count)
            }
        }
    }

    func forgetAll() {
        state.withLock { $0 = ([:], 0) }
    }

    func forget(project: String) {
        state.withLock { s in
            for key in s.entries.keys where key.project == project {
                s.size -= max(1, s.entries[key]?.values.count ?? 1)
                s.entries[key] = nil
            }
        }
    }
}

extension ClickHouseStore {
    public func metrics(_ q: MetricsQuery) async throws -> [MetricsBucket] {
        try MetricsBucketing.validate(q)
        if q.groupBy == .user { return try await userMetrics(q) }
        var out = MetricsBucketing(query: q)
        // Whole UTC hours inside the range that fall in one bucket each can come from merged hours.
        let from = max(0, q.fromUnix), to = max(0, min(q.toUnix, Int64(UInt32.max)))
        guard from < to else { return [] }
        let firstHour = (from + 3599) / 3600 * 3600, endHour = to / 3600 * 3600
        var hours: [Int64] = []
        if firstHour < endHour {
            for h in stride(from: firstHour, to: endHour, by: 3600) where out.bucket(of: h) == out.bucket(of: h + 3599) { hours.append(h) }
        }
        guard !hours.isEmpty else {
            try await rawMetrics(q, ranges: [(from, to)], into: &out)
            return out.buckets()
        }
        let counts = try await rollupRowsPerHour(projectID: q.projectID, from: hours[0], to: hours[hours.count - 1] + 3600)
        var cached: [Int64: RollupHourCache.Entry] = [:]
        var missing: [Int64] = []
        for h in hours {
            guard let n = counts[h] else { continue }  // no rollups in this hour
            if let e = rollupHours.entry(project: q.projectID, hour: h), e.rows == n { cached[h] = e } else { missing.append(h) }
        }
        // Everything that is not a usable hour is read raw, grouped by bucket on the server.
        var raw: [(Int64, Int64)] = []
        var cursor = from
        for h in hours {
            if cursor < h { raw.append((cursor, h)) }
            cursor = h + 3600
        }
        if cursor < to { raw.append((cursor, to)) }
        let rawRanges = raw
        async let merged = mergeHours(projectID: q.projectID, hours: missing, counts: counts)
        if !rawRanges.isEmpty { try await rawMetrics(q, ranges: rawRanges, into: &out) }
        for (h, e) in try await merged { cached[h] = e }
        let unfiltered = q.service == nil && q.provider == nil && q.model == nil
        for (h, e) in cached {
            if unfiltered, let g = e.grouped[q.groupBy] {
                for (group, value) in g { out.add(minuteUnix: h, group: group, value: value) }
                continue
            }
            for (d, value) in e.values where (q.service ?? d.service) == d.service && (q.provider ?? d.provider) == d.provider && (q.model ?? d.model) == d.model {
                out.add(minuteUnix: h, group: RollupHourCache.Entry.group(d, q.groupBy), value: value)
            }
        }
        return out.buckets()
    }

    /// Raw rollup rows per UTC hour in [from, to), counted without FINAL (reads the key prefix only).
    func rollupRowsPerHour(projectID: String, from: Int64, to: Int64) async throws -> [Int64: UInt64] {
        var v = values()
        let sql = """
            SELECT toInt64(intDiv(toUInt32(minute), 3600) * 3600) AS h, toUInt64(count()) FROM \(db).rollups
            WHERE project_id = \(v.string(projectID)) AND minute >= toDateTime(\(from)) AND minute < toDateTime(\(to))
            GROUP BY h
            """
        var r = try await http.query(sql, parameters: v.parameters)
        var out: [Int64: UInt64] = [:]
        while !r.isAtEnd { out[try r.int64()] = try r.uint64() }
        return out
    }

    /// Merges `hours` with FINAL per (hour, dimensions) and keeps the hours whose distinct row count
    /// equals `counts` (the raw count read before) in the cache. Returns every merged hour.
    func mergeHours(projectID: String, hours: [Int64], counts: [Int64: UInt64]) async throws -> [Int64: RollupHourCache.Entry] {
        guard !hours.isEmpty else { return [:] }
        var v = values()
        let sql = """
            SELECT toInt64(intDiv(toUInt32(minute), 3600) * 3600) AS h, toString(service), toString(provider), toString(model), is_error, toUInt64(count()),
                \(Self.rollupValueColumns)
            FROM \(db).rollups FINAL
            WHERE project_id = \(v.string(projectID)) AND (\(Self.minuteRanges(Self.runs(hours))))
            GROUP BY h, service, provider, model, is_error
            """
        var r = try await http.query(sql, parameters: v.parameters)
        var out: [Int64: RollupHourCache.Entry] = [:]
        while !r.isAtEnd {
            let h = try r.int64()
            let d = RollupDims(service: try r.string(), provider: try r.string(), model: try r.string(), isError: try r.integer(UInt8.self) != 0)
            let n = try r.uint64()
            let value = try Self.rollupValue(&r)
            out[h, default: .init(rows: 0, values: [:])].rows += n
            out[h]?.values[d] = value
        }
        for h in out.keys { out[h]?.group() }
        rollupHours.store(project: projectID, hours: out.filter { counts[$0.key] == $0.value.rows })
        return out
    }

    /// Rollups of `ranges` ([from, to) in Unix seconds) merged with FINAL per bucket and group on the
    /// server, added to `out`. A few ranges (the partial hours at the edges) are one query each, in
    /// parallel: 18.16 reads everything between the ranges of an OR with FINAL (0.1–0.2 s instead of
    /// 0.03–0.05 s for the two edges of a 30-day range).
    func rawMetrics(_ q: MetricsQuery, ranges: [(Int64, Int64)], into out: inout MetricsBucketing) async throws {
        guard ranges.count > 1, ranges.count <= 4 else { return try await rawMetricsQuery(q, ranges: ranges, into: &out) }
        let parts = try await withThrowingTaskGroup(of: MetricsBucketing.self) { group in
            for r in ranges {
                group.addTask {
                    var part = MetricsBucketing(query: q)
                    try await self.rawMetricsQuery(q, ranges: [r], into: &part)
                    return part
                }
            }
            var all: [MetricsBucketing] = []
            for try await part in group { all.append(part) }
            return all
        }
        for part in parts { out.merge(part) }
    }

    private func rawMetricsQuery(_ q: MetricsQuery, ranges: [(Int64, Int64)], into out: inout MetricsBucketing) async throws {
        var v = values()
        var cond = ["project_id = \(v.string(q.projectID))", "(\(Self.minuteRanges(ranges)))"]
        if let x = q.service { cond.append("service = \(v.string(x))") }
        if let x = q.provider { cond.append("provider = \(v.string(x))") }
        if let x = q.model { cond.append("model = \(v.string(x))") }
        let group: String = switch q.groupBy {
        case .model: "toString(model)"
        case .provider: "toString(provider)"
        case .service: "toString(service)"
        case .none, .user: "''"
        }
        let i = q.intervalSeconds
        let sql = """
            SELECT toInt64(toUInt32(minute)) - toInt64(toUInt32(minute)) % \(i) AS b, \(group) AS g, \(Self.rollupValueColumns)
            FROM \(db).rollups FINAL
            WHERE \(cond.joined(separator: " AND "))
            GROUP BY b, g
            """
        var r = try await http.query(sql, parameters: v.parameters)
        while !r.isAtEnd {
            let bucket = try r.int64()
            let g = try r.string()
            out.add(minuteUnix: bucket, group: g, value: try Self.rollupValue(&r))
        }
    }

    static let rollupValueColumns = """
        toUInt64(sum(requests)), toUInt64(sum(errors)), toUInt64(sum(input_tokens)), toUInt64(sum(output_tokens)), toUInt64(sum(cache_read_tokens)),
            toUInt64(sum(cache_creation_tokens)), toUInt64(sum(reasoning_tokens)), toFloat64(sum(cost_usd)), toUInt64(sum(cost_unknown_requests)),
            \(ClickHouseRowCoding.sketchAggregates("latency")), \(ClickHouseRowCoding.sketchAggregates("ttft"))
        """

    static func rollupValue(_ r: inout RowBinaryReader) throws -> RollupValue {
        var value = RollupValue()
        value.requests = try r.uint64()
        value.errors = try r.uint64()
        value.inputTokens = try r.uint64()
        value.outputTokens = try r.uint64()
        value.cacheReadTokens = try r.uint64()
        value.cacheCreationTokens = try r.uint64()
        value.reasoningTokens = try r.uint64()
        value.costUSD = try r.float64()
        value.costUnknownRequests = try r.uint64()
        value.latencyMs = try ClickHouseRowCoding.sketch(&r)
        value.ttftMs = try ClickHouseRowCoding.sketch(&r)
        return value
    }

    /// Sorted hours as contiguous [from, to) runs.
    static func runs(_ hours: [Int64]) -> [(Int64, Int64)] {
        var out: [(Int64, Int64)] = []
        for h in hours.sorted() {
            if let last = out.last, last.1 == h { out[out.count - 1].1 = h + 3600 } else { out.append((h, h + 3600)) }
        }
        return out
    }

    /// `minute` within any of the ranges (numbers only, so nothing user-supplied).
    static func minuteRanges(_ ranges: [(Int64, Int64)]) -> String {
        ranges.map { "(minute >= toDateTime(\($0.0)) AND minute < toDateTime(\($0.1)))" }.joined(separator: " OR ")
    }

    func userMetrics(_ q: MetricsQuery) async throws -> [MetricsBucket] {
        var v = values()
        let s = flavor.startNanos
        var cond = ["project_id = \(v.string(q.projectID))", "\(s) >= \(q.fromUnix &* 1_000_000_000)", "\(s) < \(q.toUnix &* 1_000_000_000)", "(model != '' OR provider != '')"]
        if let x = q.service { cond.append("service = \(v.string(x))") }
        if let x = q.provider { cond.append("provider = \(v.string(x))") }
        if let x = q.model { cond.append("model = \(v.string(x))") }
        let sql = """
            SELECT user_id, \(s), duration_ns, status, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd, ttft_ns
            FROM \(db).spans FINAL WHERE \(cond.joined(separator: " AND "))
            """
        var r = try await http.query(sql, parameters: v.parameters)
        var local = MetricsBucketing(query: q)
        while !r.isAtEnd {
            let user = try r.string()
            let start = try r.int64()
            let duration = try r.int64()
            var value = RollupValue()
            value.requests = 1
            if try r.int8() == SpanStatus.error.rawValue { value.errors = 1 }
            value.inputTokens = UInt64(IngestBounds.tokens(try r.int64()))
            value.outputTokens = UInt64(IngestBounds.tokens(try r.int64()))
            value.cacheReadTokens = UInt64(IngestBounds.tokens(try r.int64()))
            value.cacheCreationTokens = UInt64(IngestBounds.tokens(try r.int64()))
            value.reasoningTokens = UInt64(IngestBounds.tokens(try r.int64()))
            // Rows stored before the ingest bounds existed may hold anything: read them through the same bounds.
            if let cost = IngestBounds.cost(try r.nullableFloat64()) { value.costUSD = cost } else { value.costUnknownRequests = 1 }
            value.latencyMs.add(Double(duration) / 1e6)
            if let t = try r.nullableInt64() { value.ttftMs.add(Double(t) / 1e6) }
            local.add(minuteUnix: start / 1_000_000_000, group: user, value: value)
        }
        return local.buckets()
    }
}
