import EvalForgeStore
import Hummingbird
import HTTPTypes

/// Authenticates requests by the instance admin token or a project API key: `Authorization: Bearer
/// <key>` or `X-API-Key: <key>`. Malformed, unknown, revoked and expired keys get 401 naming which;
/// the project and the principal's scopes are put on the request context (`ScopeMiddleware` checks
/// them per route). Keys and the admin token are compared by SHA-256 hash; no plaintext is stored.
/// A request `SessionMiddleware` already signed in (a UI session with its CSRF header) goes on.
public struct APIKeyMiddleware: RouterMiddleware {
    public typealias Context = BackendRequestContext
    let projects: ProjectStore

    public init(projects: ProjectStore) {
        self.projects = projects
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if context.session != nil { return try await next(request, context) }
        guard let key = Self.key(from: request) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing API key: send Authorization: Bearer <key>")
        }
        guard Self.isWellFormed(key) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "malformed API key: expected 8 to 256 printable ASCII characters without spaces")
        }
        var context = context
        if try await projects.isAdminToken(key) {
            context.access = Access(principal: .adminToken, scopes: Scope.all)
            return try await next(request, context)
        }
        guard let found = try await projects.authenticateKey(key) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "invalid, revoked or expired API key")
        }
        context.project = found.project
        context.access = Access(principal: .key(id: found.keyID), scopes: found.scopes)
        return try await next(request, context)
    }

    /// 8…256 visible ASCII characters: what every key and admin token is. Anything else is refused
    /// before a lookup.
    static func isWellFormed(_ key: String) -> Bool {
        (8...256).contains(key.utf8.count) && key.utf8.allSatisfy { (0x21...0x7e).contains($0) }
    }

    static let apiKeyHeader = HTTPField.Name("X-API-Key")!

    /// The key a request carries, if any. (The web UI's cookie holds a session, not a key:
    /// `SessionMiddleware`.)
    public static func key(from request: Request) -> String? {
        if let auth = request.headers[.authorization] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let k = parts[1].trimmingCharacters(in: .whitespaces)
                return k.isEmpty ? nil : k
            }
        }
        if let k = request.headers[apiKeyHeader], !k.isEmpty { return k }
        return nil
    }
}

import Foundation
