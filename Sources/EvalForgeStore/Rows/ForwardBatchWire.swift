import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import SwiftProtobuf

/// Reads a collector's forwarded batch (`evalforge.v1.ForwardBatch` protobuf bytes) into the rows
/// one `SpanStore.insert` stores, without building OTLP messages: the spans are read in place by
/// `SpanRowWireReader` (rows identical to `SpanRow.rows(from:projectID:)` on the decoded message);
/// the few rollups are decoded with SwiftProtobuf and `RollupCoding`. Every row is stamped with
/// `projectID`. Malformed input throws a `WireFormatError` naming the place; nothing traps.
public enum ForwardBatchWire {
    public static func decode(_ body: [UInt8], projectID: String) throws -> StoreBatch {
        try body.withUnsafeBytes { try decode($0, projectID: projectID) }
    }

    public static func decode(_ b: UnsafeRawBufferPointer, projectID: String) throws -> StoreBatch {
        var reader = SpanRowWireReader(b, projectID: projectID)
        var batchID = 0..<0
        var spans: [SpanRow] = []
        var rollups: [RollupRow] = []
        var spansKept: UInt64 = 0
        var rsIndex = 0
        var c = ProtobufWireCursor(b, 0..<b.count)
        while !c.isAtEnd {
            reader.place = (-1, -1, -1)
            let (field, wire) = try reader.tag(&c, "ForwardBatch")
            switch field {
            case 1: batchID = try reader.string(&c, wire, "ForwardBatch", field)
            case 2: _ = try reader.string(&c, wire, "ForwardBatch", field)
            case 3: try reader.scalar(&c, wire, 1, "ForwardBatch", field)
            case 4:
                let r = try reader.payload(&c, wire, "ForwardBatch", field)
                if spans.isEmpty { spans.reserveCapacity(Int(min(spansKept, UInt64(b.count / 64)))) }
                try resourceSpans(r, index: rsIndex, reader: &reader, into: &spans)
                rsIndex += 1
            case 5:
                let r = try reader.payload(&c, wire, "ForwardBatch", field)
                let i = rollups.count
                let message: Evalforge_V1_Rollup
                do {
                    message = try Evalforge_V1_Rollup(serializedBytes: Array(UnsafeRawBufferPointer(rebasing: b[r])))
                } catch {
                    throw WireFormatError("rollups[\(i)] is not a valid evalforge.v1.Rollup: \(error)")
                }
                let decoded: (RollupKey, RollupValue)
                do {
                    decoded = try RollupCoding.decodeRollup(message)
                } catch {
                    throw WireFormatError("rollups[\(i)].\(error.message)")
                }
                var key = decoded.0
                let value = decoded.1
                key.project = projectID
                rollups.append(RollupRow(key: key, value: value))
            case 6: try reader.scalar(&c, wire, 0, "ForwardBatch", field)
            case 7: spansKept = try reader.varint(&c, wire, "ForwardBatch", field)
            default: try reader.skip(&c, wire, "ForwardBatch")
            }
        }
        return StoreBatch(projectID: projectID, batchID: reader.text(batchID), spans: spans, rollups: rollups)
    }

    private static func resourceSpans(_ r: Range<Int>, index: Int, reader: inout SpanRowWireReader, into spans: inout [SpanRow]) throws {
        reader.place = (index, -1, -1)
        // The resource may follow its scopes on the wire: find both first.
        var resource: [Range<Int>] = []
        var scopes: [Range<Int>] = []
        var c = ProtobufWireCursor(reader.b, r)
        while !c.isAtEnd {
            let (field, wire) = try reader.tag(&c, "ResourceSpans")
            switch field {
            case 1:
                let p = try reader.payload(&c, wire, "ResourceSpans", field)
                try reader.validateResource(p)
                resource.append(p)
            case 2: scopes.append(try reader.payload(&c, wire, "ResourceSpans", field))
            case 3: _ = try reader.string(&c, wire, "ResourceSpans", field)
            default: try reader.skip(&c, wire, "ResourceSpans")
            }
        }
        let service = ResourceInfo(resourceBytes: reader.b, ranges: resource, defaultProject: reader.projectID).service
        for (s, scope) in scopes.enumerated() {
            var c = ProtobufWireCursor(reader.b, scope)
            var spanIndex = 0
            while !c.isAtEnd {
                reader.place = (index, s, -1)
                let (field, wire) = try reader.tag(&c, "ScopeSpans")
                switch field {
                case 1: _ = try reader.payload(&c, wire, "ScopeSpans", field)
                case 2:
                    let p = try reader.payload(&c, wire, "ScopeSpans", field)
                    reader.place = (index, s, spanIndex)
                    if let row = try reader.span(p, service: service) { spans.append(row) }
                    spanIndex += 1
                case 3: _ = try reader.string(&c, wire, "ScopeSpans", field)
                default: try reader.skip(&c, wire, "ScopeSpans")
                }
            }
        }
    }
}
