import Synchronization

/// The bounded hand-off between recording threads and the exporter: one short critical section per
/// span (move a record in), one per batch (swap arrays). Never grows past `capacity`; a full buffer
/// refuses the span and the caller counts the drop.
final class SpanBuffer: Sendable {
    private struct State {
        var pending: [SpanRecord] = []
        var wakeRequested = false
        var accepted = 0
    }

    enum AppendOutcome { case accepted, acceptedBatchReady, full }

    private let state = Mutex(State())
    /// `pending.count`, published for readers (statistics, the export loop's "more to send?") so
    /// they do not take the lock recording threads need.
    private let pendingCount = Atomic<Int>(0)
    /// Records accepted since creation, counted under the lock and published like `pendingCount`
    /// (a plain store, not a second atomic read-modify-write per span).
    private let acceptedCount = Atomic<Int>(0)
    let capacity: Int
    let batchSize: Int

    init(capacity: Int, batchSize: Int) {
        self.capacity = max(1, capacity)
        self.batchSize = max(1, min(batchSize, capacity))
    }

    /// Moves `record` into the buffer, leaving only its plain fields behind (`SpanRecord(keeping:)`):
    /// no copy of the record, no retain of its strings and arrays. When the buffer is full `record`
    /// is left as it was.
    @inline(__always) func append(from record: inout SpanRecord) -> AppendOutcome {
        let plain = record.plain
        return withUnsafeMutablePointer(to: &record) { slot in
            state.withLock { s in
                guard s.pending.count < capacity else { return .full }
                // Moved out and re-initialized at once: nothing can observe `slot` in between.
                s.pending.append(slot.move())
                slot.initialize(to: SpanRecord(keeping: plain))
                pendingCount.store(s.pending.count, ordering: .relaxed)
                s.accepted &+= 1
                acceptedCount.store(s.accepted, ordering: .relaxed)
                if s.pending.count >= batchSize, !s.wakeRequested {
                    s.wakeRequested = true
                    return .acceptedBatchReady
                }
                return .accepted
            }
        }
    }

    /// Moves every pending record into `batch` (which must be empty), keeping both arrays' storage.
    func drain(into batch: inout [SpanRecord]) {
        state.withLock { s in
            swap(&s.pending, &batch)
            s.wakeRequested = false
            pendingCount.store(s.pending.count, ordering: .relaxed)
        }
    }

    /// Records waiting now (a moment's snapshot, read without the lock).
    var count: Int { pendingCount.load(ordering: .relaxed) }

    /// Records accepted since creation (a moment's snapshot, read without the lock).
    var accepted: Int { acceptedCount.load(ordering: .relaxed) }
}
