import EvalForgeCore
import EvalForgeOTLP
import Foundation

/// Rejects known fields sent with the wrong wire type. SwiftProtobuf (like every protobuf runtime)
/// keeps such fields as "unknown" instead of failing; for OTLP they mean a broken sender, so the
/// receiver answers 400 naming the field. Genuinely unknown fields (newer OTLP versions) pass.
enum WireTypeValidator {
    private static let request: [UInt64: UInt8] = [1: 2]
    private static let resourceSpans: [UInt64: UInt8] = [1: 2, 2: 2, 3: 2]
    private static let scopeSpans: [UInt64: UInt8] = [1: 2, 2: 2, 3: 2]
    private static let span: [UInt64: UInt8] = [1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 0, 7: 1, 8: 1, 9: 2, 10: 0, 11: 2, 12: 0, 13: 2, 14: 0, 15: 2, 16: 5]
    private static let keyValue: [UInt64: UInt8] = [1: 2, 2: 2]
    private static let anyValue: [UInt64: UInt8] = [1: 2, 2: 0, 3: 0, 4: 1, 5: 2, 6: 2, 7: 2]
    private static let wireNames = ["varint", "64-bit", "length-delimited", "start-group", "end-group", "32-bit"]

    static func validate(_ r: ExportTraceRequest) throws {
        try check(r.unknownFields.data, request, "ExportTraceServiceRequest")
        for (i, rs) in r.resourceSpans.enumerated() {
            try check(rs.unknownFields.data, resourceSpans, "resource_spans[\(i)]")
            for (j, ss) in rs.scopeSpans.enumerated() {
                try check(ss.unknownFields.data, scopeSpans, "resource_spans[\(i)].scope_spans[\(j)]")
                for (k, s) in ss.spans.enumerated() {
                    let path = "resource_spans[\(i)].scope_spans[\(j)].spans[\(k)]"
                    try check(s.unknownFields.data, span, path)
                    for a in s.attributes where !a.unknownFields.data.isEmpty || !a.value.unknownFields.data.isEmpty {
                        try check(a.unknownFields.data, keyValue, path + ".attributes[\(a.key)]")
                        try check(a.value.unknownFields.data, anyValue, path + ".attributes[\(a.key)].value")
                    }
                }
            }
        }
    }

    private static func check(_ data: Data, _ known: [UInt64: UInt8], _ path: String) throws {
        guard !data.isEmpty else { return }
        var r = ProtobufWireReader([UInt8](data))
        while let (field, wire) = r.nextTag() {
            if let expected = known[field], expected != wire {
                let got = Int(wire) < wireNames.count ? wireNames[Int(wire)] : "invalid"
                throw CollectorError.badRequest("\(path): field \(field) has wire type \(got), expected \(wireNames[Int(expected)])")
            }
            guard r.skip(wireType: wire) else { return }
        }
    }
}
