import EvalForgeStore
import Hummingbird
import HTTPTypes

/// Authenticates requests by project API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
/// Unknown keys get 401; the project is put on the request context. Keys are compared by SHA-256
/// hash; the plaintext is never stored. A request `SessionMiddleware` already signed in (a UI
/// session with its CSRF header) goes on.
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
        guard let project = try await projects.authenticate(key: key) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "invalid or revoked API key")
        }
        var context = context
        context.project = project
        return try await next(request, context)
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
