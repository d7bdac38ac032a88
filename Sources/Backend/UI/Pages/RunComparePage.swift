import EvalForgeStore
import Evaluation
import Foundation
import Hummingbird

/// Two runs of one dataset compared (`EvaluationService.compare`, as GET /api/runs/{a}/compare/{b}):
/// per-evaluator mean deltas with the Wilcoxon p-value, the bootstrap CI and a plain verdict, a
/// chart of the deltas, and the items whose scores dropped or rose.
struct RunComparePage: Sendable {
    let evaluation: EvaluationService

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await EvalUI.guarded(context) {
            let project = try context.requireProject()
            let p = try QueryParameters(request, allowed: ["base", "candidate"])
            let baseID = try p.string("base").map { try EvalUI.runID($0, "Base run id") }
            let candID = try p.string("candidate").map { try EvalUI.runID($0, "Candidate run id") }
            let ev = evaluation
            var runs = try await EvalUI.call { try await ev.listRuns(projectID: project.id, limit: 500) }
            let datasets = try await EvalUI.call { try await ev.listDatasets(projectID: project.id) }
            var comparison: HTML = .empty
            var title = "Compare runs"
            var selected = (base: baseID, candidate: candID)
            if let baseID, let candID {
                let base = try await EvalUI.run(ev, projectID: project.id, id: baseID, role: "Base run")
                let cand = try await EvalUI.run(ev, projectID: project.id, id: candID, role: "Candidate run")
                guard base.datasetID == cand.datasetID else {
                    let names = Dictionary(datasets.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
                    throw HTTPError(.badRequest, message: "Runs '\(base.id)' and '\(cand.id)' evaluate different datasets ('\(names[base.datasetID] ?? base.datasetID)' and '\(names[cand.datasetID] ?? cand.datasetID)'); items are paired by dataset item, so pick two runs of the same dataset.")
                }
                let cmp = try await EvalUI.call { try await ev.compare(projectID: project.id, base: baseID, candidate: candID) }
                let baseItems = try await EvalUI.call { try await ev.runItems(projectID: project.id, id: baseID) }
                let candItems = try await EvalUI.call { try await ev.runItems(projectID: project.id, id: candID) }
                let seqs = (cmp.regressions + cmp.improvements).map(\.seq)
                var inputs: [String: DatasetItem] = [:]
                if let lo = seqs.min(), let hi = seqs.max() {
                    inputs = await EvalUI.items(ev, projectID: project.id, datasetID: base.datasetID, seqs: lo...hi)
                }
                comparison = Self.body(cmp, base: base, candidate: cand, baseItems: baseItems, candidateItems: candItems, inputs: inputs)
                title = "Compare \(base.name) → \(cand.name)"
            } else {
                // One run given: it must exist (404 otherwise), even when it is older than the runs listed.
                var given: Run?
                if let baseID { given = try await EvalUI.run(ev, projectID: project.id, id: baseID, role: "Base run", aggregates: false) }
                if let candID { given = try await EvalUI.run(ev, projectID: project.id, id: candID, role: "Candidate run", aggregates: false) }
                if let given, !runs.contains(where: { $0.id == given.id }) { runs.append(given) }
                // Preselect: the candidate given (or the newest run) against the run before it on the same dataset.
                let cand = candID.flatMap { id in runs.first { $0.id == id } } ?? (baseID == nil ? runs.first : nil)
                if let cand {
                    selected.candidate = cand.id
                    if selected.base == nil { selected.base = runs.first { $0.datasetID == cand.datasetID && $0.createdUnixMs <= cand.createdUnixMs && $0.id != cand.id }?.id }
                }
            }
            let form = Self.form(runs: runs, datasets: datasets, base: selected.base, candidate: selected.candidate)
            let head: HTML = """
            <div class="crumbs"><a href="/experiments">Experiments</a> / Compare</div>
            <div class="page-head"><div><h1>Compare runs</h1><div class="sub">Items are paired by dataset item; each evaluator's mean delta is tested with the Wilcoxon signed-rank test and a bootstrap confidence interval.</div></div></div>
            """
            let hint: HTML = comparison.raw.isEmpty
                ? "<div class=\"card\">\(Layout.empty(runs.count < 2 ? "Two runs are needed" : "Pick two runs", runs.count < 2 ? "Start two runs of one dataset (POST /api/experiments) to compare them." : "Choose a base and a candidate run of the same dataset above."))</div>"
                : comparison
            return Layout.response(Layout.page(title: title, section: .experiments, project: project.name, "\(head)\(form)\(hint)"))
        }
    }

    static func form(runs: [Run], datasets: [Dataset], base: String?, candidate: String?) -> HTML {
        func select(_ name: String, _ label: String, _ selected: String?) -> HTML {
            let groups = datasets.compactMap { d -> HTML? in
                let rs = runs.filter { $0.datasetID == d.id }
                guard !rs.isEmpty else { return nil }
                let opts = rs.map { r -> HTML in
                    let text = "\(r.name) · \(r.id) · \(TimeFormat.short(nanos: r.createdUnixMs * 1_000_000)) UTC · \(r.status.rawValue)"
                    return "<option value=\"\(r.id)\"\(HTML(raw: r.id == selected ? " selected" : ""))>\(text)</option>"
                }
                return "<optgroup label=\"\(d.name) (\(d.itemCount) items)\">\(opts)</optgroup>"
            }
            let known = Set(datasets.map(\.id))
            let orphans = runs.filter { !known.contains($0.datasetID) }.map { r -> HTML in
                "<option value=\"\(r.id)\"\(HTML(raw: r.id == selected ? " selected" : ""))>\(r.name) · \(r.id) (dataset deleted)</option>"
            }
            return """
            <div class="field grow"><label for="f-\(name)">\(label)</label><select name="\(name)" id="f-\(name)" class="wide" required>
            <option value="">Pick a run</option>\(groups)\(HTML.when(!orphans.isEmpty) { "<optgroup label=\"Deleted datasets\">\(orphans)</optgroup>" })</select></div>
            """
        }
        return """
        <form class="card filters" method="get" action="/experiments/compare" id="compare-form"><div class="row">
          \(select("base", "Base run", base))
          \(select("candidate", "Candidate run", candidate))
          <button class="btn" type="submit">Compare</button>
          \(HTML.when(base != nil && candidate != nil) { "<a class=\"btn secondary\" href=\"/experiments/compare\(URLQuery.string([("base", candidate ?? ""), ("candidate", base ?? "")]))\">Swap</a>" })
        </div></form>
        """
    }

    /// A plain-language verdict for one evaluator, and its tone (up, down or neutral).
    static func verdict(_ e: RunComparison.EvaluatorDelta) -> (text: String, tone: String) {
        let changed = e.improved + e.regressed
        if e.pairs == 0 { return ("Not comparable: no item was scored in both runs.", "neutral") }
        if changed == 0 { return ("No change: every paired item scored the same.", "neutral") }
        let p = e.pValue.map { $0 < 0.001 ? "p < 0.001" : "p = " + EvalUI.pValue($0) } ?? ""
        if e.significant, let d = e.meanDelta {
            return d < 0 ? ("Worse: a significant regression (\(p); the 95% CI excludes 0).", "down") : ("Better: a significant improvement (\(p); the 95% CI excludes 0).", "up")
        }
        if e.pValue == nil { return ("Inconclusive: \(changed) item\(changed == 1 ? "" : "s") changed; the test needs at least 6.", "neutral") }
        return ("No significant difference (\(p)); the change may be noise.", "neutral")
    }

    static func body(_ c: RunComparison, base: Run, candidate: Run, baseItems: [RunItemResult], candidateItems: [RunItemResult], inputs: [String: DatasetItem]) -> HTML {
        let baseByID = Dictionary(baseItems.map { ($0.itemID, $0) }, uniquingKeysWith: { a, _ in a })
        let candIndex = Dictionary(candidateItems.enumerated().map { ($1.itemID, $0) }, uniquingKeysWith: { a, _ in a })
        let paired = baseItems.filter { candIndex[$0.itemID] != nil }.count
        let worse = c.evaluators.filter { $0.significant && ($0.meanDelta ?? 0) < 0 }.map(\.evaluator)
        let better = c.evaluators.filter { $0.significant && ($0.meanDelta ?? 0) > 0 }.map(\.evaluator)
        let regressed = c.evaluators.reduce(0) { $0 + $1.regressed }
        let improved = c.evaluators.reduce(0) { $0 + $1.improved }
        let unchanged = c.evaluators.reduce(0) { $0 + $1.unchanged }
        let overall: (String, String)
        switch (worse.isEmpty, better.isEmpty) {
        case (false, true): overall = ("The candidate is significantly worse on \(worse.joined(separator: ", ")).", "error")
        case (true, false): overall = ("The candidate is significantly better on \(better.joined(separator: ", ")).", "ok")
        case (false, false): overall = ("Mixed: significantly better on \(better.joined(separator: ", ")), significantly worse on \(worse.joined(separator: ", ")).", "neutral")
        case (true, true):
            overall = (regressed + improved == 0 ? "No difference: every paired score is the same." : "No significant difference on any evaluator (\(regressed) item scores dropped, \(improved) rose).", "neutral")
        }
        let chart = Charts.deltaBars(c.evaluators.map { .init(name: $0.evaluator, delta: $0.meanDelta, ci: $0.ci95, significant: $0.significant) })
        let evalRows = c.evaluators.map { e -> HTML in
            let v = verdict(e)
            return """
            <tr data-evaluator="\(e.evaluator)">
              <td class="mono">\(e.evaluator)</td>
              <td class="num">\(e.pairs)</td>
              <td class="num">\(EvalUI.score(e.baseMean))</td>
              <td class="num">\(EvalUI.score(e.candidateMean))</td>
              <td class="num"><b class="\(EvalUI.deltaClass(e.meanDelta))">\(EvalUI.delta(e.meanDelta))</b></td>
              <td class="num">\(EvalUI.ci(e.ci95))</td>
              <td class="num">\(EvalUI.pValue(e.pValue))</td>
              <td class="num">\(e.improved)</td>
              <td class="num">\(e.regressed)</td>
              <td class="num">\(e.unchanged)</td>
              <td class="verdict \(v.tone)">\(v.text)</td>
            </tr>
            """
        }
        func itemRows(_ list: [RunComparison.ItemDelta]) -> [HTML] {
            list.map { d -> HTML in
                let candItem = candIndex[d.itemID].map { candidateItems[$0] }
                let page = (candIndex[d.itemID] ?? 0) / RunPage.pageSize + 1
                let link = URLQuery.path("/experiments/runs/", candidate.id) + (page > 1 ? URLQuery.string([("page", String(page))]) : "") + "#item-\(d.seq)"
                let why = candItem?.results.first { $0.evaluator == d.evaluator }
                return """
                <tr data-item="\(d.itemID)">
                  <td class="num"><a href="\(link)">\(d.seq)</a></td>
                  <td>\(EvalUI.clip(inputs[d.itemID].map { EvalUI.text($0.input) }))</td>
                  <td class="mono">\(d.evaluator)</td>
                  <td class="num">\(EvalUI.score(d.base))</td>
                  <td class="num">\(EvalUI.score(d.candidate))</td>
                  <td class="num"><b class="\(EvalUI.deltaClass(d.delta))">\(EvalUI.delta(d.delta))</b></td>
                  <td>\(EvalUI.clip(baseByID[d.itemID]?.output))</td>
                  <td>\(EvalUI.clip(candItem?.output))\(HTML.when(!(why?.explanation.isEmpty ?? true)) { "<div class=\"expl\">\(why?.explanation ?? "")</div>" })</td>
                </tr>
                """
            }
        }
        func itemTable(_ id: String, _ title: String, _ list: [RunComparison.ItemDelta], total: Int, empty: String) -> HTML {
            let head: HTML = "<div style=\"padding:16px 20px 4px\"><h2>\(title) <span class=\"sub\">\(total)</span></h2>\(HTML.when(total > list.count) { "<div class=\"sub\">The \(list.count) largest are listed; GET /api/runs/{base}/compare/{candidate} has every paired delta.</div>" })</div>"
            guard !list.isEmpty else { return "<div class=\"card\" style=\"margin-bottom:16px\">\(head)\(Layout.empty(empty, ""))</div>" }
            return """
            <div class="card" style="margin-bottom:16px">\(head)<div class="table-wrap"><table class="data items" id="\(id)">
              <thead><tr><th class="num">#</th><th>Input</th><th>Evaluator</th><th class="num">Base</th><th class="num">Candidate</th><th class="num">Δ</th><th>Base output</th><th>Candidate output</th></tr></thead>
              <tbody>\(itemRows(list))</tbody></table></div></div>
            """
        }
        let runLink = { (r: Run) -> HTML in "<a href=\"\(URLQuery.path("/experiments/runs/", r.id))\"><b>\(r.name)</b></a> <span class=\"sub mono\">\(r.id)</span> \(EvalUI.statusBadge(r.status))" }
        let unfinished: HTML = HTML.when(base.status == .running || base.status == .pending || candidate.status == .running || candidate.status == .pending) {
            "<div class=\"callout neutral\">A run is still going: the comparison covers the items finished so far.</div>"
        }
        return """
        <div class="card pad" style="margin-bottom:16px" id="compare-summary">
          <div class="stats" style="margin-top:0"><span>Base \(runLink(base))</span><span>→</span><span>Candidate \(runLink(candidate))</span></div>
          <div class="callout \(overall.1)" id="verdict">\(overall.0)</div>
          \(unfinished)
        </div>
        <div class="kpis">
          <div class="card kpi"><div class="label">Paired items</div><div class="value">\(paired)</div><div class="hint">of \(baseItems.count) base / \(candidateItems.count) candidate</div></div>
          <div class="card kpi"><div class="label">Regressions</div><div class="value" id="kpi-regressions">\(regressed)</div><div class="hint">item scores that dropped</div></div>
          <div class="card kpi"><div class="label">Improvements</div><div class="value" id="kpi-improvements">\(improved)</div><div class="hint">item scores that rose</div></div>
          <div class="card kpi"><div class="label">Unchanged</div><div class="value" id="kpi-unchanged">\(unchanged)</div><div class="hint">item scores equal in both runs</div></div>
        </div>
        <div class="card chart-card" style="margin-bottom:16px"><div class="head"><h2>Mean delta per evaluator</h2><span class="total">candidate − base, with 95% CI</span></div>\(chart)</div>
        <div class="card" style="margin-bottom:16px"><div class="table-wrap"><table class="data" id="deltas">
          <thead><tr><th>Evaluator</th><th class="num">Pairs</th><th class="num">Base mean</th><th class="num">Candidate mean</th><th class="num">Δ mean</th><th class="num">95% CI</th><th class="num">p-value</th><th class="num">Improved</th><th class="num">Regressed</th><th class="num">Unchanged</th><th>Verdict</th></tr></thead>
          <tbody>\(evalRows.isEmpty ? ["<tr><td colspan=\"11\">\(Layout.empty("No scores to compare", "Neither run has scored items yet."))</td></tr>"] : evalRows)</tbody></table></div></div>
        \(itemTable("regressions", "Regressions", c.regressions, total: regressed, empty: "No item scored lower in the candidate."))
        \(itemTable("improvements", "Improvements", c.improvements, total: improved, empty: "No item scored higher in the candidate."))
        """
    }
}
