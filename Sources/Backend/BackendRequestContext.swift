import EvalForgeStore
import Hummingbird

/// Request context of every backend route: the project the request's API key authenticated
/// (set by `APIKeyMiddleware`; nil on public routes).
public struct BackendRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var project: Project?
    /// Who the request acts as (admin token, key and its scopes, session); nil on public routes.
    public var access: Access?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.project = nil
        self.access = nil
    }

    /// The authenticated project; throws 401 when the route is reached without one.
    public func requireProject() throws -> Project {
        guard let project else { throw HTTPError(.unauthorized, message: "missing or invalid API key: send Authorization: Bearer <key>") }
        return project
    }
}
