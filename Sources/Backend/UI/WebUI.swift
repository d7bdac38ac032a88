import Hummingbird

/// The server-rendered web UI. (Skeleton: the query issue fills it in.)
enum WebUI {
    static func addRoutes(to router: Router<BackendRequestContext>, services: BackendServices) {}
}
