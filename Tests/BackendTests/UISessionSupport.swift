import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// A web UI sign-in made through the real routes: GET /login (the form's CSRF token and its
/// cookie), then POST /login with the key.
struct UISignIn: Sendable {
    /// The session id from the `evalforge_session` cookie.
    let sessionID: String
    /// The CSRF token the signed-in pages carry.
    let csrf: String
    /// The full Set-Cookie of the session.
    let setCookie: String
    /// The Cookie header a browser sends afterwards.
    var cookie: HTTPFields { [.cookie: "evalforge_session=\(sessionID)"] }
}

/// The Set-Cookie field of cookie `name` among a response's headers.
func setCookieField(_ name: String, in headers: HTTPFields) -> String? {
    headers[values: .setCookie].first { $0.hasPrefix(name + "=") }
}

extension TestClientProtocol {
    /// GET /login: the sign-in form's CSRF token and the `evalforge_login` cookie holding it.
    func loginForm(headers: HTTPFields = [:]) async throws -> (token: String, cookie: String) {
        let page = try await execute(uri: "/login", method: .get, headers: headers, body: nil) { ($0.status, $0.headers, String(buffer: $0.body)) }
        #expect(page.0 == .ok)
        let set = try #require(setCookieField("evalforge_login", in: page.1), "GET /login sets the form's cookie")
        let value = String(set.dropFirst("evalforge_login=".count).prefix { $0 != ";" })
        let token = try #require(page.2.components(separatedBy: "name=\"csrf_token\" value=\"").dropFirst().first.map { String($0.prefix(64)) })
        #expect(token == value, "double submit: the form's token is the cookie's")
        return (token, "evalforge_login=" + value)
    }

    /// POST /login with `form` (url-encoded) and `cookie`; returns status, headers and body.
    func postLogin(_ form: String, cookie: String?, headers extra: HTTPFields = [:]) async throws -> (status: HTTPResponse.Status, headers: HTTPFields, body: String) {
        var h: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let cookie { h[.cookie] = cookie }
        h.append(contentsOf: extra)
        return try await execute(uri: "/login", method: .post, headers: h, body: ByteBuffer(string: form)) { ($0.status, $0.headers, String(buffer: $0.body)) }
    }

    /// Signs in with `key` as a browser does and returns the session.
    func signIn(_ key: String, headers extra: HTTPFields = [:]) async throws -> UISignIn {
        let form = try await loginForm()
        let r = try await postLogin("api_key=\(key)&next=%2F&csrf_token=\(form.token)", cookie: form.cookie, headers: extra)
        #expect(r.status == .seeOther, "sign-in: \(r.status) \(r.body.prefix(300))")
        let set = try #require(setCookieField("evalforge_session", in: r.headers), "sign-in sets the session cookie")
        let id = String(set.dropFirst("evalforge_session=".count).prefix { $0 != ";" })
        let page = try await execute(uri: "/", method: .get, headers: [.cookie: "evalforge_session=\(id)"], body: nil) { String(buffer: $0.body) }
        let csrf = try #require(page.components(separatedBy: "<meta name=\"csrf-token\" content=\"").dropFirst().first.map { String($0.prefix(64)) }, "signed-in pages carry the CSRF token")
        return UISignIn(sessionID: id, csrf: csrf, setCookie: set)
    }

    /// GET `uri` as a browser signed in with `key`.
    func page(_ uri: String, signedInWith key: String) async throws -> (status: HTTPResponse.Status, body: String, headers: HTTPFields) {
        let session = try await signIn(key)
        return try await execute(uri: uri, method: .get, headers: session.cookie, body: nil) { r in (r.status, String(buffer: r.body), r.headers) }
    }
}
