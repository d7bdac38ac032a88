import EvalForgeStore
import Hummingbird

/// `GET /api/traces` (filtered, sorted, paginated list) and `GET /api/traces/{trace_id}` (the span
/// tree with attributes, content and scores).
struct TracesController: Sendable {
    let store: any SpanStore

    static let listParameters = TraceFilterParameters.names.union(["sort", "limit", "cursor"])

    func addRoutes(to group: RouterGroup<BackendRequestContext>) {
        group.get(use: list)
        group.get(":trace_id", use: detail)
    }

    @Sendable func list(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let p = try QueryParameters(request, allowed: Self.listParameters)
        let filter = try TraceFilterParameters.filter(p, projectID: project.id)
        let sort = try p.oneOf("sort", TraceFilterParameters.sorts, default: .startDesc)
        let limit = try p.int("limit", default: 50, range: 1...1000)
        let page = try await storeCall { try await store.listTraces(filter, sort: sort, limit: limit, cursor: p.string("cursor")) }
        return try APIResponse.json(PageDTO(items: page.items.map(TraceSummaryDTO.init), nextCursor: page.nextCursor))
    }

    @Sendable func detail(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        _ = try QueryParameters(request, allowed: [])
        let traceID = try IDFormat.traceID(IDFormat.pathValue(context, "trace_id"))
        guard let detail = try await Self.load(store: store, projectID: project.id, traceID: traceID) else {
            throw HTTPError(.notFound, message: "no trace \(traceID) in this project")
        }
        return try APIResponse.json(detail)
    }

    /// The trace's spans and scores as the API's tree; nil when the project has no such trace.
    static func load(store: any SpanStore, projectID: String, traceID: String) async throws -> TraceDetailDTO? {
        async let spans = storeCall { try await store.trace(projectID: projectID, traceID: traceID) }
        async let scores = storeCall { try await store.scores(projectID: projectID, traceIDs: [traceID]) }
        return TraceTree.detail(try await spans, scores: try await scores)
    }
}
