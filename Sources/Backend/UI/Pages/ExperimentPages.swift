import EvalForgeStore
import Evaluation
import Foundation
import Hummingbird

/// Datasets and experiment runs, newest first: status, progress, per-evaluator aggregates, judge
/// usage. Reads through `EvaluationService`, as `/api/datasets` and `/api/runs` do.
struct ExperimentsPage: Sendable {
    let evaluation: EvaluationService

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await EvalUI.guarded(context) {
            let project = try context.requireProject()
            let p = try QueryParameters(request, allowed: ["limit"])
            let limit = try p.int("limit", default: 50, range: 1...500)
            let ev = evaluation
            let datasets = try await EvalUI.call { try await ev.listDatasets(projectID: project.id) }
            let experiments = try await EvalUI.call { try await ev.listExperiments(projectID: project.id) }
            let listed = try await EvalUI.call { try await ev.listRuns(projectID: project.id, limit: limit) }
            // The list has no aggregates; each run's come from its items, as GET /api/runs/{id} computes them.
            var runs: [Run] = []
            for r in listed { runs.append((try? await ev.run(projectID: project.id, id: r.id)) ?? r) }
            let body = Self.body(datasets: datasets, experiments: experiments, runs: runs, limit: limit)
            return Layout.response(Layout.page(title: "Experiments", section: .experiments, project: project.name, body))
        }
    }

    static func body(datasets: [Dataset], experiments: [Experiment], runs: [Run], limit: Int) -> HTML {
        let dsByID = Dictionary(datasets.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let expByID = Dictionary(experiments.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let runsPerDataset = Dictionary(grouping: runs, by: \.datasetID)
        let dsRows = datasets.map { d -> HTML in
            """
            <tr>
              <td><span class="name">\(d.name)</span>\(HTML.when(!d.description.isEmpty) { "<div class=\"sub\">\(d.description)</div>" })</td>
              <td class="mono">\(d.id)</td>
              <td class="num">\(d.itemCount)</td>
              <td class="num">\(runsPerDataset[d.id]?.count ?? 0)</td>
              <td class="nowrap">\(EvalUI.time(d.createdUnixMs))</td>
            </tr>
            """
        }
        let dsTable: HTML = dsRows.isEmpty
            ? "<div class=\"card\" style=\"margin-bottom:16px\">\(Layout.empty("No datasets yet", "Create one with POST /api/datasets, or from traces with POST /api/datasets/{id}/items/from-traces."))</div>"
            : """
            <div class="card" style="margin-bottom:16px"><div class="table-wrap"><table class="data" id="datasets">
              <thead><tr><th>Dataset</th><th>Id</th><th class="num">Items</th><th class="num">Runs</th><th>Created</th></tr></thead>
              <tbody>\(dsRows)</tbody></table></div></div>
            """
        let runRows = runs.enumerated().map { i, r -> HTML in
            let exp = expByID[r.experimentID]
            // The previous run of the same dataset (the list is newest first): the natural base.
            let previous = runs[(i + 1)...].first { $0.datasetID == r.datasetID }
            let aggs = (r.aggregates ?? []).map { a -> HTML in
                let pass = a.passRate.map { " · " + Fmt.percent($0) + " pass" } ?? ""
                let errs: HTML = a.errors > 0 ? " · <span class=\"err-text\">\(a.errors) error\(a.errors == 1 ? "" : "s")</span>" : .empty
                return "<div class=\"agg\"><span class=\"mono\">\(a.evaluator)</span> <b>\(EvalUI.score(a.mean))</b>\(pass)\(errs)</div>"
            }
            return """
            <tr data-run="\(r.id)">
              <td><a class="name" href="\(URLQuery.path("/experiments/runs/", r.id))">\(r.name)</a><div class="sub mono">\(r.id)</div></td>
              <td>\(dsByID[r.datasetID]?.name ?? r.datasetID)<div class="sub">\(EvalUI.target(exp?.target))</div></td>
              <td class="nowrap">\(EvalUI.statusBadge(r.status))<div style="margin-top:4px">\(EvalUI.progress(r))</div>\(HTML.when(r.errors > 0) { "<div class=\"sub err-text\">\(r.errors) with errors</div>" })\(HTML.when(!r.error.isEmpty) { "<div class=\"sub err-text\">\(r.error)</div>" })</td>
              <td>\(aggs.isEmpty ? HTML("<span class=\"sub\">–</span>") : HTML.join(aggs))</td>
              <td class="nowrap">\(EvalUI.judge(r, lines: true))</td>
              <td class="nowrap">\(EvalUI.time(r.startedUnixMs))\(HTML.when(r.finishedUnixMs != nil) { "<div class=\"sub\">took \(EvalUI.duration(r))</div>" })</td>
              <td class="nowrap">\(previous.map { b -> HTML in "<a href=\"/experiments/compare\(URLQuery.string([("base", b.id), ("candidate", r.id)]))\">Compare with previous</a>" } ?? .empty)</td>
            </tr>
            """
        }
        let runTable: HTML = runRows.isEmpty
            ? "<div class=\"card\">\(Layout.empty("No experiment runs yet", "Start one with POST /api/experiments (it runs at once) or POST /api/experiments/{id}/runs."))</div>"
            : """
            <div class="card"><div class="table-wrap"><table class="data" id="runs">
              <thead><tr><th>Run</th><th>Dataset · target</th><th>Status</th><th>Evaluators (mean)</th><th>Judge</th><th>Started</th><th></th></tr></thead>
              <tbody>\(runRows)</tbody></table></div>
              \(HTML.when(runs.count == limit) { "<div class=\"pager\"><a class=\"btn secondary\" href=\"/experiments\(URLQuery.string([("limit", String(min(500, limit * 2)))]))\">Show more runs</a></div>" })
            </div>
            """
        return """
        <div class="page-head"><div><h1>Experiments</h1><div class="sub">Datasets and experiment runs, newest first.</div></div>
        <a class="btn secondary" href="/experiments/compare">Compare runs</a></div>
        <h3>Datasets</h3>
        \(dsTable)
        <h3>Runs</h3>
        \(runTable)
        """
    }
}

/// One run: summary, per-evaluator aggregates, and each item's input, output, expected answer and
/// every evaluator's score, label and explanation (errors shown as errors), 100 items a page.
struct RunPage: Sendable {
    let evaluation: EvaluationService
    static let pageSize = 100

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await EvalUI.guarded(context) {
            let project = try context.requireProject()
            let p = try QueryParameters(request, allowed: ["page"])
            let pageNo = try p.int("page", default: 1, range: 1...1_000_000)
            let id = try EvalUI.runID(IDFormat.pathValue(context, "run_id"), "Run id")
            let ev = evaluation
            let run = try await EvalUI.run(ev, projectID: project.id, id: id)
            let items = try await EvalUI.call { try await ev.runItems(projectID: project.id, id: id) }
            let dataset = try? await ev.dataset(projectID: project.id, id: run.datasetID)
            let experiment = try? await ev.listExperiments(projectID: project.id).first { $0.id == run.experimentID }
            let start = (pageNo - 1) * Self.pageSize
            let slice = start < items.count ? Array(items[start..<min(items.count, start + Self.pageSize)]) : []
            var inputs: [String: DatasetItem] = [:]
            if let lo = slice.map(\.seq).min(), let hi = slice.map(\.seq).max() {
                inputs = await EvalUI.items(ev, projectID: project.id, datasetID: run.datasetID, seqs: lo...hi)
            }
            let body = Self.body(run: run, dataset: dataset, experiment: experiment, items: slice, inputs: inputs, page: pageNo, total: items.count)
            return Layout.response(Layout.page(title: "Run " + run.name, section: .experiments, project: project.name, body))
        }
    }

    static func body(run r: Run, dataset: Dataset?, experiment: Experiment?, items: [RunItemResult], inputs: [String: DatasetItem], page: Int, total: Int) -> HTML {
        let aggregates = r.aggregates ?? []
        // Evaluator columns in the order the run reports them, then any other names seen.
        var evaluators = aggregates.map(\.evaluator)
        for i in items { for res in i.results where !evaluators.contains(res.evaluator) { evaluators.append(res.evaluator) } }
        let aggRows = aggregates.map { a -> HTML in
            let labels = a.labels.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { k, v -> HTML in "<span class=\"pill\">\(k) \(v)</span>" }
            return """
            <tr>
              <td class="mono">\(a.evaluator)</td>
              <td class="num">\(a.count)</td>
              <td class="num">\(a.scored)</td>
              <td class="num"><b>\(EvalUI.score(a.mean))</b></td>
              <td class="num">\(EvalUI.score(a.min)) – \(EvalUI.score(a.max))</td>
              <td class="num">\(a.passRate.map(Fmt.percent) ?? "–")</td>
              <td class="num">\(a.errors > 0 ? HTML("<span class=\"badge error\">\(a.errors)</span>") : "0")</td>
              <td>\(labels)</td>
            </tr>
            """
        }
        let aggTable: HTML = aggRows.isEmpty ? Layout.empty("No results yet", "Aggregates appear as items finish.") : """
        <div class="table-wrap"><table class="data" id="aggregates">
          <thead><tr><th>Evaluator</th><th class="num">Items</th><th class="num">Scored</th><th class="num">Mean</th><th class="num">Min – max</th><th class="num">Pass rate</th><th class="num">Errors</th><th>Labels</th></tr></thead>
          <tbody>\(aggRows)</tbody></table></div>
        """
        let itemRows = items.map { it -> HTML in
            let src = inputs[it.itemID]
            let cells: HTML
            if let err = it.error {
                cells = "<td colspan=\"\(max(1, evaluators.count))\"><div class=\"callout error\"><b>Item failed</b> · \(err)</div></td>"
            } else if it.state != "done" {
                cells = "<td colspan=\"\(max(1, evaluators.count))\"><span class=\"badge neutral\">\(it.state == "claimed" ? "Running" : "Pending")</span></td>"
            } else {
                cells = HTML.join(evaluators.map { name -> HTML in
                    guard let res = it.results.first(where: { $0.evaluator == name }) else { return "<td><span class=\"sub\">–</span></td>" }
                    return "<td class=\"result\">\(result(res))</td>"
                })
            }
            return """
            <tr id="item-\(it.seq)" data-item="\(it.itemID)">
              <td class="num"><a href="#item-\(it.seq)">\(it.seq)</a></td>
              <td>\(src.map { EvalUI.clip(EvalUI.text($0.input)) } ?? EvalUI.clip(nil, empty: "not in the dataset any more"))</td>
              <td>\(EvalUI.clip(src?.expected))</td>
              <td>\(EvalUI.clip(it.output, empty: it.error == nil ? "no output" : "–"))\(HTML.when(it.latencyMs != nil) { "<div class=\"sub\">\(Fmt.ms(it.latencyMs))</div>" })</td>
              \(cells)
            </tr>
            """
        }
        let evalHeads = evaluators.map { n -> HTML in "<th class=\"mono\">\(n)</th>" }
        let pages = max(1, (total + pageSize - 1) / pageSize)
        func pageLink(_ n: Int, _ label: String) -> HTML {
            "<a class=\"btn secondary\" href=\"\(URLQuery.path("/experiments/runs/", r.id))\(URLQuery.string([("page", String(n))]))\">\(label)</a>"
        }
        let pager: HTML = pages <= 1 ? .empty : """
        <div class="pager"><span class="sub" style="margin-right:auto">Items \((page - 1) * pageSize + 1)–\(min(total, page * pageSize)) of \(total)</span>
        \(HTML.when(page > 1) { pageLink(page - 1, "← Previous") })\(HTML.when(page < pages) { pageLink(page + 1, "Next →") })</div>
        """
        let itemTable: HTML = itemRows.isEmpty ? Layout.empty(total == 0 ? "No items" : "No items on this page", total == 0 ? "The dataset had no items when the run started." : "This run has \(total) items.") : """
        <div class="table-wrap"><table class="data items" id="items">
          <thead><tr><th class="num">#</th><th>Input</th><th>Expected</th><th>Output</th>\(evalHeads)</tr></thead>
          <tbody>\(itemRows)</tbody></table></div>
        \(pager)
        """
        return """
        <div class="crumbs"><a href="/experiments">Experiments</a> / <span class="mono">\(r.id)</span></div>
        <div class="page-head"><div>
          <h1>\(r.name) \(EvalUI.statusBadge(r.status))</h1>
          <div class="stats" id="run-stats">
            <span>Dataset <b>\(dataset?.name ?? r.datasetID)</b></span>
            <span>Target <b>\(EvalUI.target(experiment?.target))</b></span>
            <span>Items <b>\(r.done)/\(r.total)</b></span>
            <span>Items with errors <b>\(r.errors)</b></span>
            <span>Judge <b>\(EvalUI.judge(r))</b></span>
            \(HTML.when(r.cacheHits > 0) { "<span>Cache hits <b>\(r.cacheHits)</b></span>" })
            <span>Started <b>\(EvalUI.time(r.startedUnixMs))</b></span>
            <span>Finished <b>\(EvalUI.time(r.finishedUnixMs))</b></span>
            <span>Duration <b>\(EvalUI.duration(r))</b></span>
          </div>
          \(HTML.when(!r.error.isEmpty) { "<div class=\"callout error\">\(r.error)</div>" })
        </div>
        <a class="btn secondary" href="/experiments/compare\(URLQuery.string([("candidate", r.id)]))">Compare with…</a>
        </div>
        <div class="card pad" style="margin-bottom:16px"><h2>Evaluators</h2>\(aggTable)</div>
        <div class="card"><div style="padding:16px 20px 4px"><h2>Items</h2></div>\(itemTable)</div>
        """
    }

    /// One evaluator's result in a cell: score, label and explanation, or the error.
    static func result(_ res: EvaluationResult) -> HTML {
        if let err = res.error {
            return "<div class=\"eval-error\"><span class=\"badge error\">Error</span><div>\(err)</div></div>"
        }
        return """
        <div><b>\(EvalUI.score(res.score))</b> \(EvalUI.labelBadge(res.label))</div>\(HTML.when(!res.explanation.isEmpty) { "<div class=\"expl\">\(res.explanation)</div>" })
        """
    }
}
