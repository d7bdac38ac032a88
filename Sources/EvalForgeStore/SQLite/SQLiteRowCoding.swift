import EvalForgeIngest
import EvalForgeModel
import Foundation

/// Conversions between rows and SQLite values.
enum SQLiteRowCoding {
    static let spanColumns = "project_id, trace_id, span_id, parent_span_id, start_ns, duration_ns, service, name, kind, status, status_message, operation, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd, ttft_ns, user_id, session_id, tags, attributes, input, output, events"
    static let spanColumnCount = 28

    static func values(_ s: SpanRow) -> [SQLiteValue] {
        [.text(s.projectID), .text(s.traceID), .text(s.spanID), .text(s.parentSpanID), .integer(s.startUnixNanos), .integer(s.durationNanos),
         .text(s.service), .text(s.name), .integer(Int64(s.kind.rawValue)), .integer(Int64(s.status.rawValue)), .text(s.statusMessage),
         .text(s.operation), .text(s.provider), .text(s.model), .integer(s.inputTokens), .integer(s.outputTokens), .integer(s.cacheReadTokens),
         .integer(s.cacheCreationTokens), .integer(s.reasoningTokens), s.costUSD.map { .real($0) } ?? .null, s.ttftNanos.map { .integer($0) } ?? .null,
         .text(s.userID), .text(s.sessionID), .text(json(s.tags)), .text(s.attributesJSON), .text(s.input), .text(s.output), .text(s.eventsJSON)]
    }

    static func span(_ r: SQLiteRow) -> SpanRow {
        SpanRow(
            projectID: r["project_id"].string ?? "", traceID: r["trace_id"].string ?? "", spanID: r["span_id"].string ?? "",
            parentSpanID: r["parent_span_id"].string ?? "", startUnixNanos: r["start_ns"].int64 ?? 0, durationNanos: r["duration_ns"].int64 ?? 0,
            service: r["service"].string ?? "", name: r["name"].string ?? "",
            kind: SpanKind(rawValue: Int8(clamping: r["kind"].int64 ?? 0)) ?? .unspecified,
            status: SpanStatus(rawValue: Int8(clamping: r["status"].int64 ?? 0)) ?? .unset,
            statusMessage: r["status_message"].string ?? "", operation: r["operation"].string ?? "", provider: r["provider"].string ?? "",
            model: r["model"].string ?? "", inputTokens: r["input_tokens"].int64 ?? 0, outputTokens: r["output_tokens"].int64 ?? 0,
            cacheReadTokens: r["cache_read_tokens"].int64 ?? 0, cacheCreationTokens: r["cache_creation_tokens"].int64 ?? 0,
            reasoningTokens: r["reasoning_tokens"].int64 ?? 0, costUSD: r["cost_usd"].double, ttftNanos: r["ttft_ns"].int64,
            userID: r["user_id"].string ?? "", sessionID: r["session_id"].string ?? "", tags: stringArray(r["tags"].string),
            attributesJSON: r["attributes"].string ?? "{}", input: r["input"].string ?? "", output: r["output"].string ?? "",
            eventsJSON: r["events"].string ?? "[]")
    }

    static func values(_ s: ScoreRow) -> [SQLiteValue] {
        [.text(s.projectID), .text(s.id), .text(s.traceID), .text(s.spanID), .text(s.sessionID), .text(s.name), s.value.map { .real($0) } ?? .null,
         .text(s.label), .text(s.dataType.rawValue), .text(s.source.rawValue), .text(s.comment), .text(s.evaluator), .text(s.runID), .integer(s.createdUnixNanos)]
    }

    static func score(_ r: SQLiteRow) -> ScoreRow {
        ScoreRow(id: r["id"].string ?? "", projectID: r["project_id"].string ?? "", traceID: r["trace_id"].string ?? "", spanID: r["span_id"].string ?? "",
                 sessionID: r["session_id"].string ?? "", name: r["name"].string ?? "", value: r["value"].double, label: r["label"].string ?? "",
                 dataType: ScoreDataType(rawValue: r["data_type"].string ?? "") ?? .numeric, source: ScoreSource(rawValue: r["source"].string ?? "") ?? .api,
                 comment: r["comment"].string ?? "", evaluator: r["evaluator"].string ?? "", runID: r["run_id"].string ?? "",
                 createdUnixNanos: r["created_ns"].int64 ?? 0)
    }

    static func rollupValues(_ v: RollupValue) -> [SQLiteValue] {
        [.integer(Int64(clamping: v.requests)), .integer(Int64(clamping: v.errors)), .integer(Int64(clamping: v.inputTokens)), .integer(Int64(clamping: v.outputTokens)),
         .integer(Int64(clamping: v.cacheReadTokens)), .integer(Int64(clamping: v.cacheCreationTokens)), .integer(Int64(clamping: v.reasoningTokens)),
         .real(v.costUSD), .integer(Int64(clamping: v.costUnknownRequests)), .blob(sketchBytes(v.latencyMs)), .blob(sketchBytes(v.ttftMs))]
    }

    static func rollupValue(_ r: SQLiteRow) -> RollupValue {
        var v = RollupValue()
        v.requests = UInt64(max(0, r["requests"].int64 ?? 0))
        v.errors = UInt64(max(0, r["errors"].int64 ?? 0))
        v.inputTokens = UInt64(max(0, r["input_tokens"].int64 ?? 0))
        v.outputTokens = UInt64(max(0, r["output_tokens"].int64 ?? 0))
        v.cacheReadTokens = UInt64(max(0, r["cache_read_tokens"].int64 ?? 0))
        v.cacheCreationTokens = UInt64(max(0, r["cache_creation_tokens"].int64 ?? 0))
        v.reasoningTokens = UInt64(max(0, r["reasoning_tokens"].int64 ?? 0))
        v.costUSD = r["cost_usd"].double ?? 0
        v.costUnknownRequests = UInt64(max(0, r["cost_unknown_requests"].int64 ?? 0))
        v.latencyMs = sketch(r["latency_ms"]) ?? DDSketch()
        v.ttftMs = sketch(r["ttft_ms"]) ?? DDSketch()
        return v
    }

    static func sketchBytes(_ s: DDSketch) -> [UInt8] {
        RollupCoding.sketchBytes(s)
    }

    static func sketch(_ v: SQLiteValue) -> DDSketch? {
        guard case .blob(let bytes) = v else { return nil }
        // A stored row is outside data too: a sketch of another alpha cannot be merged with the others.
        guard let s = RollupCoding.sketch(bytes: bytes), s.alpha == DDSketch().alpha else { return nil }
        return s
    }

    static func json(_ strings: [String]) -> String {
        "[" + strings.map(JSONString.quote).joined(separator: ",") + "]"
    }

    static func stringArray(_ text: String?) -> [String] {
        guard let text, text.count > 2, let data = text.data(using: .utf8), let a = try? JSONDecoder().decode([String].self, from: data) else { return [] }
        return a
    }
}
