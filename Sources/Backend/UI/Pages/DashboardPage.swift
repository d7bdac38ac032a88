import EvalForgeModel
import EvalForgeStore
import Foundation
import Hummingbird

/// Dashboard: requests, cost, tokens, latency percentiles and error rate over time, by model.
struct DashboardPage: Sendable {
    let store: any SpanStore
    let optionsCache: TracesPage.OptionsCache

    static let ranges: [(key: String, label: String, seconds: Int64)] = [("1h", "1 hour", 3600), ("24h", "24 hours", 86_400), ("7d", "7 days", 7 * 86_400), ("30d", "30 days", 30 * 86_400)]

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await WebUI.guarded(context) {
            let project = try context.requireProject()
            let p = try QueryParameters(request, allowed: ["range", "service"])
            let rangeKey = p.string("range") ?? "24h"
            guard let range = Self.ranges.first(where: { $0.key == rangeKey }) else {
                throw HTTPError(.badRequest, message: "range must be one of 1h, 24h, 7d, 30d")
            }
            let service = p.string("service")
            let now = Int64(Date().timeIntervalSince1970)
            let to = (now / 60 + 1) * 60
            let interval = MetricsController.autoInterval(seconds: range.seconds, buckets: 90)
            let from = to - range.seconds
            let alignedFrom = from - ((from % interval) + interval) % interval
            let query = MetricsQuery(projectID: project.id, fromUnix: alignedFrom, toUnix: to, intervalSeconds: interval, groupBy: .model, service: service)
            let projectID = project.id
            async let reportTask = MetricsController.report(store: store, query: query)
            async let optionsTask = optionsCache.options(store: store, projectID: projectID)
            let report = try await reportTask
            let services = try await optionsTask.services
            let html = Layout.page(title: "Dashboard", section: .dashboard, project: project.name,
                                   Self.body(report: report, range: range.key, service: service, services: services))
            return Layout.response(html)
        }
    }

    static func body(report: MetricsDTO, range: String, service: String?, services: [String]) -> HTML {
        let seg = ranges.map { r -> HTML in
            "<a href=\"/\(URLQuery.string([("range", r.key), ("service", service ?? "")]))\"\(HTML(raw: r.key == range ? " class=\"on\"" : ""))>\(r.key)</a>"
        }
        let serviceOptions = [HTML("<option value=\"\">All services</option>")] + services.map { s -> HTML in
            "<option value=\"\(s)\"\(HTML(raw: s == service ? " selected" : ""))>\(s)</option>"
        }
        let head: HTML = """
        <div class="page-head">
          <div><h1>Dashboard</h1><div class="sub">LLM traffic of the last \(ranges.first { $0.key == range }?.label ?? range), by model · \(Fmt.interval(report.intervalSeconds)) buckets</div></div>
          <form method="get" action="/" data-autosubmit style="display:flex;gap:10px;align-items:center">
            <input type="hidden" name="range" value="\(range)">
            <select name="service" aria-label="Service">\(serviceOptions)</select>
            <noscript><button class="btn secondary" type="submit">Apply</button></noscript>
            <div class="seg">\(seg)</div>
          </form>
        </div>
        """
        let t = report.totals
        if t.requests == 0 {
            return head + "<div class=\"card\">\(Layout.empty("No LLM calls in this range", "Send spans to /v1/traces (OTLP) or through the collector, or pick a longer range."))</div>"
        }
        let kpis: HTML = """
        <div class="kpis">
          \(kpi("Requests", Fmt.count(t.requests), "\(Fmt.count(t.errors)) errors"))
          \(kpi("Error rate", Fmt.percent(t.errorRate), t.errors == 0 ? "no failed calls" : "\(Fmt.count(t.errors)) of \(Fmt.count(t.requests))"))
          \(kpi("Cost", Fmt.cost(t.costUSD), t.costUnknownRequests > 0 ? "\(Fmt.count(t.costUnknownRequests)) call\(t.costUnknownRequests == 1 ? "" : "s") without a price" : "all calls priced"))
          \(kpi("Tokens", Fmt.count(t.totalTokens), "\(Fmt.count(t.inputTokens)) in · \(Fmt.count(t.outputTokens)) out"))
          \(kpi("Latency p95", Fmt.ms(t.latencyP95Ms), "p50 \(Fmt.ms(t.latencyP50Ms)) · p99 \(Fmt.ms(t.latencyP99Ms))"))
          \(kpi("Time to first token p50", Fmt.ms(t.ttftP50Ms), "p95 \(Fmt.ms(t.ttftP95Ms))"))
        </div>
        """
        // Dense x axis: every bucket from `from` to `to`.
        let slots = Array(stride(from: report.fromUnix, to: report.toUnix, by: Int(report.intervalSeconds)))
        let index = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($1, $0) })
        let top = Array(report.series.prefix(8))
        func perModel(_ value: (MetricsValuesDTO) -> Double?, fill: Double?) -> [Charts.Series] {
            top.enumerated().map { i, s in
                var vals = [Double?](repeating: fill, count: slots.count)
                for pt in s.points { if let k = index[pt.t] { vals[k] = value(pt.values) } }
                return Charts.Series(name: s.group.isEmpty ? "(no model)" : s.group, color: Charts.color(i), values: vals)
            }
        }
        func overall(_ value: (MetricsValuesDTO) -> Double?, name: String, color: String) -> Charts.Series {
            var vals = [Double?](repeating: nil, count: slots.count)
            for pt in report.overall { if let k = index[pt.t] { vals[k] = value(pt.values) } }
            return Charts.Series(name: name, color: color, values: vals)
        }
        let costSeries = perModel({ $0.costUSD }, fill: 0)
        let tokenSeries = perModel({ Double($0.totalTokens) }, fill: 0)
        let errorSeries = perModel({ $0.errorRate * 100 }, fill: nil)
        let latency = [
            overall({ $0.latencyP50Ms }, name: "p50", color: Charts.color(1)),
            overall({ $0.latencyP95Ms }, name: "p95", color: Charts.color(2)),
            overall({ $0.latencyP99Ms }, name: "p99", color: Charts.color(3)),
        ]
        let ttft = [
            overall({ $0.ttftP50Ms }, name: "TTFT p50", color: Charts.color(4)),
            overall({ $0.ttftP95Ms }, name: "TTFT p95", color: Charts.color(5)),
        ]
        let requests = perModel({ Double($0.requests) }, fill: 0)
        let charts: HTML = """
        <div class="grid2">
          \(chart("Cost", total: Fmt.cost(t.costUSD), slots: slots, series: costSeries, axis: .cost, format: Fmt.cost))
          \(chart("Tokens", total: Fmt.count(t.totalTokens), slots: slots, series: tokenSeries, axis: .count, format: { Fmt.count($0) }))
          \(chart("Latency percentiles", total: "p95 \(Fmt.ms(t.latencyP95Ms))", slots: slots, series: latency, axis: .ms, format: { Fmt.ms($0) }))
          \(chart("Error rate", total: Fmt.percent(t.errorRate), slots: slots, series: errorSeries, axis: .percent, format: { Fmt.percent($0 / 100) }))
          \(chart("Requests", total: Fmt.count(t.requests), slots: slots, series: requests, axis: .count, format: { Fmt.count($0) }))
          \(chart("Time to first token", total: "p50 \(Fmt.ms(t.ttftP50Ms))", slots: slots, series: ttft, axis: .ms, format: { Fmt.ms($0) }, empty: "No streamed calls in this range: TTFT is recorded for streaming responses."))
        </div>
        """
        let rows = report.series.enumerated().map { i, s -> HTML in
            let v = s.totals
            let model = s.group.isEmpty ? "(no model)" : s.group
            return """
            <tr>
              <td><span class="sw" style="display:inline-block;width:9px;height:9px;border-radius:3px;margin-right:8px;background:\(i < 8 ? Charts.color(i) : "var(--faint)")"></span><a class="name" href="/traces\(URLQuery.string([("model", s.group), ("range", range)]))">\(model)</a></td>
              <td class="num">\(Fmt.count(v.requests))</td>
              <td class="num">\(Fmt.percent(v.errorRate))</td>
              <td class="num">\(Fmt.count(v.inputTokens))</td>
              <td class="num">\(Fmt.count(v.outputTokens))</td>
              <td class="num">\(Fmt.cost(v.costUSD))</td>
              <td class="num">\(Fmt.ms(v.latencyP50Ms))</td>
              <td class="num">\(Fmt.ms(v.latencyP95Ms))</td>
              <td class="num">\(Fmt.ms(v.latencyP99Ms))</td>
              <td class="num">\(Fmt.ms(v.ttftP50Ms))</td>
            </tr>
            """
        }
        let table: HTML = """
        <div class="card"><div style="padding:16px 18px 4px"><h2>By model</h2></div><div class="table-wrap"><table class="data" id="by-model">
          <thead><tr><th>Model</th><th class="num">Requests</th><th class="num">Errors</th><th class="num">Input tokens</th><th class="num">Output tokens</th><th class="num">Cost</th><th class="num">p50</th><th class="num">p95</th><th class="num">p99</th><th class="num">TTFT p50</th></tr></thead>
          <tbody>\(rows)</tbody>
        </table></div></div>
        """
        return head + kpis + charts + table
    }

    static func kpi(_ label: String, _ value: String, _ hint: String) -> HTML {
        "<div class=\"card kpi\"><div class=\"label\">\(label)</div><div class=\"value\">\(value)</div><div class=\"hint\">\(hint)</div></div>"
    }

    static func chart(_ title: String, total: String, slots: [Int64], series: [Charts.Series], axis: Charts.Axis, format: (Double) -> String, empty: String? = nil) -> HTML {
        let hasData = series.contains { $0.values.contains { $0 != nil && $0 != 0 } }
        let body: HTML = !hasData && empty != nil
            ? "<div class=\"empty\" style=\"padding:70px 20px\">\(empty ?? "")</div>"
            : Charts.line(slots: slots, series: series, format: format, axis: axis, area: series.count == 1) + Charts.legend(series)
        return """
        <section class="card chart-card">
          <div class="head"><h2>\(title)</h2><span class="total">\(total)</span></div>
          \(body)
        </section>
        """
    }
}

extension HTML {
    static func + (a: HTML, b: HTML) -> HTML { HTML(raw: a.raw + b.raw) }
}

extension Fmt {
    static func interval(_ s: Int64) -> String {
        if s % 86_400 == 0 { return "\(s / 86_400)-day" }
        if s % 3600 == 0 { return "\(s / 3600)-hour" }
        return "\(s / 60)-minute"
    }
}
