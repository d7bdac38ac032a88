import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP

/// The accepted content of one request as protobuf bytes, ready to forward: for every scope, the
/// resource and scope bytes as received, and each span's normalized bytes (see
/// `GenAINormalizer.normalize(spanBytes:…)`), as `NormalizedOTLPRequest` built them. Immutable once built and shared by the request's
/// kept spans, so keeping a span is a reference and a range, and forwarding it a copy of bytes.
final class NormalizedRequest: Sendable {
    typealias Scope = NormalizedOTLPRequest.Scope

    let bytes: [UInt8]
    let scopes: [Scope]

    init(bytes: [UInt8], scopes: [Scope]) {
        self.bytes = bytes
        self.scopes = scopes
    }
}

/// A span on its way to the backend: its normalized bytes in a `NormalizedRequest`, with the
/// resource and scope it came with.
struct KeptSpan: Sendable {
    let request: NormalizedRequest
    let scope: Int32
    let range: Range<Int>

    var scopeInfo: NormalizedRequest.Scope { request.scopes[Int(scope)] }

    /// The decoded span (tests and diagnostics; the forwarder copies bytes).
    var span: Opentelemetry_Proto_Trace_V1_Span {
        (try? Opentelemetry_Proto_Trace_V1_Span(serializedBytes: Array(request.bytes[range]))) ?? .init()
    }

    var resource: Opentelemetry_Proto_Resource_V1_Resource {
        (try? Opentelemetry_Proto_Resource_V1_Resource(serializedBytes: Array(request.bytes[scopeInfo.resource]))) ?? .init()
    }

    var scopeMessage: Opentelemetry_Proto_Common_V1_InstrumentationScope {
        (try? Opentelemetry_Proto_Common_V1_InstrumentationScope(serializedBytes: Array(request.bytes[scopeInfo.scope]))) ?? .init()
    }

    /// Calls `body` with the key and string value ("" for other types) of each attribute.
    func forEachAttribute(_ body: (String, String) -> Bool) -> Bool {
        request.bytes.withUnsafeBytes { b in
            var c = ProtobufWireCursor(b, range)
            while !c.isAtEnd {
                guard let (field, wire) = c.tag() else { return false }
                guard field == 9, wire == 2 else {
                    if !c.skip(wireType: wire) { return false }
                    continue
                }
                guard let kv = c.lengthDelimited() else { return false }
                var k = ProtobufWireCursor(b, kv)
                var key = ""
                var value = ""
                while !k.isAtEnd {
                    guard let (f, w) = k.tag() else { break }
                    if w == 2, f == 1, let r = k.lengthDelimited() {
                        key = String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
                    } else if w == 2, f == 2, let r = k.lengthDelimited() {
                        var v = ProtobufWireCursor(b, r)
                        value = ""
                        while !v.isAtEnd {
                            guard let (vf, vw) = v.tag() else { break }
                            if vf == 1, vw == 2, let s = v.lengthDelimited() {
                                value = String(decoding: UnsafeRawBufferPointer(rebasing: b[s]), as: UTF8.self)
                            } else if !v.skip(wireType: vw) {
                                break
                            }
                        }
                    } else if !k.skip(wireType: w) {
                        break
                    }
                }
                if body(key, value) { return true }
            }
            return false
        }
    }
}
