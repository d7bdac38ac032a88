import Foundation

/// Two runs compared item by item (items matched by dataset item id).
public struct RunComparison: Sendable, Codable {
    public var base: String
    public var candidate: String
    public var evaluators: [EvaluatorDelta]
    /// Items whose score dropped (most first), at most 100.
    public var regressions: [ItemDelta]
    /// Items whose score rose (most first), at most 100.
    public var improvements: [ItemDelta]
    /// Every paired (item, evaluator) delta, in item order.
    public var items: [ItemDelta]

    public struct EvaluatorDelta: Sendable, Codable {
        public var evaluator: String
        /// Items scored in both runs.
        public var pairs: Int
        public var baseMean: Double?
        public var candidateMean: Double?
        public var meanDelta: Double?
        public var improved: Int
        public var regressed: Int
        public var unchanged: Int
        /// Wilcoxon signed-rank test (normal approximation with tie correction), two-sided.
        public var pValue: Double?
        /// 95 % bootstrap confidence interval of the mean delta (2,000 resamples, fixed seed).
        public var ci95: [Double]?
        /// pValue < 0.05 and the CI excludes 0.
        public var significant: Bool
    }

    public struct ItemDelta: Sendable, Codable {
        public var itemID: String
        public var seq: Int
        public var evaluator: String
        public var base: Double
        public var candidate: Double
        public var delta: Double
    }

    static let epsilon = 1e-9

    init(base: String, candidate: String, baseItems: [RunItemResult], candidateItems: [RunItemResult]) {
        self.base = base
        self.candidate = candidate
        var byItem: [String: RunItemResult] = [:]
        for i in candidateItems { byItem[i.itemID] = i }
        var deltas: [ItemDelta] = []
        var baseScores: [String: [Double]] = [:]
        var candScores: [String: [Double]] = [:]
        var names: [String] = []
        for a in baseItems {
            for r in a.results { if let s = r.score { baseScores[r.evaluator, default: []].append(s); if !names.contains(r.evaluator) { names.append(r.evaluator) } } }
            guard let b = byItem[a.itemID] else { continue }
            for ra in a.results {
                guard let sa = ra.score, let sb = b.results.first(where: { $0.evaluator == ra.evaluator })?.score else { continue }
                deltas.append(ItemDelta(itemID: a.itemID, seq: a.seq, evaluator: ra.evaluator, base: sa, candidate: sb, delta: sb - sa))
            }
        }
        for b in candidateItems { for r in b.results { if let s = r.score { candScores[r.evaluator, default: []].append(s); if !names.contains(r.evaluator) { names.append(r.evaluator) } } } }
        items = deltas
        regressions = Array(deltas.filter { $0.delta < -Self.epsilon }.sorted { $0.delta < $1.delta }.prefix(100))
        improvements = Array(deltas.filter { $0.delta > Self.epsilon }.sorted { $0.delta > $1.delta }.prefix(100))
        evaluators = names.map { name in
            let d = deltas.filter { $0.evaluator == name }.map(\.delta)
            let p = RunComparison.wilcoxon(d)
            let ci = RunComparison.bootstrapCI(d)
            return EvaluatorDelta(evaluator: name, pairs: d.count, baseMean: RunComparison.mean(baseScores[name] ?? []), candidateMean: RunComparison.mean(candScores[name] ?? []),
                                  meanDelta: RunComparison.mean(d), improved: d.filter { $0 > Self.epsilon }.count, regressed: d.filter { $0 < -Self.epsilon }.count,
                                  unchanged: d.filter { abs($0) <= Self.epsilon }.count, pValue: p, ci95: ci,
                                  significant: (p ?? 1) < 0.05 && ci.map { $0[0] > 0 || $0[1] < 0 } ?? false)
        }
    }

    static func mean(_ x: [Double]) -> Double? { x.isEmpty ? nil : x.reduce(0, +) / Double(x.count) }

    /// Two-sided Wilcoxon signed-rank p-value (zeros dropped, average ranks for ties, normal
    /// approximation with continuity and tie correction); nil with fewer than 6 non-zero pairs.
    static func wilcoxon(_ d: [Double]) -> Double? {
        let nz = d.filter { abs($0) > epsilon }
        let n = nz.count
        guard n >= 6 else { return n == 0 && !d.isEmpty ? 1 : nil }
        let sorted = nz.map { (abs($0), $0 > 0) }.sorted { $0.0 < $1.0 }
        var ranks = [Double](repeating: 0, count: n)
        var tieTerm = 0.0
        var i = 0
        while i < n {
            var j = i
            while j + 1 < n, abs(sorted[j + 1].0 - sorted[i].0) <= epsilon { j += 1 }
            let r = Double(i + j + 2) / 2
            for k in i...j { ranks[k] = r }
            let t = Double(j - i + 1)
            tieTerm += t * t * t - t
            i = j + 1
        }
        var wPlus = 0.0
        for k in 0..<n where sorted[k].1 { wPlus += ranks[k] }
        let nn = Double(n)
        let mu = nn * (nn + 1) / 4
        let sigma = ((nn * (nn + 1) * (2 * nn + 1)) / 24 - tieTerm / 48).squareRoot()
        guard sigma > 0 else { return 1 }
        let z = (abs(wPlus - mu) - 0.5) / sigma
        return min(1, erfc(max(0, z) / 2.0.squareRoot()))
    }

    /// Percentile bootstrap 95 % CI of the mean (deterministic generator).
    static func bootstrapCI(_ d: [Double], resamples: Int = 2000) -> [Double]? {
        guard d.count >= 2 else { return nil }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var means: [Double] = []
        means.reserveCapacity(resamples)
        let n = UInt64(d.count)
        for _ in 0..<resamples {
            var s = 0.0
            for _ in 0..<d.count { s += d[Int(next() % n)] }
            means.append(s / Double(d.count))
        }
        means.sort()
        return [means[Int(Double(resamples) * 0.025)], means[min(resamples - 1, Int(Double(resamples) * 0.975))]]
    }
}

extension Run {
    /// Per-evaluator aggregates of a run's item results.
    static func aggregates(_ items: [RunItemResult]) -> [EvaluatorAggregate] {
        var order: [String] = []
        var acc: [String: (count: Int, scores: [Double], errors: Int, labels: [String: Int], passes: Int, labelled: Int)] = [:]
        for item in items {
            for r in item.results {
                if acc[r.evaluator] == nil { order.append(r.evaluator); acc[r.evaluator] = (0, [], 0, [:], 0, 0) }
                acc[r.evaluator]?.count += 1
                if let s = r.score { acc[r.evaluator]?.scores.append(s) }
                if r.error != nil { acc[r.evaluator]?.errors += 1 }
                if !r.label.isEmpty, r.error == nil {
                    acc[r.evaluator]?.labels[r.label, default: 0] += 1
                    acc[r.evaluator]?.labelled += 1
                    if r.label == "pass" { acc[r.evaluator]?.passes += 1 }
                }
            }
        }
        return order.compactMap { name in
            guard let a = acc[name] else { return nil }
            return EvaluatorAggregate(evaluator: name, count: a.count, scored: a.scores.count, errors: a.errors, mean: RunComparison.mean(a.scores), min: a.scores.min(), max: a.scores.max(),
                                      passRate: a.labelled > 0 ? Double(a.passes) / Double(a.labelled) : nil, labels: a.labels)
        }
    }
}
