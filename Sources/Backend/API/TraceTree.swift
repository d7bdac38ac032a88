import EvalForgeModel
import EvalForgeStore

/// Builds the nested span tree of one trace: children under their parents in start order; a span
/// whose parent is missing from the trace becomes a root, so nothing stored is hidden.
enum TraceTree {
    /// Spans in tree order (depth-first, children by start time) with their depth.
    static func flatten(_ spans: [SpanRow]) -> [(span: SpanRow, depth: Int)] {
        let ids = Set(spans.map(\.spanID))
        var children: [String: [SpanRow]] = [:]
        var roots: [SpanRow] = []
        for s in spans {
            if s.parentSpanID.isEmpty || !ids.contains(s.parentSpanID) || s.parentSpanID == s.spanID {
                roots.append(s)
            } else {
                children[s.parentSpanID, default: []].append(s)
            }
        }
        let order: (SpanRow, SpanRow) -> Bool = { ($0.startUnixNanos, $0.spanID) < ($1.startUnixNanos, $1.spanID) }
        var out: [(SpanRow, Int)] = []
        out.reserveCapacity(spans.count)
        var visited = Set<String>()
        // Iterative DFS: no recursion limit on deep traces; `visited` guards against parent cycles.
        var stack: [(SpanRow, Int)] = roots.sorted(by: order).reversed().map { ($0, 0) }
        while let (s, d) = stack.popLast() {
            guard visited.insert(s.spanID).inserted else { continue }
            out.append((s, d))
            for c in (children[s.spanID] ?? []).sorted(by: order).reversed() { stack.append((c, d + 1)) }
        }
        // Spans only reachable through a cycle: list them as roots.
        for s in spans.sorted(by: order) where !visited.contains(s.spanID) {
            visited.insert(s.spanID)
            out.append((s, 0))
        }
        return out
    }

    /// Summary of a trace computed from its spans (the same figures as the trace list).
    static func summary(_ spans: [SpanRow]) -> TraceSummary? {
        guard let first = spans.min(by: { $0.startUnixNanos < $1.startUnixNanos }) else { return nil }
        let root = spans.first(where: \.isRoot) ?? first
        let end = spans.map(\.endUnixNanos).max() ?? first.endUnixNanos
        let llm = spans.filter(\.isLLMCall)
        return TraceSummary(
            traceID: first.traceID, name: root.name, service: root.service, startUnixNanos: first.startUnixNanos,
            durationNanos: max(0, end.subtractingSaturated(first.startUnixNanos)), spanCount: spans.count, llmCalls: llm.count,
            errorCount: spans.filter(\.isError).count, inputTokens: CheckedNumbers.sum(spans.lazy.map(\.inputTokens)),
            outputTokens: CheckedNumbers.sum(spans.lazy.map(\.outputTokens)), costUSD: CheckedNumbers.finiteSum(spans.lazy.map { $0.costUSD ?? 0 }),
            costUnknownSpans: llm.filter { $0.costUSD == nil }.count,
            userID: spans.first(where: { !$0.userID.isEmpty })?.userID ?? "",
            sessionID: spans.first(where: { !$0.sessionID.isEmpty })?.sessionID ?? "",
            tags: Array(Set(spans.flatMap(\.tags))).sorted(), models: Array(Set(llm.map(\.model).filter { !$0.isEmpty })).sorted())
    }

    /// The API's nested tree.
    static func detail(_ spans: [SpanRow], scores: [ScoreRow]) -> TraceDetailDTO? {
        guard let summary = summary(spans) else { return nil }
        var bySpan: [String: [ScoreDTO]] = [:]
        var traceScores: [ScoreDTO] = []
        for s in scores {
            if s.spanID.isEmpty { traceScores.append(ScoreDTO(s)) } else { bySpan[s.spanID, default: []].append(ScoreDTO(s)) }
        }
        let flat = flatten(spans)
        // Build bottom-up: a node is complete once all later (deeper) entries are attached.
        var nodes: [SpanDTO] = flat.map { SpanDTO($0.span, traceStart: summary.startUnixNanos, depth: $0.depth, scores: bySpan[$0.span.spanID] ?? []) }
        var parentIndex = [Int?](repeating: nil, count: flat.count)
        var lastAtDepth: [Int] = []
        for (i, e) in flat.enumerated() {
            if e.depth > 0, e.depth <= lastAtDepth.count { parentIndex[i] = lastAtDepth[e.depth - 1] }
            if lastAtDepth.count > e.depth { lastAtDepth.removeLast(lastAtDepth.count - e.depth) }
            lastAtDepth.append(i)
        }
        var roots: [SpanDTO] = []
        for i in stride(from: nodes.count - 1, through: 0, by: -1) {
            nodes[i].children.reverse()  // attached last-first
            if let p = parentIndex[i] { nodes[p].children.append(nodes[i]) } else { roots.append(nodes[i]) }
        }
        roots.reverse()
        return TraceDetailDTO(trace: TraceSummaryDTO(summary), spans: roots, scores: traceScores)
    }
}
