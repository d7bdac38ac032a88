import EvalForgeCrypto
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The web UI session a request came with (docs/security.md, "Web UI sessions").
public struct UISession: Sendable {
    /// The session id from the cookie (kept in memory for logout; only its hash is stored).
    let id: String
    public let record: UISessionRecord
    /// This session's CSRF token: HMAC-SHA256 of the session id, so it needs no storage and is
    /// worthless without the HttpOnly cookie. Forms carry it as `csrf_token`, API calls made with
    /// the cookie as the `X-CSRF-Token` header.
    public let csrfToken: String
    /// The API key the session was created from: its project (and scopes) apply.
    public var keyID: String { record.keyID }
    /// Who the session acts as: its key's scopes; in the audit log `session:` and a prefix of the
    /// id's SHA-256 (the id itself is a credential and is never written anywhere).
    var access: Access { Access(principal: .session(id: String(Digest.sha256Hex(id).prefix(16))), scopes: record.scopes) }
}

/// Settings and helpers of web UI sessions shared by the sign-in routes and `SessionMiddleware`:
/// the cookie (HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS), the CSRF token, expiry.
public struct UISessions: Sendable {
    static let cookieName = "evalforge_session"
    /// The cookie of older versions that held the raw API key; cleared at sign-in, never read.
    static let legacyKeyCookie = "evalforge_key"
    /// The sign-in form's own CSRF cookie (double submit: there is no session yet to tie it to).
    static let loginCookieName = "evalforge_login"
    static let csrfField = "csrf_token"
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    public let store: SessionStore
    let idleSeconds: Int64
    let absoluteSeconds: Int64
    let trustProxy: Bool
    let secureCookies: Bool
    let signInLimiter: SignInRateLimiter
    /// The same limits across every backend sharing the metadata database.
    let sharedSignInLimit: SharedSignInLimit

    init(store: SessionStore, configuration c: BackendConfiguration) {
        self.store = store
        idleSeconds = Int64(max(1, c.sessionIdleSeconds))
        absoluteSeconds = Int64(max(1, c.sessionMaxSeconds))
        trustProxy = c.trustProxy
        secureCookies = c.secureCookies
        signInLimiter = SignInRateLimiter(perClientPerMinute: c.signInPerClientPerMinute, perMinute: c.signInPerMinute)
        sharedSignInLimit = SharedSignInLimit(store: RateLimitStore(db: store.db), perClientPerMinute: c.signInPerClientPerMinute, perMinute: c.signInPerMinute)
    }

    static func csrfToken(sessionID: String) -> String {
        Digest.hex(Digest.hmacSHA256(key: Array(sessionID.utf8), message: Array("evalforge-csrf-v1".utf8)))
    }

    /// The live session of the request's cookie, or nil (none, malformed, expired, signed out,
    /// its key revoked). Idle expiry is extended by use.
    func session(from request: Request) async throws -> UISession? {
        guard let id = Self.cookie(Self.cookieName, from: request), SessionStore.isWellFormed(id) else { return nil }
        // Rewrite the row at most every minute, or every quarter of a short idle time (tests).
        guard let record = try await store.authenticate(id: id, idleSeconds: idleSeconds, touchEverySeconds: min(60, idleSeconds / 4)) else { return nil }
        return UISession(id: id, record: record, csrfToken: Self.csrfToken(sessionID: id))
    }

    /// The value of the cookie `name` (the first, trimmed), if any.
    static func cookie(_ name: String, from request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces)
                if kv.hasPrefix(name + "=") {
                    let v = String(kv.dropFirst(name.count + 1))
                    return v.isEmpty ? nil : v
                }
            }
        }
        return nil
    }

    /// Whether the browser reached us over HTTPS: always when the operator says so
    /// (`--secure-cookies`), or when a trusted proxy (`--trust-proxy`) says `X-Forwarded-Proto: https`.
    /// The backend's own listener is plain HTTP.
    func isHTTPS(_ request: Request) -> Bool {
        if secureCookies { return true }
        guard trustProxy, let proto = request.headers[Self.forwardedProto] else { return false }
        // A chain of proxies lists one value each; the first is the client's side.
        return proto.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } == "https"
    }

    func setCookie(_ name: String, value: String, path: String = "/", maxAge: Int64, request: Request) -> String {
        "\(name)=\(value); Path=\(path); HttpOnly; SameSite=Strict; Max-Age=\(max(0, maxAge))" + (isHTTPS(request) ? "; Secure" : "")
    }

    func sessionCookie(id: String, request: Request) -> String {
        setCookie(Self.cookieName, value: id, maxAge: absoluteSeconds, request: request)
    }

    func clearSessionCookie(_ request: Request) -> String { setCookie(Self.cookieName, value: "", maxAge: 0, request: request) }

    /// The client the sign-in limit counts: the peer address, or behind a trusted proxy the
    /// address that proxy appended to `X-Forwarded-For` (the last one: earlier ones are whatever
    /// the client sent).
    func clientAddress(_ request: Request, context: BackendRequestContext) -> String {
        if trustProxy, let xff = request.headers[values: Self.forwardedFor].last,
           let last = xff.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty, last.utf8.count <= 64 {
            return last
        }
        return context.remoteAddress?.ipAddress ?? "unknown"
    }
}

/// Authenticates web UI sessions; one concern: the session cookie and its CSRF token. Runs before
/// `APIKeyMiddleware` and sets the same context field (`project`), plus `session`.
///
/// - `.ui` (pages, sign-out): a live session signs the request in; unsafe methods (POST…) need the
///   form field `csrf_token` (or the `X-CSRF-Token` header) equal to the session's token, else 403.
///   Without a live session the request goes on unauthenticated (the pages redirect to sign-in).
/// - `.api` (`/api`): a request carrying an API key is left to `APIKeyMiddleware`. A session cookie
///   alone is accepted only with the `X-CSRF-Token` header: missing or wrong → 403; an expired or
///   signed-out session → 401.
struct SessionMiddleware: RouterMiddleware {
    typealias Context = BackendRequestContext
    enum Mode { case ui, api }

    let sessions: UISessions
    let mode: Mode
    /// Largest form body read to find the CSRF token.
    static let maxFormBytes = 64 * 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch mode {
        case .api:
            if request.headers[.authorization] != nil || request.headers[APIKeyMiddleware.apiKeyHeader] != nil { return try await next(request, context) }
            guard UISessions.cookie(UISessions.cookieName, from: request) != nil else { return try await next(request, context) }
            guard let session = try await sessions.session(from: request) else {
                throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "the session cookie is expired or signed out: sign in again, or send an API key (Authorization: Bearer <key>)")
            }
            guard let token = request.headers[UISessions.csrfHeader] else {
                throw HTTPError(.forbidden, message: "missing CSRF token: a session cookie is accepted on /api only with the X-CSRF-Token header (the csrf-token meta tag of a UI page); scripts should send an API key instead")
            }
            guard Digest.constantTimeEqual(Array(token.utf8), Array(session.csrfToken.utf8)) else {
                throw HTTPError(.forbidden, message: "wrong CSRF token: X-CSRF-Token does not match this session")
            }
            var context = context
            context.project = session.record.project
            context.session = session
            context.access = session.access
            return try await next(request, context)
        case .ui:
            guard let session = try await sessions.session(from: request) else { return try await next(request, context) }
            var request = request
            if ![.get, .head, .options].contains(request.method) {
                var token = request.headers[UISessions.csrfHeader]
                if token == nil {
                    let body = try await request.body.collect(upTo: Self.maxFormBytes)
                    request.body = .init(buffer: body)
                    token = FormBody.parse(String(buffer: body))[UISessions.csrfField]
                }
                guard let token, !token.isEmpty else {
                    return WebUI.errorPage(HTTPError(.forbidden, message: "missing CSRF token: the form did not carry csrf_token; reload the page and submit it again"), project: session.record.project.name)
                }
                guard Digest.constantTimeEqual(Array(token.utf8), Array(session.csrfToken.utf8)) else {
                    return WebUI.errorPage(HTTPError(.forbidden, message: "wrong CSRF token: the form's csrf_token does not match this session; reload the page and submit it again"), project: session.record.project.name)
                }
            }
            var context = context
            context.project = session.record.project
            context.session = session
            context.access = session.access
            let r = request, c = context
            return try await UIRequest.$csrfToken.withValue(session.csrfToken) { try await next(r, c) }
        }
    }
}

/// Sign-in attempts per client address and in total, per one-minute window; over either limit the
/// attempt is refused with 429 and Retry-After before the key is looked at. Per process: the first
/// gate, with no I/O, so a flood costs each backend at most `perMinute` database writes a minute;
/// `SharedSignInLimit` then holds the same limits across backends. Only admitted attempts are
/// counted, so at most `perMinute` addresses are tracked per window.
final class SignInRateLimiter: Sendable {
    let perClientPerMinute: Int
    let perMinute: Int
    private struct State {
        var windowStart: ContinuousClock.Instant
        var total = 0
        var perClient: [String: Int] = [:]
    }
    private let state: Mutex<State>

    init(perClientPerMinute: Int, perMinute: Int) {
        self.perClientPerMinute = max(1, perClientPerMinute)
        self.perMinute = max(1, perMinute)
        state = Mutex(State(windowStart: .now))
    }

    /// nil when the attempt is admitted (and counted), else the seconds until the window ends.
    func admit(client: String, now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { s in
            if now - s.windowStart >= .seconds(60) {
                s = State(windowStart: now)
            }
            let used = s.perClient[client, default: 0]
            guard used < perClientPerMinute, s.total < perMinute else {
                let left = (s.windowStart + .seconds(60)) - now
                return max(1, Int(left.components.seconds) + (left.components.attoseconds > 0 ? 1 : 0))
            }
            s.perClient[client] = used + 1
            s.total += 1
            return nil
        }
    }
}

/// The sign-in limits across backends: an attempt the process's own `SignInRateLimiter` admitted is
/// counted in the shared rate-limit counters (`RateLimitStore`, clock-minute windows, subjects
/// `signin:*` and `signin:<SHA-256 of the client address>`), so N backends together admit at most
/// the configured limits, not N times them (docs/scaling.md, "Caches with several backends"). When
/// the metadata database cannot count, the process's own limit stands (the key lookup that follows
/// needs that database too).
struct SharedSignInLimit: Sendable {
    let store: RateLimitStore
    let perClientPerMinute: Int64
    let perMinute: Int64

    init(store: RateLimitStore, perClientPerMinute: Int, perMinute: Int) {
        self.store = store
        self.perClientPerMinute = Int64(max(1, perClientPerMinute))
        self.perMinute = Int64(max(1, perMinute))
    }

    /// nil when the attempt is admitted (and counted), else the seconds until the window ends.
    func admit(client: String, nowUnix: Int64 = Int64(Date().timeIntervalSince1970)) async -> Int? {
        let start = nowUnix - nowUnix % 60
        let wait = Int(max(1, min(60, start + 60 - nowUnix)))
        let subject = "signin:" + String(Digest.sha256Hex(client).prefix(32))
        do {
            let total = try await store.lease(.init(subject: "signin:*", dimension: "signin", kind: "minute", start: start), want: 1, limit: perMinute, expireBefore: start - 3_600)
            guard total.granted == 1 else { return wait }
            let own = try await store.lease(.init(subject: subject, dimension: "signin", kind: "minute", start: start), want: 1, limit: perClientPerMinute)
            return own.granted == 1 ? nil : wait
        } catch {
            return nil
        }
    }
}

/// The CSRF token of the session rendering the current page (set by `SessionMiddleware` around
/// the page's handler), so every form and the page's meta tag carry it without threading it
/// through each page.
enum UIRequest {
    @TaskLocal static var csrfToken: String?
}

/// `application/x-www-form-urlencoded` bodies.
enum FormBody {
    static func parse(_ text: String) -> [String: String] {
        var form: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if kv.count == 2, form[kv[0]] == nil { form[kv[0]] = kv[1] }
        }
        return form
    }
}
