import EvalForgeCompression
import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import Foundation

/// Turns a sealed batch into the `evalforge.v1.ForwardBatch` protobuf. The header and rollups are
/// encoded with SwiftProtobuf; the spans (field 4, `resource_spans`) are written from the bytes the
/// pipeline already holds — resource, scope and normalized span bytes copied, never re-encoded.
enum BatchEncoder {
    /// `<collector id>-<instance epoch>-<first seq>-<last seq>`: unique across WAL resets (the
    /// epoch changes with the WAL, `InstanceEpoch`) and hosts, and the same when a batch is resent.
    static func batchID(collectorID: String, epoch: String, firstSeq: UInt64, lastSeq: UInt64) -> String {
        "\(collectorID)-\(epoch)-\(firstSeq)-\(lastSeq)"
    }

    /// The batch's protobuf, compressed with `coding` at `level`. With zstd and lz4 the bytes are
    /// streamed to the compressor in cache-sized chunks as they are written (the uncompressed batch
    /// is never assembled).
    static func encode(_ b: CollectorPipeline.SealedBatch, collectorID: String, epoch: String, coding: ContentCoding, level: Int32) throws -> [UInt8] {
        let header = try headerBytes(b, collectorID: collectorID, epoch: epoch)
        let layout = ResourceSpansLayout(b.kept)
        return try coding.encode(size: header.count + layout.bytes, level: level) { feed in
            try header.withUnsafeBytes(feed)
            try layout.write(b.kept, chunkBytes: 256 << 10) { chunk in try chunk.withUnsafeBytes(feed) }
        }
    }

    /// Every field but the spans (`ForwardBatchWire.header`).
    private static func headerBytes(_ b: CollectorPipeline.SealedBatch, collectorID: String, epoch: String) throws -> [UInt8] {
        try ForwardBatchWire.header(
            batchID: batchID(collectorID: collectorID, epoch: epoch, firstSeq: b.firstSeq, lastSeq: b.lastSeq),
            collectorID: collectorID,
            createdUnixNano: (Date().timeIntervalSince1970 * 1e9).clampedInteger(UInt64.self) ?? 0,
            spansAccepted: UInt64(clamping: b.accepted),
            spansKept: UInt64(b.kept.count),
            rollups: b.rollups.rows.map { ($0.key, $0.value) })
    }

    /// A run of kept spans sharing one request's scope.
    private struct ScopeRun {
        var first: Int
        var end: Int
        var payload: Int
    }

    /// How kept spans are grouped into `resource_spans` fields (`ForwardBatchWire.Field.resourceSpans`): consecutive spans of the same
    /// request and scope share a ScopeSpans, consecutive scopes of the same request and resource
    /// share a ResourceSpans. Sizes are computed first so the bytes can be written in one pass.
    struct ResourceSpansLayout {
        private var runs: [ScopeRun] = []
        private var groups: [(runs: Range<Int>, payload: Int)] = []
        /// The encoded size of every `resource_spans` field.
        private(set) var bytes = 0

        init(_ kept: [KeptSpan]) {
            typealias W = ProtobufWireWriter
            var i = 0
            while i < kept.count {
                let k = kept[i]
                var payload = W.lengthDelimitedSize(1, k.scopeInfo.scope.count)
                var j = i
                while j < kept.count, kept[j].request === k.request, kept[j].scope == k.scope {
                    payload += W.lengthDelimitedSize(2, kept[j].range.count)
                    j += 1
                }
                runs.append(ScopeRun(first: i, end: j, payload: payload))
                i = j
            }
            var r = 0
            while r < runs.count {
                let k = kept[runs[r].first]
                var payload = W.lengthDelimitedSize(1, k.scopeInfo.resource.count)
                var e = r
                while e < runs.count {
                    let o = kept[runs[e].first]
                    guard o.request === k.request, o.scopeInfo.resourceIndex == k.scopeInfo.resourceIndex else { break }
                    payload += W.lengthDelimitedSize(2, runs[e].payload)
                    e += 1
                }
                groups.append((r..<e, payload))
                bytes += W.lengthDelimitedSize(ForwardBatchWire.Field.resourceSpans, payload)
                r = e
            }
        }

        /// Writes the fields for `kept` (the spans the layout was built from), handing them to
        /// `emit` in chunks of at least `chunkBytes` (the last may be shorter).
        func write(_ kept: [KeptSpan], chunkBytes: Int, emit: ([UInt8]) throws -> Void) throws {
            typealias W = ProtobufWireWriter
            var out: [UInt8] = []
            out.reserveCapacity(min(bytes, chunkBytes + (64 << 10)))
            for g in groups {
                W.lengthDelimitedHeader(ForwardBatchWire.Field.resourceSpans, g.payload, into: &out)
                let first = kept[runs[g.runs.lowerBound].first]
                first.request.bytes.withUnsafeBytes { b in
                    W.bytes(1, UnsafeRawBufferPointer(rebasing: b[first.scopeInfo.resource]), into: &out)
                }
                for run in runs[g.runs] {
                    W.lengthDelimitedHeader(2, run.payload, into: &out)
                    let k = kept[run.first]
                    try k.request.bytes.withUnsafeBytes { b in
                        W.bytes(1, UnsafeRawBufferPointer(rebasing: b[k.scopeInfo.scope]), into: &out)
                        for s in run.first..<run.end {
                            W.bytes(2, UnsafeRawBufferPointer(rebasing: b[kept[s].range]), into: &out)
                            if out.count >= chunkBytes {
                                try emit(out)
                                out.removeAll(keepingCapacity: true)
                            }
                        }
                    }
                }
            }
            if !out.isEmpty { try emit(out) }
        }
    }
}
