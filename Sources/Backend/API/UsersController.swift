import EvalForgeStore
import Hummingbird

/// `GET /api/users` and `GET /api/users/{user_id}` (activity, recent sessions and traces).
struct UsersController: Sendable {
    let store: any SpanStore

    func addRoutes(to group: RouterGroup<BackendRequestContext>) {
        group.get(use: list)
        group.get(":user_id", use: detail)
    }

    @Sendable func list(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let p = try QueryParameters(request, allowed: ["from", "to", "limit", "cursor"])
        let filter = try SessionsController.sessionFilter(p, projectID: project.id)
        let limit = try p.int("limit", default: 50, range: 1...1000)
        let page = try await storeCall { try await store.listUsers(filter, limit: limit, cursor: p.string("cursor")) }
        return try APIResponse.json(PageDTO(items: page.items.map(UserSummaryDTO.init), nextCursor: page.nextCursor))
    }

    @Sendable func detail(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let p = try QueryParameters(request, allowed: ["limit"])
        let limit = try p.int("limit", default: 20, range: 1...200)
        let userID = try IDFormat.pathValue(context, "user_id")
        let projectID = project.id
        let users = try await storeCall { try await store.listUsers(SessionFilter(projectID: projectID, userID: userID), limit: 1, cursor: nil) }
        guard let user = users.items.first(where: { $0.userID == userID }) else {
            throw HTTPError(.notFound, message: "no user '\(userID)' in this project")
        }
        async let sessions = storeCall { try await store.listSessions(SessionFilter(projectID: projectID, userID: userID), limit: limit, cursor: nil) }
        async let traces = storeCall { try await store.listTraces(TraceFilter(projectID: projectID, userID: userID), sort: .startDesc, limit: limit, cursor: nil) }
        return try APIResponse.json(UserDetailDTO(user: UserSummaryDTO(user), sessions: try await sessions.items.map(SessionSummaryDTO.init), traces: try await traces.items.map(TraceSummaryDTO.init)))
    }
}
