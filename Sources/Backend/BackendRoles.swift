import EvalForgeModel
import Foundation
import Hummingbird
import NIOCore

/// What one backend process serves and runs (`evalforge backend --role`): several backends share one
/// metadata database and one ClickHouse, so ingest, queries and background work can be scaled (and
/// restarted) apart. docs/deployment.md, "Roles".
public struct BackendRoles: Sendable, Equatable, CustomStringConvertible {
    public enum Role: String, Sendable, CaseIterable, Comparable {
        /// `POST /v1/batches` (collectors) and `POST /v1/traces` (OTLP): the collectors' target.
        case ingest
        /// The query API, export, the web UI and the evaluation and admin API under `/api`.
        case query
        /// Background work: evaluation runs, webhook delivery, online evaluation, retention and the
        /// trace summary repair.
        case worker

        public static func < (a: Role, b: Role) -> Bool {
            allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
        }
    }

    /// The roles, never empty.
    public let roles: Set<Role>

    /// Every role: one backend does everything (the default, and `evalforge dev`).
    public static let all = BackendRoles(checked: Set(Role.allCases))

    private init(checked roles: Set<Role>) { self.roles = roles }

    /// `roles`; throws when it is empty.
    public init(_ roles: Set<Role>) throws(BackendRolesError) {
        guard !roles.isEmpty else { throw .empty("") }
        self.roles = roles
    }

    /// The longest `--role` value read: every role, comma-separated, with room for spaces.
    static let maxTextBytes = 64

    /// Parses `--role` / `EVALFORGE_ROLE`: `all`, one role, or a comma list such as `ingest,query`
    /// (spaces around names ignored, names case-insensitive, repeats allowed). Throws naming the
    /// valid roles on anything else.
    public init(parsing text: String) throws(BackendRolesError) {
        guard text.utf8.count <= Self.maxTextBytes else { throw .unknown(String(text.prefix(Self.maxTextBytes)) + "…") }
        var roles = Set<Role>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingCharacters(in: .whitespaces).lowercased()
            if name == "all" {
                roles.formUnion(Role.allCases)
            } else if let r = Role(rawValue: name) {
                roles.insert(r)
            } else {
                throw .unknown(name.isEmpty ? text : name)
            }
        }
        guard !roles.isEmpty else { throw .empty(text) }
        self.roles = roles
    }

    public func contains(_ role: Role) -> Bool { roles.contains(role) }

    /// The roles in their fixed order (ingest, query, worker).
    public var names: [String] { roles.sorted().map(\.rawValue) }

    /// `ingest,query,worker`, or a subset in that order.
    public var description: String { names.joined(separator: ",") }

    /// `["ingest","query"]`: the roles as a JSON array.
    public var json: String { "[" + names.map(JSONString.quote).joined(separator: ",") + "]" }

    /// The roles that serve `path`; empty for the paths every backend serves (`/healthz`, `/readyz`).
    /// Ingest is `/v1/…` and the key check collectors make (`/api/auth/check`, also the query
    /// role's); every other path (the API, the UI, its assets, sign-in) is the query role's.
    public static func roles(serving path: Substring) -> [Role] {
        if path == "/healthz" || path == "/readyz" { return [] }
        if path == "/v1" || path.hasPrefix("/v1/") { return [.ingest] }
        if path == authCheckPath { return [.ingest, .query] }
        return [.query]
    }

    /// The collectors' key check (`AuthCheckRoutes`), served with ingest as with query.
    static let authCheckPath = "/api/auth/check"
}

/// A `--role` value that names no role, naming the valid ones.
public struct BackendRolesError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Code: Sendable, Equatable { case unknown, empty }
    private let code: Code
    public let message: String
    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    static let valid = "ingest, query, worker, all, or a comma list such as ingest,query"
    static func unknown(_ name: String) -> Self { .init(.unknown, "unknown backend role '\(name)': expected \(valid)") }
    static func empty(_ text: String) -> Self { .init(.empty, "no backend role in '\(text)': expected \(valid)") }
    public var description: String { message }
}

/// Refuses, before routing, the requests this backend's roles do not serve: 404 with a JSON body
/// naming the role that serves the path and this backend's roles, so a misrouted collector or
/// browser learns where to go instead of seeing a bare 404. Health and readiness pass in every role.
struct RoleGateMiddleware: RouterMiddleware {
    typealias Context = BackendRequestContext
    let roles: BackendRoles

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let needed = BackendRoles.roles(serving: Substring(request.uri.path))
        guard !needed.isEmpty, !needed.contains(where: roles.contains) else {
            return try await next(request, context)
        }
        return Self.refusal(path: request.uri.path, needed: needed, roles: roles)
    }

    static func refusal(path: String, needed: [BackendRoles.Role], roles: BackendRoles) -> Response {
        let names = needed.map(\.rawValue)
        let message = "\(path.prefix(200)) is served by backends with the \(names.joined(separator: " or ")) role; this backend runs \(roles) (--role)"
        let body = "{\"error\":" + JSONString.quote(message) + ",\"served_by_roles\":[" + names.map(JSONString.quote).joined(separator: ",") + "],\"roles\":" + roles.json + "}"
        return Response(status: .notFound, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
