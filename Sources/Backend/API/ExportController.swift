import EvalForgeStore
import Foundation
import Hummingbird
import NIOCore

/// `GET /api/export/spans` and `GET /api/export/traces`: a filtered span or trace list as CSV or
/// JSON Lines, streamed (chunked) page by page through the store's cursor pagination, so an export
/// never holds more than one page in memory. Errors in the parameters or the first page are a 400
/// before any byte is sent; a storage failure mid-stream ends the response early.
struct ExportController: Sendable {
    let store: any SpanStore

    static let pageSize = 1000
    static let spanParameters = TraceFilterParameters.names.union(["format", "llm_only", "trace_id", "max_rows"])
    static let traceParameters = TraceFilterParameters.names.union(["format", "sort", "max_rows"])

    enum Format: String, Sendable { case csv, jsonl }

    func addRoutes(to group: RouterGroup<BackendRequestContext>) {
        group.get("spans", use: spans)
        group.get("traces", use: traces)
    }

    @Sendable func spans(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let p = try QueryParameters(request, allowed: Self.spanParameters)
        let format = try p.oneOf("format", ["csv": Format.csv, "jsonl": .jsonl], default: .jsonl)
        let traceIDs = try p.all("trace_id").map(IDFormat.traceID)
        guard traceIDs.count <= 1000 else { throw HTTPError(.badRequest, message: "at most 1000 trace_id values") }
        let filter = SpanFilter(trace: try TraceFilterParameters.filter(p, projectID: project.id), llmCallsOnly: try p.bool("llm_only"), traceIDs: traceIDs)
        let maxRows = try p.int("max_rows", default: 10_000_000, range: 1...10_000_000)
        let store = self.store
        let first = try await storeCall { try await store.listSpans(filter, limit: min(Self.pageSize, maxRows), cursor: nil) }
        return Self.stream(name: "spans", format: format, header: SpanExport.csvHeader, first: first, maxRows: maxRows, encode: { SpanExport.encode($0, format: format) }) { cursor, limit in
            try await store.listSpans(filter, limit: limit, cursor: cursor)
        }
    }

    @Sendable func traces(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let p = try QueryParameters(request, allowed: Self.traceParameters)
        let format = try p.oneOf("format", ["csv": Format.csv, "jsonl": .jsonl], default: .jsonl)
        let filter = try TraceFilterParameters.filter(p, projectID: project.id)
        let sort = try p.oneOf("sort", TraceFilterParameters.sorts, default: .startDesc)
        let maxRows = try p.int("max_rows", default: 10_000_000, range: 1...10_000_000)
        let store = self.store
        let first = try await storeCall { try await store.listTraces(filter, sort: sort, limit: min(Self.pageSize, maxRows), cursor: nil) }
        return Self.stream(name: "traces", format: format, header: TraceExport.csvHeader, first: first, maxRows: maxRows, encode: { TraceExport.encode($0, format: format) }) { cursor, limit in
            try await store.listTraces(filter, sort: sort, limit: limit, cursor: cursor)
        }
    }

    static func stream<Item: Sendable>(
        name: String, format: Format, header: String, first: Page<Item>, maxRows: Int,
        encode: @escaping @Sendable (Item) -> String,
        next: @escaping @Sendable (String, Int) async throws -> Page<Item>
    ) -> Response {
        let contentType = format == .csv ? "text/csv; charset=utf-8" : "application/x-ndjson"
        let body = ResponseBody { writer in
            var page = first
            var written = 0
            if format == .csv { try await writer.write(ByteBuffer(string: header + "\r\n")) }
            while true {
                let items = page.items.prefix(maxRows - written)
                var chunk = ""
                chunk.reserveCapacity(items.count * 512)
                for item in items { chunk += encode(item); chunk += format == .csv ? "\r\n" : "\n" }
                written += items.count
                try await writer.write(ByteBuffer(string: chunk))
                guard written < maxRows, let cursor = page.nextCursor else { break }
                page = try await next(cursor, min(pageSize, maxRows - written))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [
            .contentType: contentType, .cacheControl: "no-store",
            .contentDisposition: "attachment; filename=\"evalforge-\(name).\(format.rawValue)\"",
        ], body: body)
    }
}

enum CSV {
    static func field(_ s: String) -> String {
        if s.utf8.contains(where: { $0 == 44 || $0 == 34 || $0 == 10 || $0 == 13 }) {
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return s
    }

    static func number(_ d: Double?) -> String {
        guard let d, d.isFinite else { return "" }
        return String(d)
    }
}

/// One exported span: every stored field, content and attributes as parsed JSON in JSONL (as JSON
/// text in CSV).
struct SpanExport: Encodable {
    var traceID: String
    var spanID: String
    var parentSpanID: String
    var startUnixNanos: Int64
    var durationMs: Double
    var service: String
    var name: String
    var kind: String
    var status: String
    var statusMessage: String
    var operation: String
    var provider: String
    var model: String
    var inputTokens: Int64
    var outputTokens: Int64
    var cacheReadTokens: Int64
    var cacheCreationTokens: Int64
    var reasoningTokens: Int64
    var costUSD: Double?
    var ttftMs: Double?
    var userID: String
    var sessionID: String
    var tags: [String]
    var attributes: JSONValue
    var input: JSONValue
    var output: JSONValue

    static let csvHeader = "trace_id,span_id,parent_span_id,start_time,start_unix_nanos,duration_ms,service,name,kind,status,status_message,operation,provider,model,input_tokens,output_tokens,cache_read_tokens,cache_creation_tokens,reasoning_tokens,cost_usd,ttft_ms,user_id,session_id,tags,attributes,input,output"

    static func encode(_ s: SpanRow, format: ExportController.Format) -> String {
        switch format {
        case .csv:
            let cols: [String] = [
                s.traceID, s.spanID, s.parentSpanID, TimeFormat.rfc3339(nanos: s.startUnixNanos), String(s.startUnixNanos),
                String(Double(s.durationNanos) / 1e6), s.service, s.name, s.kind.name, s.status.name, s.statusMessage,
                s.operation, s.provider, s.model, String(s.inputTokens), String(s.outputTokens), String(s.cacheReadTokens),
                String(s.cacheCreationTokens), String(s.reasoningTokens), CSV.number(s.costUSD), CSV.number(s.ttftNanos.map { Double($0) / 1e6 }),
                s.userID, s.sessionID, s.tags.joined(separator: ";"), s.attributesJSON, s.input, s.output,
            ]
            return cols.map(CSV.field).joined(separator: ",")
        case .jsonl:
            let e = SpanExport(
                traceID: s.traceID, spanID: s.spanID, parentSpanID: s.parentSpanID, startUnixNanos: s.startUnixNanos,
                durationMs: Double(s.durationNanos) / 1e6, service: s.service, name: s.name, kind: s.kind.name, status: s.status.name,
                statusMessage: s.statusMessage, operation: s.operation, provider: s.provider, model: s.model, inputTokens: s.inputTokens,
                outputTokens: s.outputTokens, cacheReadTokens: s.cacheReadTokens, cacheCreationTokens: s.cacheCreationTokens,
                reasoningTokens: s.reasoningTokens, costUSD: s.costUSD.flatMap { $0.isFinite ? $0 : nil }, ttftMs: s.ttftNanos.map { Double($0) / 1e6 },
                userID: s.userID, sessionID: s.sessionID, tags: s.tags, attributes: JSONValue.parse(s.attributesJSON) ?? .object([:]),
                input: SpanDTO.content(s.input) ?? .null, output: SpanDTO.content(s.output) ?? .null)
            return (try? String(decoding: JSONEncoder.api.encode(e), as: UTF8.self)) ?? "{}"
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(traceID, forKey: .traceID)
        try c.encode(spanID, forKey: .spanID)
        try c.encode(parentSpanID, forKey: .parentSpanID)
        try c.encode(startUnixNanos, forKey: .startUnixNanos)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(service, forKey: .service)
        try c.encode(name, forKey: .name)
        try c.encode(kind, forKey: .kind)
        try c.encode(status, forKey: .status)
        try c.encode(statusMessage, forKey: .statusMessage)
        try c.encode(operation, forKey: .operation)
        try c.encode(provider, forKey: .provider)
        try c.encode(model, forKey: .model)
        try c.encode(inputTokens, forKey: .inputTokens)
        try c.encode(outputTokens, forKey: .outputTokens)
        try c.encode(cacheReadTokens, forKey: .cacheReadTokens)
        try c.encode(cacheCreationTokens, forKey: .cacheCreationTokens)
        try c.encode(reasoningTokens, forKey: .reasoningTokens)
        try c.encode(costUSD, forKey: .costUSD)
        try c.encode(ttftMs, forKey: .ttftMs)
        try c.encode(userID, forKey: .userID)
        try c.encode(sessionID, forKey: .sessionID)
        try c.encode(tags, forKey: .tags)
        try c.encode(attributes, forKey: .attributes)
        try c.encode(input, forKey: .input)
        try c.encode(output, forKey: .output)
    }

    private enum CodingKeys: String, CodingKey {
        case traceID, spanID, parentSpanID, startUnixNanos, durationMs, service, name, kind, status, statusMessage, operation, provider, model
        case inputTokens, outputTokens, cacheReadTokens, cacheCreationTokens, reasoningTokens, costUSD, ttftMs, userID, sessionID, tags
        case attributes, input, output
    }
}

enum TraceExport {
    static let csvHeader = "trace_id,name,service,start_time,start_unix_nanos,duration_ms,span_count,llm_calls,error_count,status,input_tokens,output_tokens,cost_usd,cost_unknown_spans,user_id,session_id,tags,models"

    static func encode(_ t: TraceSummary, format: ExportController.Format) -> String {
        switch format {
        case .csv:
            let cols: [String] = [
                t.traceID, t.name, t.service, TimeFormat.rfc3339(nanos: t.startUnixNanos), String(t.startUnixNanos), String(Double(t.durationNanos) / 1e6),
                String(t.spanCount), String(t.llmCalls), String(t.errorCount), t.errorCount > 0 ? "error" : "ok", String(t.inputTokens),
                String(t.outputTokens), CSV.number(t.costUSD), String(t.costUnknownSpans), t.userID, t.sessionID,
                t.tags.joined(separator: ";"), t.models.joined(separator: ";"),
            ]
            return cols.map(CSV.field).joined(separator: ",")
        case .jsonl:
            return (try? String(decoding: JSONEncoder.api.encode(TraceSummaryDTO(t)), as: UTF8.self)) ?? "{}"
        }
    }
}

/// UTC time text without Foundation formatters (thread-safe, fast).
enum TimeFormat {
    static func civil(_ unixSeconds: Int64) -> (y: Int64, m: Int64, d: Int64, hh: Int64, mm: Int64, ss: Int64) {
        let days = MetricsController.floorDiv(unixSeconds, 86_400)
        let secs = unixSeconds - days * 86_400
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = MetricsController.floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d, secs / 3600, (secs % 3600) / 60, secs % 60)
    }

    static func pad(_ v: Int64, _ width: Int = 2) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `2026-01-31T12:00:00.123456789Z`
    static func rfc3339(nanos: Int64) -> String {
        let secs = MetricsController.floorDiv(nanos, 1_000_000_000)
        let frac = nanos - secs * 1_000_000_000
        let c = civil(secs)
        return "\(pad(c.y, 4))-\(pad(c.m))-\(pad(c.d))T\(pad(c.hh)):\(pad(c.mm)):\(pad(c.ss)).\(pad(frac, 9))Z"
    }

    /// `2026-01-31 12:00:05` (UTC)
    static func short(nanos: Int64) -> String {
        let c = civil(MetricsController.floorDiv(nanos, 1_000_000_000))
        return "\(pad(c.y, 4))-\(pad(c.m))-\(pad(c.d)) \(pad(c.hh)):\(pad(c.mm)):\(pad(c.ss))"
    }
}
