import Synchronization

/// The bounded hand-off between recording threads and the exporter: one short critical section per
/// span (append a record), one per batch (swap arrays). Never grows past `capacity`; a full buffer
/// refuses the span and the caller counts the drop.
final class SpanBuffer: Sendable {
    private struct State {
        var pending: [SpanRecord] = []
        var wakeRequested = false
    }

    enum AppendOutcome { case accepted, acceptedBatchReady, full }

    private let state = Mutex(State())
    let capacity: Int
    let batchSize: Int

    init(capacity: Int, batchSize: Int) {
        self.capacity = max(1, capacity)
        self.batchSize = max(1, min(batchSize, capacity))
    }

    /// Takes `record` (moved in, not copied: no retain of its strings and arrays).
    @inline(__always) func append(_ record: consuming SpanRecord) -> AppendOutcome {
        // An optional the closure can move out of (a captured parameter cannot be consumed).
        var incoming = Optional(consume record)
        return state.withLock { s in
            guard s.pending.count < capacity, let record = incoming.take() else { return .full }
            s.pending.append(record)
            if s.pending.count >= batchSize, !s.wakeRequested {
                s.wakeRequested = true
                return .acceptedBatchReady
            }
            return .accepted
        }
    }

    /// Moves every pending record into `batch` (which must be empty), keeping both arrays' storage.
    func drain(into batch: inout [SpanRecord]) {
        state.withLock { s in
            swap(&s.pending, &batch)
            s.wakeRequested = false
        }
    }

    var count: Int { state.withLock { $0.pending.count } }
}
