import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation

/// Turns a sealed batch into the `evalforge.v1.ForwardBatch` protobuf. The header and rollups are
/// encoded with SwiftProtobuf; the spans (field 4, `resource_spans`) are written from the bytes the
/// pipeline already holds — resource, scope and normalized span bytes copied, never re-encoded.
enum BatchEncoder {
    static func batchID(collectorID: String, firstSeq: UInt64, lastSeq: UInt64) -> String {
        "\(collectorID)-\(firstSeq)-\(lastSeq)"
    }

    static func encode(_ b: CollectorPipeline.SealedBatch, collectorID: String) throws -> [UInt8] {
        var batch = Evalforge_V1_ForwardBatch()
        batch.batchID = batchID(collectorID: collectorID, firstSeq: b.firstSeq, lastSeq: b.lastSeq)
        batch.collectorID = collectorID
        batch.createdUnixNano = UInt64(Date().timeIntervalSince1970 * 1e9)
        batch.spansAccepted = UInt64(b.accepted)
        batch.spansKept = UInt64(b.kept.count)
        batch.rollups = b.rollups.rows.map { RollupCoding.proto(key: $0.key, value: $0.value) }
        var out: [UInt8] = try batch.serializedBytes()
        appendResourceSpans(b.kept, to: &out)
        return out
    }

    /// A run of kept spans sharing one request's scope.
    private struct ScopeRun {
        var first: Int
        var end: Int
        var payload: Int
    }

    /// Appends `resource_spans` fields: consecutive spans of the same request and scope share a
    /// ScopeSpans, consecutive scopes of the same request and resource share a ResourceSpans.
    static func appendResourceSpans(_ kept: [KeptSpan], to out: inout [UInt8]) {
        guard !kept.isEmpty else { return }
        typealias W = ProtobufWireWriter
        // Scope runs with their ScopeSpans payload sizes.
        var runs: [ScopeRun] = []
        var i = 0
        while i < kept.count {
            let k = kept[i]
            let info = k.scopeInfo
            var payload = W.lengthDelimitedSize(1, info.scope.count)
            var j = i
            while j < kept.count, kept[j].request === k.request, kept[j].scope == k.scope {
                payload += W.lengthDelimitedSize(2, kept[j].range.count)
                j += 1
            }
            runs.append(ScopeRun(first: i, end: j, payload: payload))
            i = j
        }
        // Resource groups: consecutive runs of the same request and resource.
        var total = 0
        var groups: [(runs: Range<Int>, payload: Int)] = []
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
            total += W.lengthDelimitedSize(4, payload)
            r = e
        }
        out.reserveCapacity(out.count + total)
        for g in groups {
            W.lengthDelimitedHeader(4, g.payload, into: &out)
            let first = kept[runs[g.runs.lowerBound].first]
            first.request.bytes.withUnsafeBytes { b in
                W.bytes(1, UnsafeRawBufferPointer(rebasing: b[first.scopeInfo.resource]), into: &out)
            }
            for run in runs[g.runs] {
                W.lengthDelimitedHeader(2, run.payload, into: &out)
                let k = kept[run.first]
                k.request.bytes.withUnsafeBytes { b in
                    W.bytes(1, UnsafeRawBufferPointer(rebasing: b[k.scopeInfo.scope]), into: &out)
                    for s in run.first..<run.end {
                        W.bytes(2, UnsafeRawBufferPointer(rebasing: b[kept[s].range]), into: &out)
                    }
                }
            }
        }
    }
}
