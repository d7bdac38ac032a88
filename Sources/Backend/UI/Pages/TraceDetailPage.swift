import EvalForgeStore
import Foundation
import Hummingbird

/// One trace: summary, span waterfall, and the selected span's details (LLM input and output as
/// messages, attributes, events, scores).
struct TraceDetailPage: Sendable {
    let store: any SpanStore

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await WebUI.guarded(context) {
            let project = try context.requireProject()
            _ = try QueryParameters(request, allowed: [])
            let traceID = try IDFormat.traceID(IDFormat.pathValue(context, "trace_id"))
            guard let detail = try await TracesController.load(store: store, projectID: project.id, traceID: traceID) else {
                throw HTTPError(.notFound, message: "No trace \(traceID) in this project (it may have been sampled out or expired).")
            }
            return Layout.response(Layout.page(title: detail.trace.name, section: .traces, project: project.name, Self.body(detail)))
        }
    }

    static func flatten(_ nodes: [SpanDTO]) -> [SpanDTO] {
        var out: [SpanDTO] = []
        var stack = Array(nodes.reversed())
        while let n = stack.popLast() {
            out.append(n)
            stack.append(contentsOf: n.children.reversed())
        }
        return out
    }

    static func body(_ d: TraceDetailDTO) -> HTML {
        let t = d.trace
        let spans = flatten(d.spans)
        let total = max(t.durationMs, 0.001)
        let selected = spans.first { !$0.model.isEmpty || !$0.provider.isEmpty }?.spanID ?? spans.first?.spanID ?? ""
        let rows = spans.map { s -> HTML in
            let left = min(100, max(0, s.offsetMs / total * 100))
            let width = min(100 - left, max(0.3, s.durationMs / total * 100))
            let cls = s.status == "error" ? "error" : (!s.model.isEmpty || !s.provider.isEmpty ? "llm" : "")
            let kindLabel = !s.model.isEmpty ? s.model : (s.operation.isEmpty ? s.kind : s.operation)
            return """
            <a class="wf-row\(HTML(raw: s.spanID == selected ? " sel" : ""))" href="#span-\(s.spanID)" data-span="\(s.spanID)" title="\(s.name)">
              <div class="wf-name" style="padding-left:\(min(s.depth, 12) * 14)px">\(s.name.isEmpty ? "(unnamed)" : s.name)<span class="k">\(kindLabel)</span></div>
              <div class="wf-track"><div class="wf-bar \(cls)" style="left:\(Charts.f(left))%;width:\(Charts.f(width))%"></div></div>
              <div class="wf-dur">\(Fmt.ms(s.durationMs))</div>
            </a>
            """
        }
        let tags = t.tags.map { tag -> HTML in "<a class=\"pill\" href=\"/traces\(URLQuery.string([("tag", tag)]))\">\(tag)</a>" }
        let traceScores: HTML = d.scores.isEmpty ? .empty : "<div class=\"card pad\" style=\"margin-bottom:16px\"><h2>Scores</h2>\(scoresTable(d.scores))</div>"
        let head: HTML = """
        <div class="crumbs"><a href="/traces">Traces</a> / <span class="mono">\(t.traceID)</span></div>
        <div class="page-head" style="margin-bottom:12px"><div>
          <h1>\(t.name.isEmpty ? "(unnamed)" : t.name) \(Layout.statusBadge(t.errorCount > 0))</h1>
          <div class="stats">
            <span>Started <b>\(Fmt.time(t.startUnixNanos))</b></span>
            <span>Duration <b>\(Fmt.ms(t.durationMs))</b></span>
            <span>Spans <b>\(t.spanCount)</b></span>
            <span>LLM calls <b>\(t.llmCalls)</b></span>
            <span>Tokens <b>\(Fmt.count(t.inputTokens)) in · \(Fmt.count(t.outputTokens)) out</b></span>
            <span>Cost <b>\(Fmt.cost(t.costUSD))</b></span>
            <span>Service <b>\(t.service)</b></span>
            \(HTML.when(!t.userID.isEmpty) { "<span>User <a href=\"/traces\(URLQuery.string([("user_id", t.userID)]))\"><b>\(t.userID)</b></a></span>" })
            \(HTML.when(!t.sessionID.isEmpty) { "<span>Session <a href=\"\(URLQuery.path("/sessions/", t.sessionID))\"><b>\(t.sessionID)</b></a></span>" })
          </div>
          \(HTML.when(!tags.isEmpty) { "<div style=\"margin-top:8px\">\(tags)</div>" })
        </div>
        <a class="btn secondary" href="/ui/export/spans\(URLQuery.string([("trace_id", t.traceID), ("format", "jsonl")]))">Export JSONL</a>
        </div>
        """
        let ticks = (0...4).map { i -> HTML in "<span>\(Fmt.ms(total * Double(i) / 4))</span>" }
        let waterfall: HTML = """
        <div class="card" id="waterfall">
          <div class="wf-head"><span>Span</span><div class="wf-scale">\(ticks)</div><span style="text-align:right">Duration</span></div>
          \(rows)
        </div>
        """
        let details = spans.map { s in spanDetail(s, hidden: s.spanID != selected) }
        return """
        \(head)\(traceScores)
        <div class="split">\(waterfall)<div class="card detail">\(details)</div></div>
        """
    }

    static func spanDetail(_ s: SpanDTO, hidden: Bool) -> HTML {
        let isLLM = !s.model.isEmpty || !s.provider.isEmpty
        var facts: [(String, String)] = [("Duration", Fmt.ms(s.durationMs)), ("Starts at", "+" + Fmt.ms(s.offsetMs)), ("Kind", s.kind), ("Service", s.service.isEmpty ? "–" : s.service)]
        if isLLM {
            facts += [("Provider", s.provider.isEmpty ? "–" : s.provider), ("Model", s.model.isEmpty ? "–" : s.model),
                      ("Input tokens", Fmt.grouped(s.inputTokens)), ("Output tokens", Fmt.grouped(s.outputTokens)),
                      ("Cost", s.costUSD.map(Fmt.cost) ?? "unpriced"), ("Time to first token", s.ttftMs.map { Fmt.ms($0) } ?? "–")]
            if s.cacheReadTokens > 0 { facts.append(("Cache read tokens", Fmt.grouped(s.cacheReadTokens))) }
            if s.reasoningTokens > 0 { facts.append(("Reasoning tokens", Fmt.grouped(s.reasoningTokens))) }
        }
        let kv = facts.map { k, v -> HTML in "<div><span>\(k)</span><b>\(v)</b></div>" }
        let attrs = s.attributes.keys.sorted().map { k -> HTML in "<tr><td>\(k)</td><td>\(s.attributes[k]?.displayText ?? "")</td></tr>" }
        let events = s.events.map { e -> HTML in
            "<tr><td>\(e["name"]?.stringValue ?? "event")</td><td>\(e["attributes"]?.displayText ?? "")</td></tr>"
        }
        let content: HTML = (s.input != nil || s.output != nil || isLLM) ? """
        <h3>Input</h3>\(Messages.render(s.input, emptyText: "Input not recorded (content capture is off)."))
        <h3>Output</h3>\(Messages.render(s.output, emptyText: "Output not recorded."))
        """ : .empty
        return """
        <section class="span-detail" id="span-\(s.spanID)"\(HTML(raw: hidden ? " hidden" : ""))>
          <h2>\(s.name.isEmpty ? "(unnamed)" : s.name) \(Layout.statusBadge(s.status == "error"))</h2>
          <div class="sub mono" style="color:var(--faint)">span \(s.spanID)\(s.parentSpanID.isEmpty ? "" : " · parent " + s.parentSpanID)</div>
          \(HTML.when(!s.statusMessage.isEmpty) { "<div class=\"callout error\">\(s.statusMessage)</div>" })
          <div class="kv">\(kv)</div>
          \(content)
          \(HTML.when(!s.scores.isEmpty) { "<h3>Scores</h3>\(scoresTable(s.scores))" })
          \(HTML.when(!attrs.isEmpty) { "<h3>Attributes</h3><table class=\"attrs\">\(attrs)</table>" })
          \(HTML.when(!events.isEmpty) { "<h3>Events</h3><table class=\"attrs\">\(events)</table>" })
        </section>
        """
    }

    static func scoresTable(_ scores: [ScoreDTO]) -> HTML {
        let rows = scores.map { s -> HTML in
            let value = s.value.map { String(format: "%.3g", $0) } ?? (s.label.isEmpty ? "–" : s.label)
            return "<tr><td>\(s.name)</td><td class=\"num\"><b>\(value)</b>\(HTML.when(!s.label.isEmpty && s.value != nil) { " · \(s.label)" })</td><td>\(s.source)\(s.evaluator.isEmpty ? "" : " · " + s.evaluator)</td><td>\(s.comment)</td></tr>"
        }
        return "<div class=\"table-wrap\"><table class=\"data\"><thead><tr><th>Score</th><th class=\"num\">Value</th><th>Source</th><th>Comment</th></tr></thead><tbody>\(rows)</tbody></table></div>"
    }
}
