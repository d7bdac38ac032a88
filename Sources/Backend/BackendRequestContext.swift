import EvalForgeStore
import Hummingbird
import NIOCore

/// Request context of every backend route: the project the request's API key or UI session
/// authenticated (set by `APIKeyMiddleware` or `SessionMiddleware`; nil on public routes).
public struct BackendRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var project: Project?
    /// Who the request acts as (admin token, key and its scopes, session); nil on public routes.
    public var access: Access?
    /// The web UI session the request came with (set by `SessionMiddleware`); nil for API keys.
    public var session: UISession?
    /// The peer's address (the proxy's, behind one): sign-in rate limits are per client address.
    public let remoteAddress: SocketAddress?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.project = nil
        self.access = nil
        self.session = nil
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The authenticated project; throws 401 when the route is reached without one.
    public func requireProject() throws -> Project {
        guard let project else { throw HTTPError(.unauthorized, message: "missing or invalid API key: send Authorization: Bearer <key>") }
        return project
    }
}
