import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import Foundation

// The SwiftProtobuf message path of the span-row reader, kept only as the oracle of the tests that
// compare it with `SpanRowWireReader` (the one reader in production: forwarded batches and the
// backend's direct `/v1/traces`).

extension SpanRow {
    /// Rows of every span in normalized OTLP `ResourceSpans` (as forwarded by the collector). When an attribute key repeats, the last value wins (the
    /// collector may append normalized attributes after the original ones). Spans with an invalid
    /// trace or span id are skipped.
    public static func rows(from resourceSpans: Opentelemetry_Proto_Trace_V1_ResourceSpans, projectID: String) -> [SpanRow] {
        let resource = ResourceInfo(resourceSpans.resource, defaultProject: projectID)
        var rows: [SpanRow] = []
        for scope in resourceSpans.scopeSpans {
            rows.reserveCapacity(rows.count + scope.spans.count)
            for span in scope.spans {
                if let row = SpanRow(span: span, service: resource.service, projectID: projectID) {
                    rows.append(row)
                }
            }
        }
        return rows
    }

    /// One span's row; nil when its trace or span id is not valid (zero or the wrong length).
    public init?(span: Opentelemetry_Proto_Trace_V1_Span, service: String, projectID: String) {
        guard let traceID = TraceID(bytes: span.traceID), let spanID = SpanID(bytes: span.spanID) else { return nil }
        let parent = SpanID(bytes: span.parentSpanID)
        let start = Int64(clamping: span.startTimeUnixNano)
        let end = Int64(clamping: span.endTimeUnixNano)
        self.init(
            projectID: projectID,
            traceID: traceID.hexString,
            spanID: spanID.hexString,
            parentSpanID: parent?.hexString ?? "",
            startUnixNanos: start,
            durationNanos: max(0, end &- start),
            service: service,
            name: span.name,
            kind: SpanKind(rawValue: Int8(clamping: span.kind.rawValue)) ?? .unspecified,
            status: SpanStatus(rawValue: Int8(clamping: span.status.code.rawValue)) ?? .unset,
            statusMessage: span.status.message
        )

        var other: [(String, Opentelemetry_Proto_Common_V1_AnyValue)] = []
        var costUnknown = false
        var cost: Double?
        var errorMessage = ""
        for kv in span.attributes {
            let v = kv.value
            switch kv.key {
            case GenAIKeys.operationName: operation = v.stringValue
            case GenAIKeys.providerName: provider = v.stringValue
            case GenAIKeys.requestModel: model = v.stringValue
            case GenAIKeys.responseModel: if model.isEmpty { model = v.stringValue }; other.append((kv.key, v))
            case GenAIKeys.usageInputTokens: inputTokens = v.int64Like ?? 0
            case GenAIKeys.usageOutputTokens: outputTokens = v.int64Like ?? 0
            case GenAIKeys.usageCacheReadInputTokens: cacheReadTokens = v.int64Like ?? 0
            case GenAIKeys.usageCacheCreationInputTokens: cacheCreationTokens = v.int64Like ?? 0
            case GenAIKeys.usageReasoningOutputTokens: reasoningTokens = v.int64Like ?? 0
            case GenAIKeys.costUSD: cost = v.rowDoubleLike
            case GenAIKeys.costUnknown: costUnknown = v.boolValue
            case GenAIKeys.timeToFirstChunk:
                if let seconds = v.rowDoubleLike { ttftNanos = Self.ttftNanos(seconds: seconds) }
            case GenAIKeys.userID: userID = v.stringValue
            case GenAIKeys.sessionID: sessionID = v.stringValue
            case GenAIKeys.tags: tags = Self.tagList(v)
            case GenAIKeys.inputMessages: input = Self.content(v)
            case GenAIKeys.outputMessages: output = Self.content(v)
            case GenAIKeys.errorMessage: errorMessage = v.stringValue
            default: other.append((kv.key, v))
            }
        }
        if statusMessage.isEmpty, !errorMessage.isEmpty { statusMessage = errorMessage }
        costUSD = costUnknown ? nil : cost
        attributesJSON = AttributeJSON.object(other)
        if !span.events.isEmpty {
            var events = "["
            for (i, e) in span.events.enumerated() {
                if i > 0 { events += "," }
                events += "{\"name\":" + JSONString.quote(e.name) + ",\"timeUnixNano\":\(e.timeUnixNano),\"attributes\":"
                events += AttributeJSON.object(e.attributes.map { ($0.key, $0.value) }) + "}"
            }
            eventsJSON = events + "]"
        }
        clampNumbers()
    }

    private static func tagList(_ v: Opentelemetry_Proto_Common_V1_AnyValue) -> [String] {
        switch v.value {
        case .arrayValue(let a): return a.values.map(\.stringValue).filter { !$0.isEmpty }
        case .stringValue(let s): return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        default: return []
        }
    }

    private static func content(_ v: Opentelemetry_Proto_Common_V1_AnyValue) -> String {
        if case .stringValue(let s) = v.value { return s }
        return AttributeJSON.value(v)
    }
}

/// OTLP attribute values as JSON: strings, numbers, booleans, arrays and nested objects; bytes as base64.
public enum AttributeJSON {
    /// A JSON object of `pairs`; a repeated key keeps its last value, in first-seen order.
    public static func object(_ pairs: [(String, Opentelemetry_Proto_Common_V1_AnyValue)]) -> String {
        if pairs.isEmpty { return "{}" }
        var order: [String] = []
        var values: [String: String] = [:]
        for (k, v) in pairs {
            if values[k] == nil { order.append(k) }
            values[k] = value(v)
        }
        var out = "{"
        for (i, k) in order.enumerated() {
            if i > 0 { out += "," }
            out += JSONString.quote(k) + ":" + (values[k] ?? "null")
        }
        return out + "}"
    }

    public static func value(_ v: Opentelemetry_Proto_Common_V1_AnyValue) -> String {
        switch v.value {
        case .stringValue(let s): return JSONString.quote(s)
        case .boolValue(let b): return b ? "true" : "false"
        case .intValue(let i): return String(i)
        case .doubleValue(let d): return d.isFinite ? String(d) : JSONString.quote(String(d))
        case .arrayValue(let a): return "[" + a.values.map(value).joined(separator: ",") + "]"
        case .kvlistValue(let l): return object(l.values.map { ($0.key, $0.value) })
        case .bytesValue(let d): return JSONString.quote(d.base64EncodedString())
        case nil: return "null"
        }
    }
}

extension Opentelemetry_Proto_Common_V1_AnyValue {
    var int64Like: Int64? {
        switch value {
        case .intValue(let i): return i
        case .doubleValue(let d): return d.isFinite ? Int64(exactly: d.rounded()) : nil
        case .stringValue(let s): return Int64(s)
        default: return nil
        }
    }

    /// As the span-row reader reads a double (non-finite kept: the row clamps it), unlike the
    /// normalizer's `doubleLike`.
    var rowDoubleLike: Double? {
        switch value {
        case .doubleValue(let d): return d
        case .intValue(let i): return Double(i)
        case .stringValue(let s): return Double(s)
        default: return nil
        }
    }
}
