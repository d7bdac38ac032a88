import EvalForgeModel
import EvalForgeStore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers

/// Traces list with a filter form (every filter of the API) and cursor paging.
struct TracesPage: Sendable {
    let store: any SpanStore
    let optionsCache: OptionsCache

    static let rangeOptions: [(String, String, Int64)] = [("", "Any time", 0), ("1h", "Last hour", 3600), ("24h", "Last 24 hours", 86_400), ("7d", "Last 7 days", 7 * 86_400), ("30d", "Last 30 days", 30 * 86_400)]
    static let sortOptions: [(TraceSort, String)] = [(.startDesc, "Newest first"), (.startAsc, "Oldest first"), (.costDesc, "Most expensive"), (.durationDesc, "Slowest")]

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await WebUI.guarded(context) {
            let project = try context.requireProject()
            let p = try QueryParameters(request, allowed: TraceFilterParameters.names.union(["range", "sort", "cursor", "limit"]))
            var filter = try TraceFilterParameters.filter(p, projectID: project.id)
            let range = p.string("range") ?? ""
            guard let r = Self.rangeOptions.first(where: { $0.0 == range }) else { throw HTTPError(.badRequest, message: "range must be one of 1h, 24h, 7d, 30d") }
            if r.2 > 0, filter.from == nil { filter.from = (Int64(Date().timeIntervalSince1970) - r.2) * 1_000_000_000 }
            let sort = try p.oneOf("sort", TraceFilterParameters.sorts, default: .startDesc)
            let limit = try p.int("limit", default: 100, range: 1...500)
            let cursor = p.string("cursor")
            let projectID = project.id
            async let pageTask = storeCall { try await store.listTraces(filter, sort: sort, limit: limit, cursor: cursor) }
            async let optionsTask = optionsCache.options(store: store, projectID: projectID)
            let page = try await pageTask
            let options = try await optionsTask
            return Layout.response(Layout.page(title: "Traces", section: .traces, project: project.name, Self.body(p: p, page: page, options: options, sort: sort)))
        }
    }

    struct Options: Sendable { var services: [String]; var providers: [String]; var models: [String] }

    /// Select-box values per project, kept for a minute so paging and filtering do not re-read them.
    final class OptionsCache: Sendable {
        private let box = NIOLockedValueBox<[String: (at: ContinuousClock.Instant, options: Options)]>([:])

        /// Values seen in the last 30 days, for the select boxes (from the rollups), cached for a minute.
        func options(store: any SpanStore, projectID: String) async throws -> Options {
            let now = ContinuousClock.now
            if let hit = box.withLockedValue({ $0[projectID] }), now - hit.at < .seconds(60) { return hit.options }
            let fresh = try await TracesPage.loadOptions(store: store, projectID: projectID)
            box.withLockedValue { cache in
                if cache.count > 1000 { cache.removeAll() }
                cache[projectID] = (now, fresh)
            }
            return fresh
        }
    }

    static func loadOptions(store: any SpanStore, projectID: String) async throws -> Options {
        let to = (Int64(Date().timeIntervalSince1970) / 60 + 1) * 60
        func q(_ d: MetricsDimension) -> MetricsQuery { MetricsQuery(projectID: projectID, fromUnix: to - 30 * 86_400, toUnix: to, intervalSeconds: 30 * 86_400 + 60, groupBy: d) }
        async let s = storeCall { try await store.metrics(q(.service)) }
        async let pr = storeCall { try await store.metrics(q(.provider)) }
        async let m = storeCall { try await store.metrics(q(.model)) }
        func names(_ b: [MetricsBucket]) -> [String] { Set(b.map(\.group)).filter { !$0.isEmpty }.sorted() }
        return Options(services: names(try await s), providers: names(try await pr), models: names(try await m))
    }

    static func select(_ name: String, _ label: String, _ values: [(String, String)], selected: String?) -> HTML {
        let opts = values.map { v, l -> HTML in "<option value=\"\(v)\"\(HTML(raw: v == (selected ?? "") ? " selected" : ""))>\(l)</option>" }
        // A value typed into the URL that is not in the list still shows as selected.
        let extra: HTML = (selected.map { s in !values.contains { $0.0 == s } ? "<option value=\"\(s)\" selected>\(s)</option>" : HTML.empty }) ?? .empty
        return "<div class=\"field\"><label for=\"f-\(name)\">\(label)</label><select name=\"\(name)\" id=\"f-\(name)\">\(opts)\(extra)</select></div>"
    }

    static func input(_ name: String, _ label: String, _ value: String?, placeholder: String = "", type: String = "text", grow: Bool = false, step: String? = nil) -> HTML {
        "<div class=\"field\(HTML(raw: grow ? " grow" : ""))\"><label for=\"f-\(name)\">\(label)</label><input type=\"\(type)\" name=\"\(name)\" id=\"f-\(name)\" value=\"\(value ?? "")\" placeholder=\"\(placeholder)\"\(HTML(raw: step.map { " step=\"\($0)\" min=\"0\"" } ?? ""))></div>"
    }

    static func body(p: QueryParameters, page: Page<TraceSummary>, options: Options, sort: TraceSort) -> HTML {
        let any = [("", "Any")]
        let advancedKeys = ["user_id", "session_id", "tag", "min_cost_usd", "min_duration_ms", "score_name", "min_score", "max_score", "from", "to"]
        let advancedOpen = advancedKeys.contains { p.string($0) != nil }
        let form: HTML = """
        <form class="card filters" method="get" action="/traces" id="trace-filters">
          <div class="row">
            \(input("q", "Search input and output", p.string("q"), placeholder: "Text in prompts or completions", grow: true))
            \(select("range", "Time", rangeOptions.map { ($0.0, $0.1) }, selected: p.string("range")))
            \(select("service", "Service", any + options.services.map { ($0, $0) }, selected: p.string("service")))
            \(select("provider", "Provider", any + options.providers.map { ($0, $0) }, selected: p.string("provider")))
            \(select("model", "Model", any + options.models.map { ($0, $0) }, selected: p.string("model")))
            \(select("status", "Status", [("", "Any"), ("ok", "OK"), ("error", "Error")], selected: p.string("status")))
            \(select("sort", "Sort", sortOptions.map { ($0.0.rawValue, $0.1) }, selected: sort.rawValue))
            <button class="btn" type="submit">Apply</button>
            <a class="btn secondary" href="/traces">Reset</a>
          </div>
          <details class="more"\(HTML(raw: advancedOpen ? " open" : ""))><summary>More filters</summary>
            <div class="row">
              \(input("user_id", "User", p.string("user_id")))
              \(input("session_id", "Session", p.string("session_id")))
              \(input("tag", "Tag", p.string("tag")))
              \(input("min_cost_usd", "Min cost (USD)", p.string("min_cost_usd"), type: "number", step: "any"))
              \(input("min_duration_ms", "Min duration (ms)", p.string("min_duration_ms"), type: "number", step: "any"))
              \(input("score_name", "Score", p.string("score_name"), placeholder: "e.g. relevance"))
              \(input("min_score", "Score ≥", p.string("min_score"), type: "number", step: "any"))
              \(input("max_score", "Score ≤", p.string("max_score"), type: "number", step: "any"))
              \(input("from", "From (RFC 3339)", p.string("from"), placeholder: "2026-01-31T00:00:00Z"))
              \(input("to", "To (RFC 3339)", p.string("to"), placeholder: "2026-02-01T00:00:00Z"))
            </div>
          </details>
        </form>
        """
        let filterPairs: [(String, String)] = TraceFilterParameters.names.sorted().compactMap { k in p.string(k).map { (k, $0) } }
        let exportPairs = filterPairs + [("sort", sort.rawValue)]
        let toolbar: HTML = """
        <div class="toolbar">
          <span id="result-count">\(page.items.count) trace\(page.items.count == 1 ? "" : "s")\(page.nextCursor != nil ? " on this page" : "")</span>
          <span class="links">Export <a href="/ui/export/traces\(URLQuery.string(exportPairs + [("format", "csv")]))">CSV</a><a href="/ui/export/traces\(URLQuery.string(exportPairs + [("format", "jsonl")]))">JSONL</a><a href="/ui/export/spans\(URLQuery.string(filterPairs + [("format", "jsonl")]))">spans JSONL</a></span>
        </div>
        """
        let rows = page.items.map(row)
        var table: HTML
        if rows.isEmpty {
            table = "<div class=\"card\">\(Layout.empty("No traces match", "Loosen the filters or pick a longer time range."))</div>"
        } else {
            let pagePairs = filterPairs + [("range", p.string("range") ?? ""), ("sort", sort.rawValue), ("limit", p.string("limit") ?? "")]
            let pager: HTML = """
            <div class="pager">
              \(HTML.when(p.string("cursor") != nil) { "<a class=\"btn secondary\" href=\"/traces\(URLQuery.string(pagePairs))\">First page</a>" })
              \(page.nextCursor.map { c -> HTML in "<a class=\"btn secondary\" id=\"next-page\" href=\"/traces\(URLQuery.string(pagePairs + [("cursor", c)]))\">Next page →</a>" } ?? .empty)
            </div>
            """
            table = """
            <div class="card"><div class="table-wrap"><table class="data" id="traces">
              <thead><tr><th>Trace</th><th>Started</th><th>Models</th><th class="num">Duration</th><th class="num">Spans</th><th class="num">Tokens</th><th class="num">Cost</th><th>Status</th><th>User · Session</th></tr></thead>
              <tbody>\(rows)</tbody>
            </table></div>\(HTML.when(page.nextCursor != nil || p.string("cursor") != nil) { pager })</div>
            """
        }
        return """
        <div class="page-head"><div><h1>Traces</h1><div class="sub">Every request your services traced, newest first. Click one for its span waterfall and messages.</div></div></div>
        \(form)\(toolbar)\(table)
        """
    }

    static func row(_ t: TraceSummary) -> HTML {
        let models = t.models.prefix(3).map { m -> HTML in "<span class=\"pill\">\(m)</span>" }
        let who: HTML = """
        \(t.userID.isEmpty ? HTML("<span class=\"sub\">–</span>") : "<a href=\"/traces\(URLQuery.string([("user_id", t.userID)]))\">\(t.userID)</a>")
        \(HTML.when(!t.sessionID.isEmpty) { "<div class=\"sub\"><a href=\"\(URLQuery.path("/sessions/", t.sessionID))\">\(Fmt.shortID(t.sessionID))</a></div>" })
        """
        return """
        <tr data-trace="\(t.traceID)">
          <td><a class="name" href="/traces/\(t.traceID)">\(t.name.isEmpty ? "(unnamed)" : t.name)</a><div class="sub">\(t.service) · <span class="mono">\(String(t.traceID.prefix(12)))</span></div></td>
          <td class="nowrap">\(Fmt.time(t.startUnixNanos))</td>
          <td>\(models)\(HTML.when(t.models.count > 3) { "<span class=\"pill\">+\(t.models.count - 3)</span>" })</td>
          <td class="num">\(Fmt.ms(Double(t.durationNanos) / 1e6))</td>
          <td class="num">\(t.spanCount)<div class="sub">\(t.llmCalls) LLM</div></td>
          <td class="num">\(Fmt.count(t.inputTokens.addingSaturated(t.outputTokens)))<div class="sub">\(Fmt.count(t.inputTokens)) / \(Fmt.count(t.outputTokens))</div></td>
          <td class="num">\(Fmt.cost(t.costUSD))\(HTML.when(t.costUnknownSpans > 0) { "<div class=\"sub\">+\(t.costUnknownSpans) unpriced</div>" })</td>
          <td>\(Layout.statusBadge(t.errorCount > 0))</td>
          <td>\(who)</td>
        </tr>
        """
    }
}
