import EvalForgeStore
import EvalForgeModel
import Foundation
import Hummingbird
import NIOCore

/// `GET /api/export/spans` and `GET /api/export/traces`: a filtered span or trace list as CSV or
/// JSON Lines, streamed (chunked) page by page through the store's cursor pagination, so an export
/// never holds more than one page in memory: a first page of `firstPageSize` rows (the first bytes
/// go out quickly), then pages of `pageSize` (the store's largest page: every page is a query, so 10,000
/// spans are two queries, not ten). Errors in the parameters or the first page are a 400
/// before any byte is sent; a storage failure mid-stream ends the response early.
struct ExportController: Sendable {
    let store: any SpanStore

    static let firstPageSize = 1000
    static let pageSize = 10_000
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
        let first = try await storeCall { try await store.listSpans(filter, limit: min(Self.firstPageSize, maxRows), cursor: nil) }
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
        let first = try await storeCall { try await store.listTraces(filter, sort: sort, limit: min(Self.firstPageSize, maxRows), cursor: nil) }
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

/// One exported span: every stored field, content and attributes as JSON in JSONL (as JSON text in
/// CSV).
enum SpanExport {
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
            // Written by hand (same fields and order as `ExportedSpan` in docs/openapi.yaml): stored
            // JSON is embedded as is, so a 10,000-span export costs no parse and re-encode.
            var o = "{\"trace_id\":" + JSONString.quote(s.traceID) + ",\"span_id\":" + JSONString.quote(s.spanID) + ",\"parent_span_id\":" + JSONString.quote(s.parentSpanID)
            o += ",\"start_unix_nanos\":\(s.startUnixNanos),\"duration_ms\":\(Double(s.durationNanos) / 1e6)"
            o += ",\"service\":" + JSONString.quote(s.service) + ",\"name\":" + JSONString.quote(s.name)
            o += ",\"kind\":\"\(s.kind.name)\",\"status\":\"\(s.status.name)\",\"status_message\":" + JSONString.quote(s.statusMessage)
            o += ",\"operation\":" + JSONString.quote(s.operation) + ",\"provider\":" + JSONString.quote(s.provider) + ",\"model\":" + JSONString.quote(s.model)
            o += ",\"input_tokens\":\(s.inputTokens),\"output_tokens\":\(s.outputTokens),\"cache_read_tokens\":\(s.cacheReadTokens)"
            o += ",\"cache_creation_tokens\":\(s.cacheCreationTokens),\"reasoning_tokens\":\(s.reasoningTokens)"
            o += ",\"cost_usd\":" + JSONText.number(s.costUSD) + ",\"ttft_ms\":" + JSONText.number(s.ttftNanos.map { Double($0) / 1e6 })
            o += ",\"user_id\":" + JSONString.quote(s.userID) + ",\"session_id\":" + JSONString.quote(s.sessionID)
            o += ",\"tags\":[" + s.tags.map(JSONString.quote).joined(separator: ",") + "]"
            let attrs = JSONText.embed(s.attributesJSON, emptyAs: "{}")
            o += ",\"attributes\":" + (attrs.hasPrefix("{") ? attrs : "{}")
            o += ",\"input\":" + JSONText.embed(s.input) + ",\"output\":" + JSONText.embed(s.output) + "}"
            return o
        }
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
