import EvalForgeStore
import Hummingbird

/// `GET /api/auth/check`: which project a key with the `ingest` scope writes to. Collectors call it
/// to authenticate the keys their clients send (docs/access-control.md, "The collector
/// authenticates"): 200 with the project and the key's scopes; 401 for a missing, unknown, revoked
/// or expired key (`APIKeyMiddleware`); 403 naming the missing scope for a key without `ingest`
/// (`ScopeMiddleware`, RoutePolicy); 403 for the admin token, which has no project to write to.
enum AuthCheckRoutes {
    struct Answer: Encodable {
        struct ProjectRef: Encodable {
            var id: String
            var name: String
        }
        var project: ProjectRef
        var keyId: String
        var scopes: [String]
    }

    static func addRoutes(to group: RouterGroup<BackendRequestContext>) {
        group.get("auth/check") { _, ctx -> Response in
            guard let access = ctx.access, case .key(let keyID) = access.principal, let project = ctx.project else {
                return ScopeMiddleware.forbidden("the instance admin token (or a session) has no project to write telemetry to; use a project key with the 'ingest' scope", missingScope: nil)
            }
            let answer = Answer(project: .init(id: project.id, name: project.name), keyId: keyID, scopes: access.scopes.map(\.rawValue).sorted())
            return try APIResponse.json(answer)
        }
    }
}
