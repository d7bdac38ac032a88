import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import SwiftProtobuf

/// Reads a collector's forwarded batch (`evalforge.v1.ForwardBatch` protobuf bytes) into the rows
/// one `SpanStore.insert` stores, without building OTLP messages: the spans are read in place by
/// `SpanRowWireReader` (rows identical to the test oracle `SpanRow.rows(from:projectID:)` on the
/// decoded message, Tests/IngestOracle);
/// the few rollups are decoded with SwiftProtobuf and `RollupCoding`. Every row is stamped with
/// `projectID`. Malformed input throws a `WireFormatError` naming the place; nothing traps.
public enum ForwardBatchWire {
    /// `ForwardBatch`'s field numbers (Protos/evalforge/v1/batch.proto), for the collector's encoder
    /// (`BatchEncoder`, which writes `resourceSpans` from span bytes) and this decoder.
    package enum Field {
        package static let batchID: UInt64 = 1
        package static let collectorID: UInt64 = 2
        package static let createdUnixNano: UInt64 = 3
        package static let resourceSpans: UInt64 = 4
        package static let rollups: UInt64 = 5
        package static let spansAccepted: UInt64 = 6
        package static let spansKept: UInt64 = 7
    }

    /// Every field of a batch but its spans (`resource_spans`, which the collector writes from the
    /// normalized span bytes it holds, after these): encoded with SwiftProtobuf.
    package static func header(batchID: String, collectorID: String, createdUnixNano: UInt64, spansAccepted: UInt64, spansKept: UInt64, rollups: [(key: RollupKey, value: RollupValue)]) throws -> [UInt8] {
        var batch = Evalforge_V1_ForwardBatch()
        batch.batchID = batchID
        batch.collectorID = collectorID
        batch.createdUnixNano = createdUnixNano
        batch.spansAccepted = spansAccepted
        batch.spansKept = spansKept
        batch.rollups = rollups.map { RollupCoding.proto(key: $0.key, value: $0.value) }
        return try batch.serializedBytes()
    }

    /// `acceptingProjects`: when given, a resource whose `evalforge.project` names a project outside
    /// it throws `ForeignProjectError` (the backend passes the key's project id and name).
    public static func decode(_ body: [UInt8], projectID: String, acceptingProjects: Set<String>? = nil) throws -> StoreBatch {
        try body.withUnsafeBytes { try decode($0, projectID: projectID, acceptingProjects: acceptingProjects) }
    }

    public static func decode(_ b: UnsafeRawBufferPointer, projectID: String, acceptingProjects: Set<String>? = nil) throws -> StoreBatch {
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
            case Field.batchID: batchID = try reader.string(&c, wire, "ForwardBatch", field)
            case Field.collectorID: _ = try reader.string(&c, wire, "ForwardBatch", field)
            case Field.createdUnixNano: try reader.scalar(&c, wire, 1, "ForwardBatch", field)
            case Field.resourceSpans:
                let r = try reader.payload(&c, wire, "ForwardBatch", field)
                if spans.isEmpty { spans.reserveCapacity(Int(min(spansKept, UInt64(b.count / 64)))) }
                try resourceSpans(r, index: rsIndex, reader: &reader, acceptingProjects: acceptingProjects, into: &spans)
                rsIndex += 1
            case Field.rollups:
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
            case Field.spansAccepted: try reader.scalar(&c, wire, 0, "ForwardBatch", field)
            case Field.spansKept: spansKept = try reader.varint(&c, wire, "ForwardBatch", field)
            default: try reader.skip(&c, wire, "ForwardBatch")
            }
        }
        return StoreBatch(projectID: projectID, batchID: reader.text(batchID), spans: spans, rollups: rollups)
    }

    private static func resourceSpans(_ r: Range<Int>, index: Int, reader: inout SpanRowWireReader, acceptingProjects: Set<String>?, into spans: inout [SpanRow]) throws {
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
        let info = ResourceInfo(resourceBytes: reader.b, ranges: resource, defaultProject: reader.projectID)
        if let acceptingProjects, let named = info.namedProject, !acceptingProjects.contains(named) {
            throw ForeignProjectError(resourceIndex: index, named: named)
        }
        let service = info.service
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
