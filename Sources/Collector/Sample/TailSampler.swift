import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP

/// Per-trace tail sampling. A span whose trace the ratio keeps, or which makes its trace interesting
/// (error, slow, costly, matching rule), is released at once with every span buffered for that trace;
/// other spans wait until their trace's decision time and are then dropped. Decisions are
/// remembered for `decisionWait` so late spans follow their trace.
///
/// Not thread-safe: owned by the pipeline's ingest critical section.
struct TailSampler {
    struct Held {
        var seq: UInt64
        var span: KeptSpan
    }

    private struct TraceState {
        var firstSeenNanos: UInt64
        var decideAtNanos: UInt64
        var cost: Double = 0
        var held: [Held] = []
    }

    let policy: TailSamplingPolicy
    private let ratioThreshold: UInt64
    private let keepAllByRatio: Bool
    private let waitNanos: UInt64
    private let graceNanos: UInt64
    private var traces: [TraceID: TraceState] = [:]
    private var decided: [TraceID: Bool] = [:]
    private var decidedOrder: [(TraceID, UInt64)] = []
    private var decidedHead = 0
    private(set) var bufferedSpans = 0

    init(policy: TailSamplingPolicy) {
        self.policy = policy
        let r = min(1, max(0, policy.ratio))
        keepAllByRatio = r >= 1
        ratioThreshold = UInt64(r * Double(UInt64(1) << 56))
        waitNanos = Self.nanos(policy.decisionWait)
        graceNanos = Self.nanos(policy.rootGrace)
    }

    static func nanos(_ d: Duration) -> UInt64 {
        let (s, a) = d.components
        return UInt64(max(0, s)).multipliedSaturated(by: 1_000_000_000).addingSaturated(UInt64(max(0, a) / 1_000_000_000))
    }

    @inline(__always) func ratioKeeps(_ id: TraceID) -> Bool {
        keepAllByRatio || (id.low & 0x00FF_FFFF_FFFF_FFFF) < ratioThreshold
    }

    func isInteresting(_ f: SpanFacts, _ span: KeptSpan) -> Bool {
        if policy.keepErrors && f.isError { return true }
        if let ms = policy.latencyThresholdMs, Double(f.durationNanos) / 1e6 > ms { return true }
        if !policy.rules.isEmpty {
            return span.forEachAttribute { key, value in
                policy.rules.contains { $0.key == key && $0.matches(value) }
            }
        }
        return false
    }

    /// A decision about one span: kept (with the WAL record it came in) or dropped.
    enum Outcome {
        case keep(UInt64, KeptSpan)
        case drop(UInt64)
    }

    /// Offers one span; `out` receives every decision made now (this span and any held for its trace).
    mutating func offer(seq: UInt64, facts f: SpanFacts, span: KeptSpan, nowNanos: UInt64, into out: inout [Outcome]) {
        let id = f.traceID
        // The ratio decision is a function of the trace id: every span of such a trace is kept on
        // arrival, none is ever held, so nothing needs remembering (no map lookups at ratio 1).
        if ratioKeeps(id) {
            out.append(.keep(seq, span))
            return
        }
        if let d = decided[id] {
            out.append(d || isInteresting(f, span) ? .keep(seq, span) : .drop(seq))
            return
        }
        var state = traces[id] ?? TraceState(firstSeenNanos: nowNanos, decideAtNanos: nowNanos &+ waitNanos)
        state.cost += f.costUSD ?? 0
        let costly = policy.costThresholdUSD.map { state.cost > $0 } ?? false
        if costly || isInteresting(f, span) {
            traces[id] = state
            decide(id, keep: true, nowNanos: nowNanos, into: &out)
            out.append(.keep(seq, span))
            return
        }
        if f.isRoot { state.decideAtNanos = min(state.decideAtNanos, nowNanos &+ graceNanos) }
        state.held.append(Held(seq: seq, span: span))
        bufferedSpans += 1
        traces[id] = state
    }

    /// Decides every trace whose time has come (or the oldest, past `maxBufferedSpans`).
    mutating func expire(nowNanos: UInt64, force: Bool = false, into out: inout [Outcome]) {
        var due: [TraceID] = []
        for (id, s) in traces where force || s.decideAtNanos <= nowNanos { due.append(id) }
        for id in due { decide(id, keep: false, nowNanos: nowNanos, into: &out) }
        if bufferedSpans > policy.maxBufferedSpans {
            let oldest = traces.sorted { $0.value.firstSeenNanos < $1.value.firstSeenNanos }
            for (id, _) in oldest {
                guard bufferedSpans > policy.maxBufferedSpans * 9 / 10 else { break }
                decide(id, keep: false, nowNanos: nowNanos, into: &out)
            }
        }
        // Forget old decisions.
        while decidedHead < decidedOrder.count, nowNanos &- decidedOrder[decidedHead].1 > waitNanos {
            decided.removeValue(forKey: decidedOrder[decidedHead].0)
            decidedHead += 1
        }
        if decidedHead > 4096, decidedHead * 2 > decidedOrder.count {
            decidedOrder.removeFirst(decidedHead)
            decidedHead = 0
        }
    }

    private mutating func decide(_ id: TraceID, keep: Bool, nowNanos: UInt64, into out: inout [Outcome]) {
        if let state = traces.removeValue(forKey: id) {
            bufferedSpans -= state.held.count
            for h in state.held {
                out.append(keep ? .keep(h.seq, h.span) : .drop(h.seq))
            }
        }
        if decided.updateValue(keep, forKey: id) == nil { decidedOrder.append((id, nowNanos)) }
    }

    var pendingTraces: Int { traces.count }
}
