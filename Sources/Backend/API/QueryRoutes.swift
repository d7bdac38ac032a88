import Hummingbird

/// The query API under /api: traces, sessions, users, metrics and exports, each scoped to the
/// project of the request's API key. docs/openapi.yaml describes every route and shape.
enum QueryRoutes {
    static func addRoutes(to group: RouterGroup<BackendRequestContext>, services: BackendServices) {
        TracesController(store: services.store).addRoutes(to: group.group("traces"))
        SessionsController(store: services.store).addRoutes(to: group.group("sessions"))
        UsersController(store: services.store).addRoutes(to: group.group("users"))
        MetricsController(store: services.store).addRoutes(to: group.group("metrics"))
        ExportController(store: services.store).addRoutes(to: group.group("export"))
    }
}
