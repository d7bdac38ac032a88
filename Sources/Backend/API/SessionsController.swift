import EvalForgeModel
import EvalForgeStore
import Hummingbird

/// `GET /api/sessions` and `GET /api/sessions/{session_id}`: a session's model calls as
/// conversation turns, with its scores.
struct SessionsController: Sendable {
    let store: any SpanStore

    /// Most spans read for one session's conversation view.
    static let maxSessionSpans = 2000

    func addRoutes(to group: RouterGroup<BackendRequestContext>) {
        group.get(use: list)
        group.get(":session_id", use: detail)
    }

    @Sendable func list(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let p = try QueryParameters(request, allowed: ["from", "to", "user_id", "limit", "cursor"])
        let filter = try Self.sessionFilter(p, projectID: project.id)
        let limit = try p.int("limit", default: 50, range: 1...1000)
        let page = try await storeCall { try await store.listSessions(filter, limit: limit, cursor: p.string("cursor")) }
        return try APIResponse.json(PageDTO(items: page.items.map(SessionSummaryDTO.init), nextCursor: page.nextCursor))
    }

    static func sessionFilter(_ p: QueryParameters, projectID: String) throws -> SessionFilter {
        let f = SessionFilter(projectID: projectID, from: try p.time("from"), to: try p.time("to"), userID: p.string("user_id"))
        if let from = f.from, let to = f.to, from >= to { throw HTTPError(.badRequest, message: "time range is empty: 'from' must be before 'to'") }
        return f
    }

    @Sendable func detail(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        _ = try QueryParameters(request, allowed: [])
        let sessionID = try IDFormat.pathValue(context, "session_id")
        guard let detail = try await Self.load(store: store, projectID: project.id, sessionID: sessionID) else {
            throw HTTPError(.notFound, message: "no session '\(sessionID)' in this project")
        }
        return try APIResponse.json(detail)
    }

    static func load(store: any SpanStore, projectID: String, sessionID: String) async throws -> SessionDetailDTO? {
        let spans = try await storeCall { try await store.sessionSpans(projectID: projectID, sessionID: sessionID, limit: maxSessionSpans) }
        guard let first = spans.first else { return nil }
        let traceIDs = orderedUnique(spans.map(\.traceID))
        async let sessionScores = storeCall { try await store.scores(projectID: projectID, sessionID: sessionID) }
        async let traceScores = storeCall { try await store.scores(projectID: projectID, traceIDs: traceIDs) }
        var seen = Set<String>()
        let scores = (try await sessionScores + traceScores).filter { seen.insert($0.id).inserted }
        let llm = spans.filter(\.isLLMCall)
        let errorTraces = Set(spans.filter(\.isError).map(\.traceID))
        let summary = SessionSummary(
            sessionID: sessionID, userID: spans.first(where: { !$0.userID.isEmpty })?.userID ?? "",
            firstUnixNanos: first.startUnixNanos, lastUnixNanos: spans.map(\.endUnixNanos).max() ?? first.startUnixNanos,
            traceCount: traceIDs.count, llmCalls: llm.count, errorCount: errorTraces.count,
            inputTokens: CheckedNumbers.sum(spans.lazy.map(\.inputTokens)), outputTokens: CheckedNumbers.sum(spans.lazy.map(\.outputTokens)),
            costUSD: CheckedNumbers.finiteSum(spans.lazy.map { $0.costUSD ?? 0 }))
        return SessionDetailDTO(session: SessionSummaryDTO(summary), turns: llm.map(TurnDTO.init), traceIds: traceIDs, scores: scores.map(ScoreDTO.init))
    }

    static func orderedUnique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        return xs.filter { seen.insert($0).inserted }
    }
}
