import EvalForgeModel
import EvalForgeOTLP
import SwiftProtobuf

/// Conversions between rollups and their `evalforge.v1` protobuf form.
public enum RollupCoding {
    public static func proto(key k: RollupKey, value v: RollupValue) -> Evalforge_V1_Rollup {
        var r = Evalforge_V1_Rollup()
        r.minuteUnix = k.minuteUnix
        r.project = k.project
        r.service = k.service
        r.provider = k.provider
        r.model = k.model
        r.error = k.isError
        r.requests = v.requests
        r.errors = v.errors
        r.inputTokens = v.inputTokens
        r.outputTokens = v.outputTokens
        r.cacheReadTokens = v.cacheReadTokens
        r.cacheCreationTokens = v.cacheCreationTokens
        r.reasoningTokens = v.reasoningTokens
        r.costUsd = v.costUSD
        r.costUnknownRequests = v.costUnknownRequests
        r.latencyMs = proto(v.latencyMs)
        r.ttftMs = proto(v.ttftMs)
        return r
    }

    public static func proto(_ s: DDSketch) -> Evalforge_V1_Sketch {
        var p = Evalforge_V1_Sketch()
        p.alpha = s.alpha
        p.count = s.count
        p.sum = s.sum
        p.min = s.count > 0 ? s.min : 0
        p.max = s.count > 0 ? s.max : 0
        p.zeroCount = s.zeroCount
        p.offset = s.offset
        p.counts = s.counts
        return p
    }

    /// A sketch as `evalforge.v1.Sketch` protobuf bytes: how the SQLite store keeps rollup sketches
    /// (through here, so the store needs no protobuf runtime).
    package static func sketchBytes(_ s: DDSketch) -> [UInt8] {
        (try? proto(s).serializedBytes()) ?? []
    }

    /// The sketch stored as `bytes` (`sketchBytes`); nil when empty, unreadable or invalid.
    package static func sketch(bytes: [UInt8]) -> DDSketch? {
        guard !bytes.isEmpty, let p = try? Evalforge_V1_Sketch(serializedBytes: bytes) else { return nil }
        return sketch(p)
    }

    /// The rollup a protobuf row describes; nil when it is invalid (`decodeRollup` says why).
    public static func rollup(_ r: Evalforge_V1_Rollup) -> (RollupKey, RollupValue)? {
        try? decodeRollup(r)
    }

    /// The rollup a protobuf row from outside (a forwarded batch, a stored row) describes, checked:
    /// `minute_unix` within the Int64-nanosecond range, `cost_usd` finite and non-negative, errors
    /// at most requests, and both sketches valid (`decodeSketch`). The error names the field; the
    /// backend answers it with a 4xx (the batch is malformed, retrying cannot help).
    public static func decodeRollup(_ r: Evalforge_V1_Rollup) throws(RollupDecodingError) -> (RollupKey, RollupValue) {
        guard r.minuteUnix >= 0, r.minuteUnix <= Int64.max / 1_000_000_000 else {
            throw RollupDecodingError("minute_unix \(r.minuteUnix) is outside 0…\(Int64.max / 1_000_000_000) (the Int64-nanosecond range)")
        }
        guard r.costUsd.isFinite, r.costUsd >= 0 else {
            throw RollupDecodingError("cost_usd \(r.costUsd) is not a finite non-negative number")
        }
        guard r.errors <= r.requests else { throw RollupDecodingError("errors \(r.errors) exceeds requests \(r.requests)") }
        let key = RollupKey(minuteUnix: r.minuteUnix, project: r.project, service: r.service, provider: r.provider, model: r.model, isError: r.error)
        var v = RollupValue()
        v.requests = r.requests
        v.errors = r.errors
        v.inputTokens = r.inputTokens
        v.outputTokens = r.outputTokens
        v.cacheReadTokens = r.cacheReadTokens
        v.cacheCreationTokens = r.cacheCreationTokens
        v.reasoningTokens = r.reasoningTokens
        v.costUSD = Swift.min(r.costUsd, RollupValue.maxCostUSD)
        v.costUnknownRequests = r.costUnknownRequests
        v.latencyMs = try decodeSketch(r.latencyMs, field: "latency_ms")
        v.ttftMs = try decodeSketch(r.ttftMs, field: "ttft_ms")
        return (key, v)
    }

    /// The sketch `p` describes; nil when it is invalid (`decodeSketch` says why).
    public static func sketch(_ p: Evalforge_V1_Sketch) -> DDSketch? {
        try? decodeSketch(p, field: "sketch")
    }

    /// The sketch `p` describes, checked (`DDSketch.problem`): an error naming `field` and the
    /// problem, for example `latency_ms.alpha 0.02 differs from this build's 0.01`. An empty
    /// sketch (count 0, no buckets) is accepted whatever its alpha.
    public static func decodeSketch(_ p: Evalforge_V1_Sketch, field: String) throws(RollupDecodingError) -> DDSketch {
        if p.count == 0, p.zeroCount == 0, p.counts.allSatisfy({ $0 == 0 }) { return DDSketch() }
        if let problem = DDSketch.problem(alpha: p.alpha, count: p.count, sum: p.sum, min: p.min, max: p.max, zeroCount: p.zeroCount, offset: p.offset, counts: p.counts) {
            throw RollupDecodingError("\(field).\(problem)")
        }
        return DDSketch(unchecked: p.alpha, count: p.count, sum: p.sum, min: p.min, max: p.max, zeroCount: p.zeroCount, offset: p.offset, counts: p.counts)
    }
}

/// A rollup or sketch from outside that this build cannot use; `message` names the field.
public struct RollupDecodingError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case invalidField }
    private let code: Code
    public let message: String
    public var description: String { message }

    init(_ message: String) {
        code = .invalidField
        self.message = message
    }
}
