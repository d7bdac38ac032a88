import EvalForgeStore
import Evaluation
import Foundation
import Hummingbird

/// What the experiment pages share: loading through `EvaluationService` (its errors become 404/400
/// pages), their error page, and how scores, deltas and significance are written.
enum EvalUI {
    /// Runs a page; `HTTPError`s below 500 (unknown or malformed ids, runs of different datasets)
    /// render as an error page that links back to the experiments.
    static func guarded(_ context: BackendRequestContext, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let e as HTTPError where e.status.code < 500 {
            let body: HTML = """
            <div class="card pad" style="max-width:680px" id="error">
              <h1>\(e.status.code == 404 ? "Not found" : "Something is off")</h1>
              <p class="sub" style="color:var(--muted)">\(e.body ?? e.status.reasonPhrase)</p>
              <p><a href="/experiments">Experiments</a> · <a href="/experiments/compare">Compare runs</a></p>
            </div>
            """
            return Layout.response(Layout.page(title: e.status.reasonPhrase, section: .experiments, project: context.project?.name, body), status: e.status)
        }
    }

    /// Calls the evaluation service: not found → 404, invalid argument → 400, storage trouble → 503.
    static func call<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await storeCall(body)
        } catch let e as EvaluationError {
            if e.isNotFound { throw HTTPError(.notFound, message: capitalized(e.message) + ".") }
            if e.isInvalidArgument { throw HTTPError(.badRequest, message: capitalized(e.message) + ".") }
            throw HTTPError(.serviceUnavailable, message: e.description)
        }
    }

    /// A run, or a 404 naming the role ("Base run 'x' does not exist in this project.").
    static func run(_ ev: EvaluationService, projectID: String, id: String, role: String = "Run", aggregates: Bool = true) async throws -> Run {
        do {
            return try await call { try await ev.run(projectID: projectID, id: id, withAggregates: aggregates) }
        } catch let e as HTTPError where e.status == .notFound {
            throw HTTPError(.notFound, message: "\(role) '\(id)' does not exist in this project.")
        }
    }

    /// Run ids are `run_` and 16 hex digits; anything that could not be an id is a 400.
    static func runID(_ s: String, _ what: String) throws -> String {
        let ok = (1...128).contains(s.utf8.count) && s.utf8.allSatisfy { b in
            (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) || b == 95 || b == 45 || b == 46
        }
        guard ok else { throw HTTPError(.badRequest, message: "\(what) '\(s.prefix(64))' is not a run id (run ids look like run_0123456789abcdef).") }
        return s
    }

    static func capitalized(_ s: String) -> String { s.prefix(1).uppercased() + s.dropFirst() }

    // MARK: formats

    /// A score with three decimals ("0.750"), "–" when there is none.
    static func score(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "–" }
        return String(format: "%.3f", v)
    }

    /// A signed delta with three decimals ("+0.250", "−0.500", "0.000").
    static func delta(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "–" }
        if abs(v) < 0.0005 { return "0.000" }
        return (v > 0 ? "+" : "−") + String(format: "%.3f", abs(v))
    }

    /// "0.006", or "< 0.001"; "–" without a test (fewer than 6 changed pairs).
    static func pValue(_ p: Double?) -> String {
        guard let p, p.isFinite else { return "–" }
        return p < 0.001 ? "< 0.001" : String(format: "%.3f", p)
    }

    /// "[−0.800, −0.400]"; "–" with fewer than 2 pairs.
    static func ci(_ ci: [Double]?) -> String {
        guard let ci, ci.count == 2 else { return "–" }
        return "[" + delta(ci[0]) + ", " + delta(ci[1]) + "]"
    }

    static func deltaClass(_ v: Double?) -> String {
        guard let v, abs(v) >= 0.0005 else { return "delta" }
        return v > 0 ? "delta up" : "delta down"
    }

    static func time(_ unixMs: Int64?) -> HTML {
        guard let unixMs, unixMs > 0 else { return "–" }
        let (nanos, overflow) = unixMs.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? "–" : Fmt.time(nanos)
    }

    static func statusBadge(_ s: RunStatus) -> HTML {
        switch s {
        case .completed: "<span class=\"badge ok\">Completed</span>"
        case .failed: "<span class=\"badge error\">Failed</span>"
        case .running: "<span class=\"badge run\">Running</span>"
        case .pending: "<span class=\"badge neutral\">Pending</span>"
        case .cancelled: "<span class=\"badge neutral\">Cancelled</span>"
        }
    }

    static func labelBadge(_ label: String) -> HTML {
        guard !label.isEmpty else { return .empty }
        let cls = label == "pass" ? "ok" : (label == "fail" ? "error" : "neutral")
        return "<span class=\"badge \(cls)\">\(label)</span>"
    }

    static func progress(_ r: Run) -> HTML {
        let pct = r.total > 0 ? min(100, Double(r.done) / Double(r.total) * 100) : (r.status == .completed ? 100 : 0)
        return "<div class=\"progress\" title=\"\(r.done) of \(r.total) items\"><span style=\"width:\(Charts.f(pct))%\"></span></div><span class=\"sub\">\(r.done)/\(r.total)</span>"
    }

    static func target(_ t: Target?) -> String {
        guard let t else { return "–" }
        switch t.type {
        case "recorded": return "Recorded outputs"
        case "provider": return [t.provider, t.model].compactMap { $0 }.joined(separator: " · ")
        case "http": return "HTTP " + (t.url.flatMap { URL(string: $0)?.host } ?? "")
        default: return t.type
        }
    }

    static func duration(_ r: Run) -> String {
        guard let s = r.startedUnixMs, let f = r.finishedUnixMs, f >= s else { return "–" }
        return Fmt.ms(Double(f) - Double(s))
    }

    /// Judge calls, tokens and cost; on separate lines in narrow table cells.
    static func judge(_ r: Run, lines: Bool = false) -> HTML {
        guard r.judge.calls > 0 else { return "<span class=\"sub\">no judge calls</span>" }
        var parts = ["\(r.judge.calls) calls", "\(Fmt.count(r.judge.inputTokens)) in / \(Fmt.count(r.judge.outputTokens)) out", Fmt.cost(r.judge.costUSD)]
        // Calls made again for items whose first claim was lost (a backend stopped mid-item).
        if r.judge.callsRepeated > 0 { parts.append("\(r.judge.callsRepeated) repeated after a stop") }
        return lines ? HTML.join(parts.map { p -> HTML in "<div>\(p)</div>" }) : HTML(raw: HTML.escape(parts.joined(separator: " · ")))
    }

    /// Readable text of an item input: a string, chat messages ("role: text" lines), or
    /// `{"messages": …}`; other JSON as JSON.
    static func text(_ j: JSON) -> String {
        switch j {
        case .string(let s): return s
        case .array(let items):
            let lines = items.map { m -> String in
                guard case .object(let o) = m else { return m.stringValue ?? m.text }
                let role = o["role"]?.stringValue ?? ""
                let body = o["content"].map(content) ?? o["parts"].map(content) ?? m.text
                return role.isEmpty ? body : role + ": " + body
            }
            return lines.joined(separator: "\n")
        case .object(let o):
            if let m = o["messages"] { return text(m) }
            if let i = o["input"] { return text(i) }
            return j.text
        default: return j.text
        }
    }

    private static func content(_ c: JSON) -> String {
        if let s = c.stringValue { return s }
        if let parts = c.arrayValue {
            return parts.map { p in p["text"]?.stringValue ?? p["content"]?.stringValue ?? p.stringValue ?? p.text }.joined(separator: "\n")
        }
        return c.text
    }

    /// Text in a table cell, scrollable when long.
    static func clip(_ s: String?, empty: String = "–") -> HTML {
        guard let s, !s.isEmpty else { return "<span class=\"sub\">\(empty)</span>" }
        return "<div class=\"clip\">\(s)</div>"
    }

    /// Loads the dataset items with the given sequence numbers' range (items are numbered from 1
    /// in insertion order), keyed by id; empty when the dataset is gone.
    static func items(_ ev: EvaluationService, projectID: String, datasetID: String, seqs: ClosedRange<Int>) async -> [String: DatasetItem] {
        let limit = min(10_000, seqs.count)
        guard let items = try? await ev.items(projectID: projectID, datasetID: datasetID, limit: limit, offset: max(0, seqs.lowerBound - 1)) else { return [:] }
        return Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }
}
