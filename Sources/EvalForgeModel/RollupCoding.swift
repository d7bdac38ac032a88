import EvalForgeOTLP

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

    /// The rollup a protobuf row describes; nil when its sketches are inconsistent.
    public static func rollup(_ r: Evalforge_V1_Rollup) -> (RollupKey, RollupValue)? {
        let key = RollupKey(minuteUnix: r.minuteUnix, project: r.project, service: r.service, provider: r.provider, model: r.model, isError: r.error)
        var v = RollupValue()
        v.requests = r.requests
        v.errors = r.errors
        v.inputTokens = r.inputTokens
        v.outputTokens = r.outputTokens
        v.cacheReadTokens = r.cacheReadTokens
        v.cacheCreationTokens = r.cacheCreationTokens
        v.reasoningTokens = r.reasoningTokens
        v.costUSD = r.costUsd
        v.costUnknownRequests = r.costUnknownRequests
        guard let l = sketch(r.latencyMs), let t = sketch(r.ttftMs) else { return nil }
        v.latencyMs = l
        v.ttftMs = t
        return (key, v)
    }

    public static func sketch(_ p: Evalforge_V1_Sketch) -> DDSketch? {
        if p.count == 0 { return DDSketch(alpha: p.alpha > 0 && p.alpha < 1 ? p.alpha : 0.01) }
        return DDSketch(alpha: p.alpha, count: p.count, sum: p.sum, min: p.min, max: p.max, zeroCount: p.zeroCount, offset: p.offset, counts: p.counts)
    }
}
