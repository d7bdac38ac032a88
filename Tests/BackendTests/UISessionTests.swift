@testable import Backend
import EvalForgeCrypto
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Web UI sessions (docs/security.md, "Web UI sessions"): server-side, expiring, revoked at logout
/// and with their key, CSRF-protected forms and API calls, rate-limited sign-in, cookie attributes.
@Suite("Web UI sessions")
struct UISessionTests {
    /// A backend (SQLite) with `configure` applied, its router under test in `mode`.
    func withBackend(_ mode: TestingSetup = .router, configure: (inout BackendConfiguration) -> Void = { _ in },
                     _ body: @Sendable (any TestClientProtocol, BackendServices) async throws -> Void) async throws {
        var c = TestBackend.configuration()
        configure(&c)
        let services = try await BackendApp.makeServices(configuration: c, logger: TestBackend.logger)
        do {
            let app = Application(router: BackendApp.buildRouter(services: services), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: TestBackend.logger)
            try await app.test(mode) { client in try await body(client, services) }
        } catch {
            await TestStore.tearDown(services)
            throw error
        }
        await TestStore.tearDown(services)
    }

    static let key = TestBackend.apiKey

    @Test("the cookie holds a random 256-bit session id (stored hashed): HttpOnly, SameSite=Strict, Path=/, Max-Age, over real HTTP")
    func cookieAttributes() async throws {
        try await withBackend(.live, configure: { $0.sessionMaxSeconds = 7200; $0.sessionIdleSeconds = 600 }) { client, services in
            let s = try await client.signIn(Self.key)
            let attributes = s.setCookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(SessionStore.isWellFormed(s.sessionID))
            #expect(attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict") && attributes.contains("Path=/") && attributes.contains("Max-Age=7200"))
            #expect(!attributes.contains("Secure"), "plain HTTP without a trusted proxy: no Secure")
            #expect(!s.setCookie.contains(Self.key))
            // The metadata file has the id's SHA-256, not the id.
            let rows = try await services.metadata.read { c in try c.query("SELECT id_hash, key_id FROM ui_sessions") }
            #expect(rows.count == 1)
            #expect(rows.first?["id_hash"].string == Digest.sha256Hex(s.sessionID))
            let bytes = try Data(contentsOf: URL(fileURLWithPath: services.configuration.metadataPath))
                + ((try? Data(contentsOf: URL(fileURLWithPath: services.configuration.metadataPath + "-wal"))) ?? Data())
            #expect(bytes.range(of: Data(s.sessionID.utf8)) == nil, "the session id is not stored")
            // Two sign-ins: two different ids.
            #expect(try await client.signIn(Self.key).sessionID != s.sessionID)
        }
    }

    @Test("Secure: behind a trusted proxy saying https, or when forced; a client's own X-Forwarded-Proto is ignored")
    func secureAttribute() async throws {
        let https: HTTPFields = [HTTPField.Name("X-Forwarded-Proto")!: "https"]
        try await withBackend { client, _ in
            let plain = try await client.signIn(Self.key, headers: https)
            #expect(!plain.setCookie.contains("Secure"))
        }
        try await withBackend(configure: { $0.trustProxy = true }) { client, _ in
            let proxied = try await client.signIn(Self.key, headers: https)
            #expect(proxied.setCookie.hasSuffix("; Secure"))
            let direct = try await client.signIn(Self.key)
            #expect(!direct.setCookie.contains("Secure"))
        }
        try await withBackend(configure: { $0.secureCookies = true }) { client, _ in
            let forced = try await client.signIn(Self.key)
            #expect(forced.setCookie.hasSuffix("; Secure"))
        }
    }

    @Test("logout deletes the session server-side: the old cookie no longer opens pages or the API")
    func logoutRevokes() async throws {
        try await withBackend { client, services in
            let s = try await client.signIn(Self.key)
            #expect(try await client.get("/traces", key: nil, headers: s.cookie).status == .ok)
            #expect(try await services.sessions.store.count() == 1)
            // Sign-out without the CSRF token: refused, the session stays.
            let forged = try await client.execute(uri: "/logout", method: .post, headers: s.cookie, body: nil) { ($0.status, String(buffer: $0.body)) }
            #expect(forged.0 == .forbidden && forged.1.contains("missing CSRF token"))
            #expect(try await services.sessions.store.count() == 1)
            var h = s.cookie
            h[.contentType] = "application/x-www-form-urlencoded"
            let out = try await client.execute(uri: "/logout", method: .post, headers: h, body: ByteBuffer(string: "csrf_token=\(s.csrf)")) { ($0.status, $0.headers) }
            #expect(out.0 == .seeOther && out.1[.location] == "/login")
            #expect(setCookieField("evalforge_session", in: out.1)?.contains("Max-Age=0") == true)
            #expect(try await services.sessions.store.count() == 0)
            // A copy of the cookie kept by an attacker is worthless now.
            #expect(try await client.get("/traces", key: nil, headers: s.cookie).status == .seeOther)
            var api = s.cookie
            api[HTTPField.Name("X-CSRF-Token")!] = s.csrf
            #expect(try await client.get("/api/traces", key: nil, headers: api).status == .unauthorized)
        }
    }

    @Test("revoking the key a session was created from ends the session")
    func keyRevocationEndsSessions() async throws {
        try await withBackend { client, services in
            let s = try await client.signIn(Self.key)
            #expect(try await client.get("/traces", key: nil, headers: s.cookie).status == .ok)
            let keys = try await services.projects.keys(projectID: "default")
            for k in keys { try await services.projects.revokeKey(id: k.id, projectID: "default") }
            #expect(try await client.get("/traces", key: nil, headers: s.cookie).status == .seeOther)
        }
    }

    @Test("state-changing forms: a missing or wrong CSRF token is a 403 naming it")
    func formCSRF() async throws {
        try await withBackend { client, _ in
            let s = try await client.signIn(Self.key)
            let page = try await client.get("/traces", key: nil, headers: s.cookie)
            // The sign-out form carries the token.
            #expect(page.body.contains("<input type=\"hidden\" name=\"csrf_token\" value=\"\(s.csrf)\">"))
            var h = s.cookie
            h[.contentType] = "application/x-www-form-urlencoded"
            let wrong = try await client.execute(uri: "/logout", method: .post, headers: h, body: ByteBuffer(string: "csrf_token=" + String(repeating: "0", count: 64))) { ($0.status, String(buffer: $0.body)) }
            #expect(wrong.0 == .forbidden && wrong.1.contains("wrong CSRF token"))
            let missing = try await client.execute(uri: "/logout", method: .post, headers: h, body: ByteBuffer(string: "other=1")) { ($0.status, String(buffer: $0.body)) }
            #expect(missing.0 == .forbidden && missing.1.contains("missing CSRF token"))
            // Another session's token is wrong for this one.
            let other = try await client.signIn(Self.key)
            let crossed = try await client.execute(uri: "/logout", method: .post, headers: h, body: ByteBuffer(string: "csrf_token=\(other.csrf)")) { $0.status }
            #expect(crossed == .forbidden)

            // The sign-in form: its token must match its cookie.
            let form = try await client.loginForm()
            let noToken = try await client.postLogin("api_key=\(Self.key)", cookie: form.cookie)
            #expect(noToken.status == .forbidden && noToken.body.contains("Missing CSRF token"))
            let badToken = try await client.postLogin("api_key=\(Self.key)&csrf_token=" + String(repeating: "a", count: 64), cookie: form.cookie)
            #expect(badToken.status == .forbidden && badToken.body.contains("Wrong CSRF token"))
            let noCookie = try await client.postLogin("api_key=\(Self.key)&csrf_token=\(form.token)", cookie: nil)
            #expect(noCookie.status == .forbidden && setCookieField("evalforge_session", in: noCookie.headers) == nil)
        }
    }

    @Test("the JSON API takes a session cookie only with its X-CSRF-Token header")
    func apiNeedsTheCSRFHeader() async throws {
        try await withBackend { client, _ in
            let s = try await client.signIn(Self.key)
            let bare = try await client.get("/api/traces", key: nil, headers: s.cookie)
            #expect(bare.status == .forbidden && bare.body.contains("X-CSRF-Token"))
            var wrong = s.cookie
            wrong[HTTPField.Name("X-CSRF-Token")!] = String(repeating: "f", count: 64)
            let w = try await client.get("/api/traces", key: nil, headers: wrong)
            #expect(w.status == .forbidden && w.body.contains("wrong CSRF token"))
            var right = s.cookie
            right[HTTPField.Name("X-CSRF-Token")!] = s.csrf
            #expect(try await client.get("/api/traces", key: nil, headers: right).status == .ok)
            // A POST with the cookie but no header changes nothing.
            var post = s.cookie
            post[.contentType] = "application/json"
            let created = try await client.execute(uri: "/api/datasets", method: .post, headers: post, body: ByteBuffer(string: #"{"name":"x"}"#)) { $0.status }
            #expect(created == .forbidden)
            // An API key goes by the key whatever the cookie says.
            #expect(try await client.get("/api/traces", key: Self.key, headers: s.cookie).status == .ok)
            // The pages' export links go through /ui/export with the session alone.
            #expect(try await client.get("/ui/export/traces?format=csv", key: nil, headers: s.cookie).status == .ok)
            #expect(try await client.get("/ui/export/traces?format=csv", key: nil).status == .seeOther)
        }
    }

    /// Expiry over HTTP, without waiting on the wall clock (a loaded machine made sleeps of a few
    /// seconds flaky): the session's row is moved past one expiry, then the cookie no longer signs
    /// in and the row is gone. The arithmetic itself (idle extension capped by the absolute expiry)
    /// is `storeExpiry`, with an injected clock.
    @Test("idle and absolute expiry over HTTP: a session past either is gone", arguments: ["idle_expires_unix_ms", "absolute_expires_unix_ms"])
    func expiryOverHTTP(_ column: String) async throws {
        try await withBackend { client, services in
            let s = try await client.signIn(Self.key)
            #expect(try await client.get("/traces", key: nil, headers: s.cookie).status == .ok)
            let past = SessionStore.nowMs() - 1000
            _ = try await services.metadata.write { c in try c.run("UPDATE ui_sessions SET \(column) = ?", [.integer(past)]) }
            #expect(try await client.get("/traces", key: nil, headers: s.cookie).status == .seeOther)
            #expect(try await services.sessions.store.count() == 0)
        }
    }

    @Test("expiry arithmetic of the store: idle extension is capped by the absolute expiry")
    func storeExpiry() async throws {
        try await withBackend { _, services in
            let store = services.sessions.store
            let t0: Int64 = 1_800_000_000_000
            let created = try #require(try await store.create(key: Self.key, idleSeconds: 10, absoluteSeconds: 25, nowUnixMs: t0))
            #expect(created.record.idleExpiresUnixMs == t0 + 10_000 && created.record.absoluteExpiresUnixMs == t0 + 25_000)
            #expect(try await store.authenticate(id: created.id, idleSeconds: 10, touchEverySeconds: 0, nowUnixMs: t0 + 9_000) != nil)
            let touched = try #require(try await store.authenticate(id: created.id, idleSeconds: 10, touchEverySeconds: 0, nowUnixMs: t0 + 18_000))
            #expect(touched.idleExpiresUnixMs == t0 + 25_000, "extended, but not past the absolute expiry")
            #expect(try await store.authenticate(id: created.id, idleSeconds: 10, touchEverySeconds: 0, nowUnixMs: t0 + 25_000) == nil)
            #expect(try await store.authenticate(id: created.id, idleSeconds: 10, nowUnixMs: t0 + 1) == nil, "an expired session is deleted")
            // Malformed or unknown ids are not looked up; huge settings saturate instead of trapping.
            #expect(try await store.authenticate(id: "x'; DROP TABLE ui_sessions; --", idleSeconds: 10) == nil)
            #expect(try await store.authenticate(id: String(repeating: "a", count: 64), idleSeconds: 10) == nil)
            #expect(try await store.create(key: Self.key, idleSeconds: .max, absoluteSeconds: .max, nowUnixMs: .max - 1) != nil)
            #expect(try await store.create(key: "not-a-key", idleSeconds: 10, absoluteSeconds: 10) == nil)
        }
    }

    @Test("sign-in attempts are limited per client and in total: 429 with Retry-After, the key not even checked")
    func signInRateLimit() async throws {
        try await withBackend(configure: { $0.signInPerClientPerMinute = 3; $0.signInPerMinute = 5; $0.trustProxy = true }) { client, _ in
            func attempt(_ ip: String, key: String = "wrong-key-123") async throws -> (status: HTTPResponse.Status, headers: HTTPFields, body: String) {
                let form = try await client.loginForm()
                return try await client.postLogin("api_key=\(key)&csrf_token=\(form.token)", cookie: form.cookie, headers: [HTTPField.Name("X-Forwarded-For")!: "203.0.113.9, \(ip)"])
            }
            for _ in 0..<3 { #expect(try await attempt("198.51.100.1").status == .unauthorized) }
            let limited = try await attempt("198.51.100.1", key: Self.key)
            #expect(limited.status == .tooManyRequests && limited.body.contains("Too many sign-in attempts"))
            let retry = try #require(limited.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...60).contains(retry))
            #expect(setCookieField("evalforge_session", in: limited.headers) == nil)
            // Another client still may, until the total is used up.
            #expect(try await attempt("198.51.100.2").status == .unauthorized)
            #expect(try await attempt("198.51.100.2", key: Self.key).status == .seeOther)
            #expect(try await attempt("198.51.100.3", key: Self.key).status == .tooManyRequests)
        }
        // Without a trusted proxy, X-Forwarded-For is the client's word: ignored; over real HTTP the
        // peer address (127.0.0.1) is the one bucket.
        try await withBackend(.live, configure: { $0.signInPerClientPerMinute = 2; $0.signInPerMinute = 100 }) { client, _ in
            var statuses: [HTTPResponse.Status] = []
            for i in 0..<3 {
                let form = try await client.loginForm()
                statuses.append(try await client.postLogin("api_key=wrong-key-123&csrf_token=\(form.token)", cookie: form.cookie, headers: [HTTPField.Name("X-Forwarded-For")!: "192.0.2.\(i)"]).status)
            }
            #expect(statuses == [.unauthorized, .unauthorized, .tooManyRequests])
        }
    }
}
