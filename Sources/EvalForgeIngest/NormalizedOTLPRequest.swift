import EvalForgeModel

/// An OTLP request normalized from its protobuf bytes, the step the collector and the backend share:
/// for every scope the resource and scope bytes as received, each span's normalized bytes
/// (`GenAINormalizer.normalize(spanBytes:…)`) and facts, all in one buffer. The collector keeps and
/// forwards the span bytes; the backend reads them into rows with the reader forwarded batches go
/// through (`rows(projectID:_:)`), so a span field is read in one place.
package struct NormalizedOTLPRequest: Sendable {
    package struct Scope: Sendable {
        /// Index of the scope's ResourceSpans in the request.
        package var resourceIndex: Int
        package var resource: Range<Int>
        package var scope: Range<Int>
    }

    package struct Span: Sendable {
        /// Nil when the span's trace or span id is invalid (it is refused).
        package var facts: SpanFacts?
        /// The normalized span's bytes in `bytes`.
        package var range: Range<Int>
        /// Index into `scopes`.
        package var scope: Int
    }

    package var bytes: [UInt8]
    package var scopes: [Scope]
    package var spans: [Span]
    /// Per resource (request order), the project its `evalforge.project` names; nil when none.
    package var namedProjects: [String?] = []

    /// The first resource naming a project `accepts` refuses, if any.
    package func foreignProject(accepts: (String) -> Bool) -> ForeignProjectError? {
        for (i, named) in namedProjects.enumerated() {
            if let named, !accepts(named) { return ForeignProjectError(resourceIndex: i, named: named) }
        }
        return nil
    }

    /// Validates `body` (`OTLPWireDecoder`: throws `OTLPRequestError` naming the place) and
    /// normalizes every span.
    package static func normalize(_ body: [UInt8], normalizer: GenAINormalizer, defaultProject: String) throws -> NormalizedOTLPRequest {
        try body.withUnsafeBytes { b in
            try build(OTLPWireDecoder.decode(b), body: b, normalizer: normalizer, defaultProject: defaultProject)
        }
    }

    /// Normalizes every span of `request` (read from `body`), in request order.
    package static func build(_ request: OTLPWireRequest, body: UnsafeRawBufferPointer, normalizer: GenAINormalizer, defaultProject: String) -> NormalizedOTLPRequest {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + request.spans.count * 96 + 64)
        var infos: [ResourceInfo] = []
        infos.reserveCapacity(request.resources.count)
        var resourceRanges: [Range<Int>] = []
        for ranges in request.resources {
            infos.append(ResourceInfo(resourceBytes: body, ranges: ranges, defaultProject: defaultProject))
            let start = out.count
            for r in ranges { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: body[r])) }
            resourceRanges.append(start..<out.count)
        }
        var scopes: [Scope] = []
        scopes.reserveCapacity(request.scopes.count)
        for s in request.scopes {
            let start = out.count
            for r in s.scope { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: body[r])) }
            scopes.append(Scope(resourceIndex: s.resource, resource: resourceRanges[s.resource], scope: start..<out.count))
        }
        var spans: [Span] = []
        spans.reserveCapacity(request.spans.count)
        var prices = GenAINormalizer.PriceCache()
        for span in request.spans {
            let start = out.count
            let f = normalizer.normalize(spanBytes: body, range: span.range, resource: infos[request.scopes[span.scope].resource], prices: &prices, into: &out)
            spans.append(Span(facts: f, range: start..<out.count, scope: span.scope))
        }
        return NormalizedOTLPRequest(bytes: out, scopes: scopes, spans: spans, namedProjects: infos.map(\.namedProject))
    }

    /// Where a span was in the request, for messages: `resource_spans[r].scope_spans[s].spans[i]`.
    package struct Place: Sendable, CustomStringConvertible {
        package var resource: Int
        package var scope: Int
        package var span: Int
        package var description: String { "resource_spans[\(resource)].scope_spans[\(scope)].spans[\(span)]" }
    }

    /// Calls `each` for every span in request order with its place, facts and row (both nil when
    /// its ids are invalid). Rows are read from the normalized bytes by `SpanRowWireReader`, exactly
    /// as a forwarded batch's are, and stamped with `projectID`. Throws `WireFormatError` for bytes
    /// the reader refuses (the request was validated, so only what the reader checks further).
    package func rows(projectID: String, _ each: (Place, SpanFacts?, SpanRow?) throws -> Void) throws {
        // The ordinal of each scope within its resource and of each span within its scope.
        var scopeOrdinal: [Int] = []
        scopeOrdinal.reserveCapacity(scopes.count)
        var lastResource = -1
        var n = 0
        for s in scopes {
            n = s.resourceIndex == lastResource ? n + 1 : 0
            lastResource = s.resourceIndex
            scopeOrdinal.append(n)
        }
        try bytes.withUnsafeBytes { b in
            var reader = SpanRowWireReader(b, projectID: projectID)
            var lastScope = -1
            var i = 0
            for span in spans {
                i = span.scope == lastScope ? i + 1 : 0
                lastScope = span.scope
                let scope = scopes[span.scope]
                let place = Place(resource: scope.resourceIndex, scope: scopeOrdinal[span.scope], span: i)
                guard let facts = span.facts else {
                    try each(place, nil, nil)
                    continue
                }
                reader.place = (place.resource, place.scope, place.span)
                try each(place, facts, try reader.span(span.range, service: facts.service))
            }
        }
    }
}
