import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP

// The SwiftProtobuf message path of the GenAI normalizer: production normalizes span bytes
// (`GenAINormalizer.normalize(spanBytes:…)`); tests compare the two on the same inputs, so this is
// kept only as their oracle. Both share `GenAIExtraction`, so a field is read in one place.

extension GenAINormalizer {
    /// Normalizes `span`'s attributes in place and returns its facts. `resource` gives service and
    /// project; `defaultProject` applies when the resource names none.
    public func normalize(_ span: inout Opentelemetry_Proto_Trace_V1_Span, resource: ResourceInfo) -> SpanFacts? {
        var cache = PriceCache()
        return normalize(&span, resource: resource, prices: &cache)
    }

    /// As `normalize(_:resource:)`, reusing `prices` across calls.
    public func normalize(_ span: inout Opentelemetry_Proto_Trace_V1_Span, resource: ResourceInfo, prices: inout PriceCache) -> SpanFacts? {
        guard let traceID = TraceID(bytes: span.traceID), let spanID = SpanID(bytes: span.spanID) else { return nil }
        var e = GenAIExtraction()
        var remove: [Int] = []
        for (i, kv) in span.attributes.enumerated() {
            if let entry = GenAIAttributeRole.byName[kv.key] {
                if e.take(entry.role, kv.value) || entry.removed { remove.append(i) }
            } else if GenAIExtraction.isMessagePart(kv.key) {
                e.takeMessagePart(kv.key, kv.value.stringValue)
            }
        }
        let added = e.complete(priceTable: priceTable, prices: &prices, startUnixNanos: span.startTimeUnixNano)

        // Rewrite attributes: deprecated names and out-of-range figures removed, canonical ones added.
        if !remove.isEmpty || !added.isEmpty {
            var attrs = span.attributes
            for i in remove.reversed() { attrs.remove(at: i) }
            for (key, value) in added {
                var kv = Opentelemetry_Proto_Common_V1_KeyValue()
                kv.key = key
                switch value {
                case .string(let s): kv.value.stringValue = s
                case .int(let i): kv.value.intValue = i
                case .double(let d): kv.value.doubleValue = d
                case .bool(let b): kv.value.boolValue = b
                }
                attrs.append(kv)
            }
            span.attributes = attrs
        }
        return e.facts(
            traceID: traceID, spanID: spanID.value, parentSpanID: SpanID(bytes: span.parentSpanID)?.value ?? 0,
            resource: resource, statusIsError: span.status.code == .error,
            start: span.startTimeUnixNano, end: span.endTimeUnixNano)
    }

}

extension ResourceInfo {
    public init(_ resource: Opentelemetry_Proto_Resource_V1_Resource, defaultProject: String) {
        var service = "unknown_service"
        var project = defaultProject
        for kv in resource.attributes {
            if kv.key == "service.name" { service = kv.value.stringValue }
            else if kv.key == GenAIKeys.project, !kv.value.stringValue.isEmpty { project = kv.value.stringValue }
        }
        self.init(service: service, project: project)
    }
}

extension Opentelemetry_Proto_Common_V1_AnyValue: GenAIAttributeValue {
    public var isNumber: Bool {
        switch value {
        case .intValue?, .doubleValue?: return true
        default: return false
        }
    }

    /// Integer value of an int, a whole double, or a numeric string (some instrumentations send strings).
    public var intLike: Int? {
        switch value {
        case .intValue(let i)?: return Int(clamping: i)
        case .doubleValue(let d)? where d.isFinite && d >= -9e15 && d <= 9e15: return Int(d)
        case .stringValue(let s)?: return Int(s)
        default: return nil
        }
    }

    public var doubleLike: Double? {
        switch value {
        case .doubleValue(let d)? where d.isFinite: return d
        case .intValue(let i)?: return Double(i)
        case .stringValue(let s)?: return Double(s).flatMap { $0.isFinite ? $0 : nil }
        default: return nil
        }
    }
}
