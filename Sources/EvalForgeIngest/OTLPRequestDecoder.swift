import EvalForgeCompression
import EvalForgeCore
import EvalForgeOTLP
import Foundation
import SwiftProtobuf

/// Turns an OTLP/HTTP request body (after its content type and encoding) into protobuf bytes, or an
/// `OTLPRequestError` naming what was wrong (HTTP 400, 413 or 415). Used by the collector's and the
/// backend's `POST /v1/traces`, so both accept the same requests with the same messages.
package enum OTLPRequestDecoder {
    package enum Format: Sendable { case protobuf, json }

    package static func format(contentType: String?) throws(OTLPRequestError) -> Format {
        let ct = (contentType ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        switch ct {
        case "application/x-protobuf", "application/protobuf": return .protobuf
        case "application/json": return .json
        case "": throw OTLPRequestError.unsupportedMediaType("missing Content-Type: send application/x-protobuf or application/json")
        default: throw OTLPRequestError.unsupportedMediaType("unsupported Content-Type '\(ct)': send application/x-protobuf or application/json")
        }
    }

    package static func inflate(_ body: [UInt8], encoding: String?, limit: Int) throws(OTLPRequestError) -> [UInt8] {
        guard let coding = ContentCoding(header: encoding) else {
            throw OTLPRequestError.unsupportedMediaType("unsupported Content-Encoding '\(encoding ?? "")': send \(ContentCoding.acceptedList)")
        }
        do { return try coding.decode(body, limit: limit) } catch {
            if error.isTooLarge { throw OTLPRequestError.tooLarge(error.message) }
            throw OTLPRequestError.badRequest(error.message)
        }
    }

    /// The request as protobuf bytes: a protobuf body as it is (the pipeline validates it while
    /// reading it, see `OTLPWireDecoder`), a JSON body decoded and re-encoded.
    package static func protobufBytes(_ body: [UInt8], format: Format) throws(OTLPRequestError) -> [UInt8] {
        switch format {
        case .protobuf:
            return body
        case .json:
            let request = try decodeJSON(body)
            do { return try request.serializedBytes() } catch {
                throw OTLPRequestError.badRequest("cannot re-encode the JSON request: \(error)")
            }
        }
    }

    package static func describe(_ error: any Error) -> String {
        switch error {
        case BinaryDecodingError.truncated: return "truncated message"
        case BinaryDecodingError.malformedProtobuf: return "malformed protobuf (bad tag, wire type or length)"
        case BinaryDecodingError.invalidUTF8: return "a string field holds invalid UTF-8"
        case BinaryDecodingError.messageDepthLimit: return "nesting too deep"
        default: return "\(error)"
        }
    }

    /// OTLP/JSON differs from proto3 JSON in one way that matters: trace and span ids are hex, not
    /// base64. They are rewritten before SwiftProtobuf's JSON decoder runs (which accepts enum
    /// names or numbers, and int64 as numbers or strings).
    package static func decodeJSON(_ body: [UInt8]) throws(OTLPRequestError) -> ExportTraceRequest {
        guard var root = (try? JSONSerialization.jsonObject(with: Data(body), options: [])) as? [String: Any] else {
            throw OTLPRequestError.badRequest("body is not a JSON object (OTLP/JSON ExportTraceServiceRequest expected)")
        }
        if var rss = root["resourceSpans"] as? [[String: Any]] {
            for r in rss.indices {
                guard var sss = rss[r]["scopeSpans"] as? [[String: Any]] else { continue }
                for s in sss.indices {
                    guard var spans = sss[s]["spans"] as? [[String: Any]] else { continue }
                    for i in spans.indices {
                        try rewriteIDs(&spans[i], path: "resourceSpans[\(r)].scopeSpans[\(s)].spans[\(i)]")
                        if var links = spans[i]["links"] as? [[String: Any]] {
                            for l in links.indices { try rewriteIDs(&links[l], path: "resourceSpans[\(r)].scopeSpans[\(s)].spans[\(i)].links[\(l)]") }
                            spans[i]["links"] = links
                        }
                    }
                    sss[s]["spans"] = spans
                }
                rss[r]["scopeSpans"] = sss
            }
            root["resourceSpans"] = rss
        }
        do {
            let data = try JSONSerialization.data(withJSONObject: root)
            var options = JSONDecodingOptions()
            options.ignoreUnknownFields = true
            return try ExportTraceRequest(jsonUTF8Data: data, options: options)
        } catch {
            throw OTLPRequestError.badRequest("body is not a valid OTLP/JSON ExportTraceServiceRequest: \(error)")
        }
    }

    private static func rewriteIDs(_ o: inout [String: Any], path: String) throws(OTLPRequestError) {
        for key in ["traceId", "spanId", "parentSpanId"] {
            guard let v = o[key] else { continue }
            guard let hex = v as? String else { throw OTLPRequestError.badRequest("\(path).\(key) must be a hex string") }
            if hex.isEmpty { continue }
            guard let bytes = Hex.decode(hex) else { throw OTLPRequestError.badRequest("\(path).\(key) '\(hex.prefix(40))' is not hex") }
            o[key] = Data(bytes).base64EncodedString()
        }
    }
}
