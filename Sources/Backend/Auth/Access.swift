import EvalForgeModel
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Who a request acts as, once authenticated: the instance admin token, a project key with its
/// scopes, or a UI session. Set on the context by the authenticating middleware.
public struct Access: Sendable, Hashable {
    public enum Principal: Sendable, Hashable {
        case adminToken
        case key(id: String)
        case session(id: String)
    }

    public var principal: Principal
    public var scopes: Set<Scope>

    public init(principal: Principal, scopes: Set<Scope>) {
        self.principal = principal
        self.scopes = scopes
    }

    /// The instance admin token: manages every project; has no project of its own.
    public var isInstanceAdmin: Bool { principal == .adminToken }

    /// The audit log's "who": `admin-token`, `key:<id>` or `session:<id>`.
    public var actor: String {
        switch principal {
        case .adminToken: "admin-token"
        case .key(let id): "key:" + id
        case .session(let id): "session:" + id
        }
    }
}

/// What a route needs: nothing (`public`) or one scope. `RoutePolicy` is the one place every route
/// declares it; `ScopeMiddleware` enforces it.
public enum RouteAccess: Sendable, Hashable, CustomStringConvertible {
    case `public`
    case scope(Scope)

    public var description: String {
        switch self {
        case .public: "public"
        case .scope(let s): "scope \(s.rawValue)"
        }
    }
}

/// The scope every route needs, by method and route path (the router's pattern, e.g.
/// `/api/datasets/{id}`): the first rule whose path is the route's path or a path-segment prefix of
/// it, and whose method (when it names one) matches. A route no rule covers is refused (403) by
/// `ScopeMiddleware`, and the route-walk test fails on it.
public enum RoutePolicy {
    struct Rule: Sendable {
        let method: HTTPRequest.Method?
        let path: String
        let access: RouteAccess
    }

    static let rules: [Rule] = [
        // Operational endpoints, the sign-in page and static assets.
        Rule(method: .get, path: "/healthz", access: .public),
        Rule(method: .get, path: "/readyz", access: .public),
        Rule(method: .get, path: "/ui/app.js", access: .public),
        Rule(method: nil, path: "/login", access: .public),
        Rule(method: .post, path: "/logout", access: .public),
        // Ingest: OTLP and the collector's forwarded batches.
        Rule(method: .post, path: "/v1/traces", access: .scope(.ingest)),
        Rule(method: .post, path: "/v1/batches", access: .scope(.ingest)),
        Rule(method: .get, path: "/api/auth/check", access: .scope(.ingest)),
        // Administration: keys, projects, audit; webhooks, providers.
        Rule(method: nil, path: "/api/admin", access: .scope(.admin)),
        Rule(method: nil, path: "/api/webhooks", access: .scope(.admin)),
        Rule(method: nil, path: "/api/providers", access: .scope(.admin)),
        // Evaluation.
        Rule(method: nil, path: "/api/evaluators", access: .scope(.evaluate)),
        Rule(method: nil, path: "/api/evaluate", access: .scope(.evaluate)),
        Rule(method: nil, path: "/api/online-rules", access: .scope(.evaluate)),
        Rule(method: nil, path: "/api/online-queue", access: .scope(.evaluate)),
        Rule(method: nil, path: "/api/datasets", access: .scope(.evaluate)),
        Rule(method: nil, path: "/api/experiments", access: .scope(.evaluate)),
        Rule(method: nil, path: "/api/runs", access: .scope(.evaluate)),
        Rule(method: nil, path: "/api/scores", access: .scope(.evaluate)),
        // Reading telemetry: query API, export, usage.
        Rule(method: .get, path: "/api/traces", access: .scope(.read)),
        Rule(method: .get, path: "/api/sessions", access: .scope(.read)),
        Rule(method: .get, path: "/api/users", access: .scope(.read)),
        Rule(method: .get, path: "/api/metrics", access: .scope(.read)),
        Rule(method: .get, path: "/api/export", access: .scope(.read)),
        Rule(method: .get, path: "/api/usage", access: .scope(.read)),
        Rule(method: .get, path: "/ui/export", access: .scope(.read)),
        // Web UI pages: reading; evaluation pages; settings.
        Rule(method: nil, path: "/settings", access: .scope(.admin)),
        Rule(method: .get, path: "/experiments", access: .scope(.evaluate)),
        Rule(method: .get, path: "/traces", access: .scope(.read)),
        Rule(method: .get, path: "/sessions", access: .scope(.read)),
        Rule(method: .get, path: "/users", access: .scope(.read)),
        Rule(method: .get, path: "/", access: .scope(.read)),
    ]

    /// What `method` on the route `path` needs; nil when no rule covers it.
    public static func access(method: HTTPRequest.Method, path: String) -> RouteAccess? {
        for r in rules where r.method == nil || r.method == method || (method == .head && r.method == .get) {
            if path == r.path || (r.path == "/" ? path == "/" : path.hasPrefix(r.path + "/")) { return r.access }
        }
        return nil
    }
}

/// Enforces `RoutePolicy` after authentication: a request whose principal lacks the route's scope
/// gets 403 with a JSON body naming the missing scope; a route without a declaration is refused.
public struct ScopeMiddleware: RouterMiddleware {
    public typealias Context = BackendRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let route = context.endpointPath ?? request.uri.path
        switch RoutePolicy.access(method: request.method, path: route) {
        case .public:
            return try await next(request, context)
        case .scope(let scope):
            guard let access = context.access else {
                throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing API key: send Authorization: Bearer <key>")
            }
            guard access.isInstanceAdmin || access.scopes.contains(scope) else {
                return Self.forbidden("this key lacks the '\(scope.rawValue)' scope, which \(request.method) \(route) needs; create a key with --scope \(scope.rawValue)", missingScope: scope.rawValue)
            }
            return try await next(request, context)
        case nil:
            return Self.forbidden("\(request.method) \(route) declares no scope (RoutePolicy); refused", missingScope: nil)
        }
    }

    /// `{"error":{"message":…},"missing_scope":…}`: the error shape of the query API (HTTPError's),
    /// with the scope named at the top for programs.
    static func forbidden(_ message: String, missingScope: String?) -> Response {
        var body = "{\"error\":{\"message\":" + JSONString.quote(message) + "}"
        if let missingScope { body += ",\"missing_scope\":" + JSONString.quote(missingScope) }
        body += "}"
        return Response(status: .forbidden, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Records state-changing requests in the audit log: every successful non-GET request to a route
/// that needs the `admin` scope (webhooks, providers) and every successful DELETE. The admin API
/// under `/api/admin` writes its own, richer entries in the same transaction as the change.
public struct AuditMiddleware: RouterMiddleware {
    public typealias Context = BackendRequestContext
    let projects: ProjectStore

    public init(projects: ProjectStore) {
        self.projects = projects
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        guard request.method != .get, request.method != .head, response.status.code < 400, let access = context.access else { return response }
        let route = context.endpointPath ?? request.uri.path
        guard !route.hasPrefix("/api/admin") else { return response }
        guard request.method == .delete || RoutePolicy.access(method: request.method, path: route) == .scope(.admin) else { return response }
        do {
            try await projects.recordAudit(actor: access.actor, action: "\(request.method) \(route)", projectID: context.project?.id ?? "", target: String(request.uri.path.prefix(512)))
        } catch {
            context.logger.error("audit log write failed", metadata: ["error": "\(error)", "route": "\(route)"])
        }
        return response
    }
}
