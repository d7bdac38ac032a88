import EvalForgeModel

/// WAL records whose results (rollups and kept spans) have not been forwarded yet, in sequence
/// order. A record can be forwarded once every one of its spans has a sampling decision.
struct PendingRecords {
    struct Record {
        var seq: UInt64
        var rollups = RollupTable()
        var kept: [KeptSpan] = []
        var undecided = 0
        var accepted = 0
        /// An upper bound of the kept spans' bytes in a batch: each span with its field header,
        /// and each run of spans of one scope with its resource and scope (as `BatchEncoder` lays
        /// them out), plus the rollups.
        var bytes = 0

        mutating func keep(_ span: KeptSpan) {
            if kept.last.map({ $0.scope != span.scope }) ?? true {
                let info = span.scopeInfo
                bytes += info.resource.count + info.scope.count + 36
            }
            bytes += span.range.count + 6
            kept.append(span)
        }

        /// `bytes` with the rollups (merged into the batch's, so this is from above).
        var batchBytes: Int { bytes + PendingRecords.estimatedBytes(rollups) }
    }

    /// An upper bound of `table`'s encoded size in a batch.
    static func estimatedBytes(_ table: RollupTable) -> Int {
        var n = 0
        for (k, v) in table.rows {
            n += 96 + k.project.utf8.count + k.service.utf8.count + k.provider.utf8.count + k.model.utf8.count
            n += 2 * 48 + (v.latencyMs.counts.count + v.ttftMs.counts.count) * 10
        }
        return n
    }

    private var records: [Record] = []
    private var head = 0

    /// Starts the record `seq`. Sequences increase; a gap (records missing from a damaged WAL,
    /// reported by the replay) is allowed. Returns false, opening nothing, for a sequence not above
    /// the last one opened (the caller skips it: it cannot be ordered among the open records).
    @discardableResult
    mutating func open(seq: UInt64) -> Bool {
        if records.count == head {
            records.removeAll(keepingCapacity: true)
            head = 0
        } else if let last = records.last, seq <= last.seq {
            return false
        }
        records.append(Record(seq: seq))
        return true
    }

    /// The index of record `seq`: without gaps (the normal case) at its distance from the first
    /// open record, otherwise found by binary search.
    @inline(__always) private func index(_ seq: UInt64) -> Int? {
        guard head < records.count, seq >= records[head].seq else { return nil }
        let distance = seq - records[head].seq
        if distance < UInt64(records.count - head) {
            let guess = head + Int(distance)
            if records[guess].seq == seq { return guess }
        }
        var lo = head, hi = records.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if records[mid].seq < seq { lo = mid + 1 } else { hi = mid }
        }
        return lo < records.count && records[lo].seq == seq ? lo : nil
    }

    mutating func withRecord(_ seq: UInt64, _ body: (inout Record) -> Void) {
        if let i = index(seq) { body(&records[i]) }
    }

    /// Removes and returns the longest prefix of fully decided records holding at most `maxSpans`
    /// kept spans (always at least one record when the first is decided).
    mutating func takeDecidedPrefix(maxSpans: Int, maxBytes: Int = .max) -> [Record] {
        var out: [Record] = []
        var spans = 0
        var bytes = 0
        while head < records.count, records[head].undecided == 0 {
            let recordBytes = records[head].batchBytes
            if !out.isEmpty && (spans + records[head].kept.count > maxSpans || bytes + recordBytes > maxBytes) { break }
            spans += records[head].kept.count
            bytes += recordBytes
            out.append(records[head])
            records[head] = Record(seq: records[head].seq)
            head += 1
        }
        if head > 1024 && head * 2 > records.count {
            records.removeFirst(head)
            head = 0
        }
        return out
    }

    var count: Int { records.count - head }
    var keptSpans: Int { records[head...].reduce(0) { $0 + $1.kept.count } }
}
