import Foundation

/// Server-side SVG line charts: fixed view box, scaled to the card's width by CSS; each point has a
/// native tooltip (`<title>`), so no chart script is needed.
enum Charts {
    static let palette = ["#6366f1", "#10b981", "#f59e0b", "#ef4444", "#06b6d4", "#a855f7", "#ec4899", "#84cc16", "#64748b"]

    struct Series: Sendable {
        var name: String
        var color: String
        /// One value per x slot; nil leaves a gap.
        var values: [Double?]
    }

    static func color(_ i: Int) -> String { palette[i % palette.count] }

    /// How axis ticks are written: with as many decimals as the tick step needs.
    enum Axis: Sendable {
        case cost, count, ms, percent

        func label(_ v: Double, step: Double) -> String {
            if v == 0 { return "0" }
            // The fewest decimals that write every tick exactly (0.25 → 2, 0.5 → 1, 5 → 0).
            var decimals = 0
            while decimals < 6, abs(step * pow(10, Double(decimals)) - (step * pow(10, Double(decimals))).rounded()) > 1e-6 { decimals += 1 }
            switch self {
            case .cost: return "$" + String(format: "%.\(max(decimals, v >= 1 ? 0 : 2))f", v)
            case .count: return v >= 1000 ? Fmt.count(v) : String(format: "%.\(decimals)f", v)
            case .percent: return String(format: "%.\(decimals)f", v) + "%"
            case .ms: return v >= 1000 ? Fmt.ms(v) : String(format: "%.\(decimals)f", v) + " ms"
            }
        }
    }

    /// A line chart over `slots` (Unix seconds of each bucket start).
    static func line(slots: [Int64], series input: [Series], format: (Double) -> String, axis: Axis, area: Bool = false) -> HTML {
        // Sums of stored values can overflow to ±inf (or be NaN): such points are gaps, not SVG "inf".
        let series = input.map { s in Series(name: s.name, color: s.color, values: s.values.map { $0.flatMap { $0.isFinite ? $0 : nil } }) }
        let w = 640.0, h = 210.0, left = 56.0, right = 12.0, top = 10.0, bottom = 26.0
        let plotW = w - left - right, plotH = h - top - bottom
        let maxV = series.flatMap { $0.values.compactMap { $0 } }.max() ?? 0
        let (ticks, top_) = niceTicks(maxV, integer: axis == .count)
        let step = ticks.count > 1 ? ticks[1] - ticks[0] : 1
        let n = max(slots.count, 1)
        func x(_ i: Int) -> Double { n == 1 ? left + plotW / 2 : left + plotW * Double(i) / Double(n - 1) }
        func y(_ v: Double) -> Double { top + plotH - (top_ > 0 ? v / top_ : 0) * plotH }
        var out = "<svg class=\"chart\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" preserveAspectRatio=\"xMidYMid meet\">"
        for t in ticks {
            let yy = f(y(t))
            out += "<line class=\"grid\" x1=\"\(f(left))\" x2=\"\(f(w - right))\" y1=\"\(yy)\" y2=\"\(yy)\"/>"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(y(t) + 4))\" text-anchor=\"end\">\(HTML.escape(axis.label(t, step: step)))</text>"
        }
        // X labels: about 6, at evenly spaced slots.
        if !slots.isEmpty {
            let span = (slots.last ?? 0) - (slots.first ?? 0)
            let count = min(6, slots.count)
            var seen = Set<Int>()
            for k in 0..<count {
                let i = count == 1 ? 0 : Int((Double(k) / Double(count - 1) * Double(slots.count - 1)).rounded())
                guard seen.insert(i).inserted else { continue }
                let anchor = k == 0 ? "start" : (k == count - 1 ? "end" : "middle")
                out += "<text x=\"\(f(x(i)))\" y=\"\(f(h - 8))\" text-anchor=\"\(anchor)\">\(HTML.escape(axisLabel(slots[i], span: span)))</text>"
            }
        }
        for s in series {
            var d = "", pen = false
            var pts: [(Double, Double, Int)] = []
            for (i, v) in s.values.enumerated() {
                guard let v else { pen = false; continue }
                d += (pen ? "L" : "M") + f(x(i)) + "," + f(y(v))
                pen = true
                pts.append((x(i), y(v), i))
            }
            let color = HTML.escape(s.color)
            if area, let first = pts.first, let last = pts.last, s.values.allSatisfy({ $0 != nil }) {
                out += "<path class=\"area\" fill=\"\(color)\" d=\"\(d)L\(f(last.0)),\(f(top + plotH))L\(f(first.0)),\(f(top + plotH))Z\"/>"
            }
            if pts.count == 1, let p = pts.first {
                out += "<circle cx=\"\(f(p.0))\" cy=\"\(f(p.1))\" r=\"3\" fill=\"\(color)\"/>"
            }
            out += "<path class=\"line\" stroke=\"\(color)\" d=\"\(d)\"/>"
            for p in pts {
                let label = "\(s.name.isEmpty ? "" : s.name + ": ")\(format(s.values[p.2] ?? 0)) at \(TimeFormat.short(nanos: slots[p.2] * 1_000_000_000)) UTC"
                out += "<circle class=\"dot\" cx=\"\(f(p.0))\" cy=\"\(f(p.1))\" r=\"4\" fill=\"\(color)\"><title>\(HTML.escape(label))</title></circle>"
            }
        }
        out += "</svg>"
        return HTML(raw: out)
    }

    static func legend(_ series: [Series]) -> HTML {
        guard series.count > 1 || series.first.map({ !$0.name.isEmpty }) == true else { return .empty }
        let items = series.map { s -> HTML in "<span><span class=\"sw\" style=\"background:\(s.color)\"></span>\(s.name.isEmpty ? "(none)" : s.name)</span>" }
        return "<div class=\"legend\">\(items)</div>"
    }

    static func f(_ d: Double) -> String { String(format: "%.1f", d) }

    /// Up to five round ticks from 0 covering `maxV`; returns the ticks and the top of the axis.
    static func niceTicks(_ maxV: Double, integer: Bool = false) -> ([Double], Double) {
        guard maxV > 0, maxV.isFinite else { return ([0], 1) }
        let rough = maxV / 4
        let mag = pow(10, floor(log10(rough)))
        var step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= rough } ?? 10 * mag
        if integer { step = max(1, step.rounded(.up)) }
        let top = ceil(maxV / step) * step
        return (stride(from: 0.0, through: top + step / 2, by: step).map { $0 }, top)
    }

    static func axisLabel(_ unix: Int64, span: Int64) -> String {
        let c = TimeFormat.civil(unix)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let mon = months[Int((c.m - 1 + 12) % 12)]
        if span <= 2 * 86_400 { return "\(TimeFormat.pad(c.hh)):\(TimeFormat.pad(c.mm))" }
        return "\(mon) \(c.d)"
    }
}
