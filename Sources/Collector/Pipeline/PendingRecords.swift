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
    }

    private var records: [Record] = []
    private var head = 0
    private var baseSeq: UInt64 = 0

    mutating func open(seq: UInt64) {
        if records.count == head {
            records.removeAll(keepingCapacity: true)
            head = 0
            baseSeq = seq
        }
        precondition(seq == baseSeq + UInt64(records.count - head) + UInt64(head), "WAL sequence gap")
        records.append(Record(seq: seq))
    }

    @inline(__always) private func index(_ seq: UInt64) -> Int? {
        guard seq >= baseSeq else { return nil }
        let i = Int(seq - baseSeq)
        return i >= head && i < records.count ? i : nil
    }

    mutating func withRecord(_ seq: UInt64, _ body: (inout Record) -> Void) {
        if let i = index(seq) { body(&records[i]) }
    }

    /// Removes and returns the longest prefix of fully decided records holding at most `maxSpans`
    /// kept spans (always at least one record when the first is decided).
    mutating func takeDecidedPrefix(maxSpans: Int) -> [Record] {
        var out: [Record] = []
        var spans = 0
        while head < records.count, records[head].undecided == 0 {
            if !out.isEmpty && spans + records[head].kept.count > maxSpans { break }
            spans += records[head].kept.count
            out.append(records[head])
            records[head] = Record(seq: records[head].seq)
            head += 1
        }
        if head > 1024 && head * 2 > records.count {
            records.removeFirst(head)
            baseSeq += UInt64(head)
            head = 0
        }
        return out
    }

    var count: Int { records.count - head }
    var keptSpans: Int { records[head...].reduce(0) { $0 + $1.kept.count } }
}
