import Hummingbird

/// The query API under /api (traces, sessions, users, metrics, export). (Skeleton: the query
/// issue fills it in.)
enum QueryRoutes {
    static func addRoutes(to group: RouterGroup<BackendRequestContext>, services: BackendServices) {}
}
