import EvalForgeCore

/// Where the spans of an `ExportTraceServiceRequest` are in its protobuf bytes, grouped by resource
/// and scope. Ranges index the body they were read from; nothing is copied.
package struct OTLPWireRequest {
    package struct Scope {
        /// Index into `resources`.
        package var resource: Int
        /// Payloads of the scope field (several occurrences merge; usually one or none).
        package var scope: [Range<Int>]
    }

    package struct Span {
        package var range: Range<Int>
        /// Index into `scopes`.
        package var scope: Int
    }

    /// Payloads of each ResourceSpans' resource field.
    package var resources: [[Range<Int>]] = []
    package var scopes: [Scope] = []
    package var spans: [Span] = []
}

/// Validates an OTLP/HTTP protobuf body field by field — lengths, wire types of every known field
/// (a known field with the wrong wire type is refused, where a protobuf runtime would keep it as
/// unknown), UTF-8 of every string, nesting depth — and finds its spans, without building messages.
/// Unknown fields (newer OTLP versions) are skipped. Every failure is an `OTLPRequestError.badRequest`
/// naming the place; no input traps.
package enum OTLPWireDecoder {
    /// AnyValue nesting (arrays and key-value lists inside attributes) allowed at most.
    package static let maxDepth = 64

    package static func decode(_ body: UnsafeRawBufferPointer) throws -> OTLPWireRequest {
        var out = OTLPWireRequest()
        var d = Walker(b: body)
        var c = ProtobufWireCursor(body, 0..<body.count)
        var rsIndex = 0
        while !c.isAtEnd {
            let (field, wire) = try d.tag(&c, "ExportTraceServiceRequest")
            if field == 1 {
                let r = try d.payload(&c, wire, "ExportTraceServiceRequest", field)
                d.path = .resourceSpans(rsIndex)
                try d.resourceSpans(r, into: &out)
                rsIndex += 1
            } else {
                try d.skip(&c, wire, "ExportTraceServiceRequest")
            }
        }
        return out
    }

    /// Where in the request a problem is, for the 400 message.
    enum Path {
        case request
        case resourceSpans(Int)
        case scopeSpans(Int, Int)
        case span(Int, Int, Int)

        var description: String {
            switch self {
            case .request: return "request"
            case .resourceSpans(let r): return "resource_spans[\(r)]"
            case .scopeSpans(let r, let s): return "resource_spans[\(r)].scope_spans[\(s)]"
            case .span(let r, let s, let i): return "resource_spans[\(r)].scope_spans[\(s)].spans[\(i)]"
            }
        }
    }

    /// Reads the request's fields (the checks are `CheckedWireFields`'); errors name the path.
    struct Walker: CheckedWireFields {
        let b: UnsafeRawBufferPointer
        var path = Path.request
        var depth = 0

        func fail(_ message: String) -> OTLPRequestError {
            OTLPRequestError.badRequest("body is not a valid OTLP ExportTraceServiceRequest protobuf: \(path.description): \(message)")
        }

        mutating func resourceSpans(_ r: Range<Int>, into out: inout OTLPWireRequest) throws {
            guard case .resourceSpans(let rsIndex) = path else { return }
            var c = ProtobufWireCursor(b, r)
            let resourceIndex = out.resources.count
            out.resources.append([])
            var ssIndex = 0
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "ResourceSpans")
                switch field {
                case 1:
                    let p = try payload(&c, wire, "ResourceSpans", field)
                    try resource(p)
                    out.resources[resourceIndex].append(p)
                case 2:
                    let p = try payload(&c, wire, "ResourceSpans", field)
                    path = .scopeSpans(rsIndex, ssIndex)
                    try scopeSpans(p, resource: resourceIndex, into: &out)
                    path = .resourceSpans(rsIndex)
                    ssIndex += 1
                case 3: _ = try string(&c, wire, "ResourceSpans", field)
                default: try skip(&c, wire, "ResourceSpans")
                }
            }
        }

        mutating func resource(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "Resource")
                switch field {
                case 1: try keyValue(try payload(&c, wire, "Resource", field))
                case 2: try scalar(&c, wire, 0, "Resource", field)
                case 3: try entityRef(try payload(&c, wire, "Resource", field))
                default: try skip(&c, wire, "Resource")
                }
            }
        }

        func entityRef(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "EntityRef")
                switch field {
                case 1, 2, 3, 4: _ = try string(&c, wire, "EntityRef", field)
                default: try skip(&c, wire, "EntityRef")
                }
            }
        }

        mutating func scopeSpans(_ r: Range<Int>, resource: Int, into out: inout OTLPWireRequest) throws {
            guard case .scopeSpans(let rsIndex, let ssIndex) = path else { return }
            var c = ProtobufWireCursor(b, r)
            let scopeIndex = out.scopes.count
            out.scopes.append(OTLPWireRequest.Scope(resource: resource, scope: []))
            var spanIndex = 0
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "ScopeSpans")
                switch field {
                case 1:
                    let p = try payload(&c, wire, "ScopeSpans", field)
                    try scope(p)
                    out.scopes[scopeIndex].scope.append(p)
                case 2:
                    let p = try payload(&c, wire, "ScopeSpans", field)
                    path = .span(rsIndex, ssIndex, spanIndex)
                    try span(p)
                    path = .scopeSpans(rsIndex, ssIndex)
                    out.spans.append(OTLPWireRequest.Span(range: p, scope: scopeIndex))
                    spanIndex += 1
                case 3: _ = try string(&c, wire, "ScopeSpans", field)
                default: try skip(&c, wire, "ScopeSpans")
                }
            }
        }

        mutating func scope(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "InstrumentationScope")
                switch field {
                case 1, 2: _ = try string(&c, wire, "InstrumentationScope", field)
                case 3: try keyValue(try payload(&c, wire, "InstrumentationScope", field))
                case 4: try scalar(&c, wire, 0, "InstrumentationScope", field)
                default: try skip(&c, wire, "InstrumentationScope")
                }
            }
        }

        mutating func span(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "Span")
                switch field {
                case 1, 2, 4: _ = try payload(&c, wire, "Span", field)
                case 3, 5: _ = try string(&c, wire, "Span", field)
                case 6, 10, 12, 14: try scalar(&c, wire, 0, "Span", field)
                case 7, 8: try scalar(&c, wire, 1, "Span", field)
                case 9: try keyValue(try payload(&c, wire, "Span", field))
                case 11: try event(try payload(&c, wire, "Span", field))
                case 13: try link(try payload(&c, wire, "Span", field))
                case 15: try status(try payload(&c, wire, "Span", field))
                case 16: try scalar(&c, wire, 5, "Span", field)
                default: try skip(&c, wire, "Span")
                }
            }
        }

        mutating func event(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "Span.Event")
                switch field {
                case 1: try scalar(&c, wire, 1, "Span.Event", field)
                case 2: _ = try string(&c, wire, "Span.Event", field)
                case 3: try keyValue(try payload(&c, wire, "Span.Event", field))
                case 4: try scalar(&c, wire, 0, "Span.Event", field)
                default: try skip(&c, wire, "Span.Event")
                }
            }
        }

        mutating func link(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "Span.Link")
                switch field {
                case 1, 2: _ = try payload(&c, wire, "Span.Link", field)
                case 3: _ = try string(&c, wire, "Span.Link", field)
                case 4: try keyValue(try payload(&c, wire, "Span.Link", field))
                case 5: try scalar(&c, wire, 0, "Span.Link", field)
                case 6: try scalar(&c, wire, 5, "Span.Link", field)
                default: try skip(&c, wire, "Span.Link")
                }
            }
        }

        func status(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "Status")
                switch field {
                case 2: _ = try string(&c, wire, "Status", field)
                case 3: try scalar(&c, wire, 0, "Status", field)
                default: try skip(&c, wire, "Status")
                }
            }
        }

        mutating func keyValue(_ r: Range<Int>) throws {
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "KeyValue")
                switch field {
                case 1: _ = try string(&c, wire, "KeyValue", field)
                case 2: try anyValue(try payload(&c, wire, "KeyValue", field))
                default: try skip(&c, wire, "KeyValue")
                }
            }
        }

        mutating func anyValue(_ r: Range<Int>) throws {
            depth += 1
            defer { depth -= 1 }
            guard depth <= OTLPWireDecoder.maxDepth else { throw fail("attribute values nested more than \(OTLPWireDecoder.maxDepth) deep") }
            var c = ProtobufWireCursor(b, r)
            while !c.isAtEnd {
                let (field, wire) = try tag(&c, "AnyValue")
                switch field {
                case 1: _ = try string(&c, wire, "AnyValue", field)
                case 2, 3: try scalar(&c, wire, 0, "AnyValue", field)
                case 4: try scalar(&c, wire, 1, "AnyValue", field)
                case 5, 6:
                    let p = try payload(&c, wire, "AnyValue", field)
                    var list = ProtobufWireCursor(b, p)
                    let name: StaticString = field == 5 ? "ArrayValue" : "KeyValueList"
                    while !list.isAtEnd {
                        let (f, w) = try tag(&list, name)
                        if f == 1 {
                            let item = try payload(&list, w, name, f)
                            if field == 5 { try anyValue(item) } else { try keyValue(item) }
                        } else {
                            try skip(&list, w, name)
                        }
                    }
                case 7: _ = try payload(&c, wire, "AnyValue", field)
                default: try skip(&c, wire, "AnyValue")
                }
            }
        }
    }
}
