import EvalForgeCore
import Synchronization

/// Keeps whole traces when the local rule keeps one of their spans (an error or a slow call at a
/// ratio below 1, or under a parent that declined the trace), so the kept span does not arrive
/// orphaned. Works on the export side only: recording is unchanged (one buffer append per span).
///
/// Unsampled spans reach the buffer like the others. At each drain, spans of a trace the rule kept are
/// exported; other unsampled spans are held here for `holdTime` (10 s, at least two flush intervals)
/// in case a later span of their trace is kept — children end before their parents, siblings before
/// each other — then dropped and counted as sampled out. Bounds: at most `capacity` held spans (the buffer's size;
/// the oldest go first), and the last `maxRemembered` kept trace ids for `rememberFor`.
final class TraceKeeper: Sendable {
    static let maxRemembered = 4096
    static let rememberFor: UInt64 = 600 * 1_000_000_000

    /// How long an unsampled span waits for its trace's fate: 10 s, and at least two flush intervals
    /// (a span drained just after it ended and a kept span drained a full interval after it ended).
    static func holdTime(flushInterval: Duration) -> Duration {
        max(.seconds(10), flushInterval * 2)
    }

    private struct Held {
        var record: SpanRecord
        var heldAtNanos: UInt64
    }

    private struct State {
        var held: [Held] = []
        /// Trace id → monotonic time after which it is forgotten.
        var kept: [TraceID: UInt64] = [:]
    }

    private let state = Mutex(State())
    let capacity: Int
    let holdForNanos: UInt64

    init(capacity: Int, holdFor: Duration) {
        self.capacity = max(1, capacity)
        holdForNanos = holdFor.saturatingNanoseconds
    }

    /// Filters a drained batch in place: what should be exported stays (plus held spans whose trace
    /// is now kept); undecided unsampled spans move to the held list. Returns how many spans were
    /// dropped for good. `final` (shutdown) drops every undecided span.
    func filter(_ batch: inout [SpanRecord], now: UInt64, final: Bool) -> Int {
        state.withLock { s in
            // The common case (ratio 1, nothing held): every span sampled, nothing to decide.
            if s.held.isEmpty, !batch.contains(where: { $0.sampling != .sampled }) { return 0 }
            var dropped = 0
            for i in batch.indices where batch[i].sampling == .keptByRule {
                remember(batch[i].traceID, now: now, in: &s)
            }
            // Earlier held spans: released when their trace is kept, dropped when they waited long enough.
            var stillHeld: [Held] = []
            for h in s.held {
                if let until = s.kept[h.record.traceID], until > now {
                    batch.append(h.record)
                } else if final || now &- h.heldAtNanos >= holdForNanos {
                    dropped += 1
                } else {
                    stillHeld.append(h)
                }
            }
            var out = 0
            for i in batch.indices {
                let keep = batch[i].sampling != .notSampled || (s.kept[batch[i].traceID].map { $0 > now } ?? false)
                if keep {
                    if out != i { batch.swapAt(out, i) }
                    out += 1
                } else if final {
                    dropped += 1
                } else {
                    stillHeld.append(Held(record: batch[i], heldAtNanos: now))
                }
            }
            batch.removeSubrange(out...)
            if stillHeld.count > capacity {
                let excess = stillHeld.count - capacity
                dropped += excess
                stillHeld.removeFirst(excess)
            }
            s.held = stillHeld
            return dropped
        }
    }

    /// Spans held now, waiting for a decision on their trace.
    var heldCount: Int { state.withLock { $0.held.count } }

    private func remember(_ id: TraceID, now: UInt64, in s: inout State) {
        if s.kept[id] == nil, s.kept.count >= Self.maxRemembered {
            s.kept = s.kept.filter { $0.value > now }
            if s.kept.count >= Self.maxRemembered, let any = s.kept.first { s.kept.removeValue(forKey: any.key) }
        }
        s.kept[id] = now &+ Self.rememberFor
    }
}
