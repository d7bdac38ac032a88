import EvalForgeModel

/// What the backend stores, whatever a span says: the bounds applied at ingest (forwarded batches and
/// direct OTLP) so that nothing poisonous reaches the stores, their sums or the pages that format them.
///
/// - Times: a span starts no earlier than 2000-01-01T00:00:00Z and ends no later than a day after the
///   backend's clock (clock skew and long spans fit; a zero, negative or year-2262 timestamp does not).
///   Outside that window the span is refused (a 400 naming the span and field for a forwarded batch,
///   `partial_success` for OTLP): ClickHouse partitions by month, so one such span would otherwise
///   add a partition per absurd month, and every time range and duration computed from it would lie.
/// - Token counts are clamped to 0…2^40 (about 1.1e12, beyond any model's context by six orders of
///   magnitude), so any sum over 2^23 spans stays exact in Int64.
/// - A cost that is not finite, negative or above $100,000 for one span is stored as unknown (nil).
/// - A negative time to first token is dropped (nil).
public enum IngestBounds {
    /// 2000-01-01T00:00:00Z in Unix nanoseconds.
    public static let earliestUnixNanos: Int64 = 946_684_800_000_000_000
    /// How far past the backend's clock a span may end.
    public static let maxFutureNanos: Int64 = 86_400_000_000_000
    public static let maxTokens: Int64 = 1 << 40
    public static let maxCostUSD: Double = 100_000
    /// Per rollup row (one model, one minute, one collector): counters above this are clamped.
    public static let maxRollupCounter: UInt64 = 1 << 50

    public static func latestUnixNanos(nowUnixNanos: Int64) -> Int64 { nowUnixNanos.addingSaturated(maxFutureNanos) }

    @inlinable public static func tokens(_ v: Int64) -> Int64 { Swift.min(Swift.max(0, v), maxTokens) }

    @inlinable public static func cost(_ v: Double?) -> Double? {
        guard let v, v.isFinite, v >= 0, v <= maxCostUSD else { return nil }
        return v
    }

    /// Why a span with these times is refused, naming the OTLP field; nil when it is accepted.
    public static func timeProblem(startUnixNanos start: Int64, endUnixNanos end: Int64, nowUnixNanos now: Int64) -> String? {
        let latest = latestUnixNanos(nowUnixNanos: now)
        if start < earliestUnixNanos { return "start_time_unix_nano \(start) is before 2000-01-01T00:00:00Z" }
        if start > latest { return "start_time_unix_nano \(start) is more than a day after the backend's clock" }
        if end > latest { return "end_time_unix_nano \(end) is more than a day after the backend's clock" }
        return nil
    }

    /// Why a rollup of this minute is refused; nil when accepted.
    public static func minuteProblem(minuteUnix: Int64, nowUnixNanos now: Int64) -> String? {
        let earliest = earliestUnixNanos / 1_000_000_000, latest = latestUnixNanos(nowUnixNanos: now) / 1_000_000_000
        guard minuteUnix >= earliest, minuteUnix <= latest else {
            return "minute_unix \(minuteUnix) is outside 2000-01-01 … a day after the backend's clock"
        }
        return nil
    }

    /// The rollup value with its counters clamped and a cost that is not finite or negative turned
    /// into "unknown" for every request it counts; nil with the reason when its sketches cannot be
    /// merged with the stored ones (another alpha).
    public static func rollupValue(_ v: RollupValue) -> Result<RollupValue, RollupProblem> {
        let alpha = DDSketch().alpha
        guard v.latencyMs.alpha == alpha else { return .failure(RollupProblem(message: "latency_ms.alpha is \(v.latencyMs.alpha), this backend merges sketches of alpha \(alpha) only")) }
        guard v.ttftMs.alpha == alpha else { return .failure(RollupProblem(message: "ttft_ms.alpha is \(v.ttftMs.alpha), this backend merges sketches of alpha \(alpha) only")) }
        // Sketch counts cannot be clamped (buckets would disagree): refused above the counter bound,
        // so that summing sketches across rollups stays far from UInt64's limit.
        guard v.latencyMs.count <= maxRollupCounter, v.ttftMs.count <= maxRollupCounter else {
            return .failure(RollupProblem(message: "latency_ms or ttft_ms count above \(maxRollupCounter)"))
        }
        var out = v
        out.requests = Swift.min(v.requests, maxRollupCounter)
        out.errors = Swift.min(v.errors, out.requests)
        out.inputTokens = Swift.min(v.inputTokens, maxRollupCounter)
        out.outputTokens = Swift.min(v.outputTokens, maxRollupCounter)
        out.cacheReadTokens = Swift.min(v.cacheReadTokens, maxRollupCounter)
        out.cacheCreationTokens = Swift.min(v.cacheCreationTokens, maxRollupCounter)
        out.reasoningTokens = Swift.min(v.reasoningTokens, maxRollupCounter)
        out.costUnknownRequests = Swift.min(v.costUnknownRequests, out.requests)
        if !(v.costUSD.isFinite && v.costUSD >= 0 && v.costUSD <= maxCostUSD * Double(Swift.max(1, out.requests))) {
            out.costUSD = 0
            out.costUnknownRequests = out.requests
        }
        return .success(out)
    }

    public struct RollupProblem: Error, Sendable {
        public let message: String
    }

    /// Most calendar months (UTC) the spans and rollups of one batch may cover. ClickHouse partitions
    /// by month and refuses an insert touching more than 100 partitions; the writer groups batches
    /// up to a bound below that, which a single batch must leave room for.
    public static let maxMonthsPerBatch = 24

    /// Months since year 0 (`year * 12 + month - 1`) of a Unix time in seconds, UTC.
    @inlinable public static func monthIndex(unixSeconds: Int64) -> Int32 {
        // Howard Hinnant's civil_from_days, in Int64 (no overflow for any Int64 seconds / 86,400).
        let days = unixSeconds >= 0 ? unixSeconds / 86_400 : (unixSeconds - 86_399) / 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return Int32(clamping: y * 12 + m - 1)
    }

    /// Applies the bounds to a decoded batch: nil when it is accepted (token counters of its rollups
    /// clamped, unusable rollup costs made unknown, in place), else why it is refused, naming the
    /// span or rollup and the field. `spans[i]` counts spans in batch order.
    public static func check(_ batch: inout StoreBatch, nowUnixNanos now: Int64) -> String? {
        var months = Set<Int32>()
        for (i, s) in batch.spans.enumerated() {
            if let problem = s.timeProblem(nowUnixNanos: now) {
                return "spans[\(i)] (trace \(s.traceID), span \(s.spanID)): \(problem)"
            }
            months.insert(monthIndex(unixSeconds: s.startUnixNanos / 1_000_000_000))
        }
        for i in batch.rollups.indices {
            let key = batch.rollups[i].key
            if let problem = minuteProblem(minuteUnix: key.minuteUnix, nowUnixNanos: now) { return "rollups[\(i)]: \(problem)" }
            months.insert(monthIndex(unixSeconds: key.minuteUnix))
            switch rollupValue(batch.rollups[i].value) {
            case .success(let v): batch.rollups[i].value = v
            case .failure(let p): return "rollups[\(i)]: \(p.message)"
            }
        }
        if months.count > maxMonthsPerBatch {
            return "the batch's spans and rollups fall in \(months.count) calendar months; at most \(maxMonthsPerBatch) per batch (send older data in separate batches)"
        }
        return nil
    }
}

extension SpanRow {
    /// Applies `IngestBounds` to the numbers of a row just read from a request: token counts clamped,
    /// an out-of-range cost unknown, a negative time to first token dropped. The span-row reader
    /// (`SpanRowWireReader`) and its test oracle (`SpanRow(span:)`) both end with it, so they agree.
    public mutating func clampNumbers() {
        inputTokens = IngestBounds.tokens(inputTokens)
        outputTokens = IngestBounds.tokens(outputTokens)
        cacheReadTokens = IngestBounds.tokens(cacheReadTokens)
        cacheCreationTokens = IngestBounds.tokens(cacheCreationTokens)
        reasoningTokens = IngestBounds.tokens(reasoningTokens)
        costUSD = IngestBounds.cost(costUSD)
        if let t = ttftNanos, t < 0 { ttftNanos = nil }
    }

    /// Why this row's times are refused at ingest; nil when accepted.
    public func timeProblem(nowUnixNanos: Int64) -> String? {
        IngestBounds.timeProblem(startUnixNanos: startUnixNanos, endUnixNanos: endUnixNanos, nowUnixNanos: nowUnixNanos)
    }
}
