import Foundation

extension Charts {
    struct DeltaRow: Sendable {
        var name: String
        var delta: Double?
        /// 95 % CI of the delta, when there is one.
        var ci: [Double]?
        var significant: Bool
    }

    /// Horizontal bars diverging from zero, one row per evaluator: the mean delta (green up, red
    /// down, grey when not significant) with its confidence interval as a whisker. Each bar has a
    /// native tooltip.
    static func deltaBars(_ rows: [DeltaRow]) -> HTML {
        let w = 1000.0, rowH = 28.0, top = 8.0, bottom = 26.0, left = 190.0, right = 90.0
        let h = top + bottom + rowH * Double(max(rows.count, 1))
        let plotW = w - left - right
        let extent = rows.flatMap { r in [r.delta].compactMap { $0 } + (r.ci ?? []) }.map(abs).filter(\.isFinite).max() ?? 0
        let (ticks, m) = niceTicks(max(extent, 0.05))
        let step = ticks.count > 1 ? ticks[1] - ticks[0] : m
        func x(_ v: Double) -> Double { left + plotW / 2 + max(-1, min(1, v / m)) * plotW / 2 }
        var out = "<svg class=\"chart deltas\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-label=\"Mean score delta per evaluator\" preserveAspectRatio=\"xMidYMid meet\">"
        let axisTicks = ticks.reversed().map { -$0 } + ticks.dropFirst()
        for t in axisTicks {
            let xx = f(x(t))
            out += "<line class=\"grid\" x1=\"\(xx)\" x2=\"\(xx)\" y1=\"\(f(top))\" y2=\"\(f(h - bottom))\"/>"
            let label = t == 0 ? "0" : (t > 0 ? "+" : "−") + Axis.count.label(abs(t), step: step)
            out += "<text x=\"\(xx)\" y=\"\(f(h - 8))\" text-anchor=\"middle\">\(HTML.escape(label))</text>"
        }
        out += "<line class=\"zero\" x1=\"\(f(x(0)))\" x2=\"\(f(x(0)))\" y1=\"\(f(top))\" y2=\"\(f(h - bottom))\"/>"
        for (i, r) in rows.enumerated() {
            let cy = top + rowH * Double(i) + rowH / 2
            let name = r.name.count > 28 ? String(r.name.prefix(27)) + "…" : r.name
            out += "<text class=\"lbl\" x=\"\(f(left - 10))\" y=\"\(f(cy + 4))\" text-anchor=\"end\">\(HTML.escape(name))</text>"
            guard let d = r.delta, d.isFinite else {
                out += "<text x=\"\(f(x(0) + 6))\" y=\"\(f(cy + 4))\">no paired scores</text>"
                continue
            }
            let cls = !r.significant || abs(d) < 0.0005 ? "bar-flat" : (d > 0 ? "bar-up" : "bar-down")
            let x0 = min(x(0), x(d)), width = max(1.5, abs(x(d) - x(0)))
            var tip = "\(r.name): mean delta \(EvalUI.delta(d))"
            if let ci = r.ci, ci.count == 2 { tip += ", 95% CI \(EvalUI.ci(ci))" }
            tip += r.significant ? " (significant)" : " (not significant)"
            out += "<rect class=\"\(cls)\" x=\"\(f(x0))\" y=\"\(f(cy - 7))\" width=\"\(f(width))\" height=\"14\" rx=\"3\"><title>\(HTML.escape(tip))</title></rect>"
            if let ci = r.ci, ci.count == 2 {
                let (a, b) = (x(ci[0]), x(ci[1]))
                out += "<line class=\"ci\" x1=\"\(f(a))\" x2=\"\(f(b))\" y1=\"\(f(cy))\" y2=\"\(f(cy))\"/>"
                out += "<line class=\"ci\" x1=\"\(f(a))\" x2=\"\(f(a))\" y1=\"\(f(cy - 5))\" y2=\"\(f(cy + 5))\"/>"
                out += "<line class=\"ci\" x1=\"\(f(b))\" x2=\"\(f(b))\" y1=\"\(f(cy - 5))\" y2=\"\(f(cy + 5))\"/>"
            }
            out += "<text class=\"val\" x=\"\(f(w - right + 8))\" y=\"\(f(cy + 4))\">\(HTML.escape(EvalUI.delta(d)))</text>"
        }
        out += "</svg>"
        return HTML(raw: out)
    }
}
