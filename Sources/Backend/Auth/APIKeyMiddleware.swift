import EvalForgeStore
import Hummingbird
import HTTPTypes

/// Authenticates requests by project API key: `Authorization: Bearer <key>`, `X-API-Key: <key>`, or
/// (for the web UI) the `evalforge_key` cookie. Unknown keys get 401; the project is put on the
/// request context. Keys are compared by SHA-256 hash; the plaintext is never stored.
public struct APIKeyMiddleware: RouterMiddleware {
    public typealias Context = BackendRequestContext
    let projects: ProjectStore

    public init(projects: ProjectStore) {
        self.projects = projects
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
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

    /// The key a request carries, if any.
    public static func key(from request: Request) -> String? {
        if let auth = request.headers[.authorization] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let k = parts[1].trimmingCharacters(in: .whitespaces)
                return k.isEmpty ? nil : k
            }
        }
        if let k = request.headers[HTTPField.Name("X-API-Key")!], !k.isEmpty { return k }
        if let cookie = request.headers[.cookie] {
            for part in cookie.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces)
                if kv.hasPrefix("evalforge_key=") {
                    let v = String(kv.dropFirst("evalforge_key=".count)).removingPercentEncoding ?? ""
                    if !v.isEmpty { return v }
                }
            }
        }
        return nil
    }
}

import Foundation
