import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation

/// Turns a sealed batch into the `evalforge.v1.ForwardBatch` protobuf.
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
        // Group runs of spans sharing resource and scope (spans of one request arrive together).
        var resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans] = []
        for k in b.kept {
            if var last = resourceSpans.last, last.resource == k.resource {
                if last.scopeSpans[last.scopeSpans.count - 1].scope == k.scope {
                    last.scopeSpans[last.scopeSpans.count - 1].spans.append(k.span)
                } else {
                    var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
                    ss.scope = k.scope
                    ss.spans = [k.span]
                    last.scopeSpans.append(ss)
                }
                resourceSpans[resourceSpans.count - 1] = last
            } else {
                var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
                rs.resource = k.resource
                var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
                ss.scope = k.scope
                ss.spans = [k.span]
                rs.scopeSpans = [ss]
                resourceSpans.append(rs)
            }
        }
        batch.resourceSpans = resourceSpans
        batch.rollups = b.rollups.rows.map { RollupCoding.proto(key: $0.key, value: $0.value) }
        return try batch.serializedBytes()
    }
}
