import EvalForgeCrypto
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The server-rendered web UI: sign-in (a server-side session; the HttpOnly cookie holds only its
/// id: `SessionMiddleware`, docs/security.md), dashboard, traces, trace detail, sessions, users,
/// experiments (runs, comparisons), and the export links under /ui/export. Pages read the store
/// and the evaluation service directly, through the same code as the API.
enum WebUI {
    static func addRoutes(to router: Router<BackendRequestContext>, services: BackendServices) {
        let sessions = services.sessions
        let auth = UIAuth(projects: services.projects, sessions: sessions)
        router.get("/ui/app.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "public, max-age=300", .xContentTypeOptions: "nosniff"],
                     body: .init(byteBuffer: ByteBuffer(string: Assets.js)))
        }
        router.get("/login") { request, context in auth.loginPage(request, context: context) }
        router.post("/login") { request, context in try await auth.login(request, context: context) }
        // Sign-out checks the session's CSRF token (SessionMiddleware) and deletes the session.
        router.group().add(middleware: SessionMiddleware(sessions: sessions, mode: .ui)).post("/logout") { request, context in
            try await auth.logout(request, context: context)
        }

        let pages = router.group().add(middleware: SessionMiddleware(sessions: sessions, mode: .ui)).add(middleware: auth).add(middleware: ScopeMiddleware())
        let store = services.store
        // The pages' export links: the API's export with the session (the API itself wants an
        // X-CSRF-Token header with a session cookie, which a link cannot send).
        ExportController(store: store).addRoutes(to: pages.group("ui/export"))
        let optionsCache = TracesPage.OptionsCache()
        pages.get("/") { request, context in try await DashboardPage(store: store, optionsCache: optionsCache).render(request, context: context) }
        pages.get("/traces") { request, context in try await TracesPage(store: store, optionsCache: optionsCache).render(request, context: context) }
        pages.get("/traces/:trace_id") { request, context in try await TraceDetailPage(store: store).render(request, context: context) }
        pages.get("/sessions") { request, context in try await SessionsPage(store: store).render(request, context: context) }
        pages.get("/sessions/:session_id") { request, context in try await SessionDetailPage(store: store).render(request, context: context) }
        pages.get("/users") { request, context in try await UsersPage(store: store).render(request, context: context) }
        let evaluation = services.evaluation
        pages.get("/experiments") { request, context in try await ExperimentsPage(evaluation: evaluation).render(request, context: context) }
        pages.get("/experiments/compare") { request, context in try await RunComparePage(evaluation: evaluation).render(request, context: context) }
        pages.get("/experiments/runs/:run_id") { request, context in try await RunPage(evaluation: evaluation).render(request, context: context) }
        SettingsPage.addRoutes(to: pages, projects: services.projects, limiter: services.rateLimiter, defaultRetentionDays: services.configuration.defaultRetentionDays)
    }

    /// An error page in the frame, for bad filters (400) and unknown ids (404).
    static func errorPage(_ error: HTTPError, project: String?) -> Response {
        let status = error.status
        let body: HTML = """
        <div class="card pad" style="max-width:640px">
          <h1>\(status.code == 404 ? "Not found" : "Something is off")</h1>
          <p class="sub" style="color:var(--muted)">\(error.body ?? status.reasonPhrase)</p>
          <p><a href="/">Dashboard</a> · <a href="/traces">All traces</a></p>
        </div>
        """
        return Layout.response(Layout.page(title: status.reasonPhrase, section: .none, project: project, body), status: status)
    }

    /// Runs a page, rendering `HTTPError`s (bad filters, unknown ids) as pages.
    static func guarded(_ context: BackendRequestContext, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let e as HTTPError where e.status.code < 500 {
            return errorPage(e, project: context.project?.name)
        }
    }
}

/// Sends requests without a live session to the sign-in page; signs in (a key → a session) and out.
struct UIAuth: RouterMiddleware {
    typealias Context = BackendRequestContext
    let projects: ProjectStore
    let sessions: UISessions

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if context.session != nil { return try await next(request, context) }
        // A key in a header (scripts, tests; never sent by a browser on its own, so no CSRF risk).
        if let key = APIKeyMiddleware.key(from: request), let found = try await projects.authenticateKey(key) {
            var context = context
            context.project = found.project
            context.access = Access(principal: .key(id: found.keyID), scopes: found.scopes)
            return try await next(request, context)
        }
        let target = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        return Response(status: .seeOther, headers: [.location: "/login" + URLQuery.string([("next", target)])])
    }

    /// The sign-in form, with its CSRF token in a short-lived HttpOnly cookie and a hidden field
    /// (double submit: there is no session yet to tie the token to).
    func loginPage(_ request: Request, context: Context) -> Response {
        let next = Self.safeNext(request.uri.queryParameters.get("next"))
        let (token, cookie) = loginToken(request)
        return Layout.response(LoginPage.render(next: next, csrfToken: token, error: nil), headers: cookie.map { [.setCookie: $0] } ?? [:])
    }

    /// The sign-in form's token: the one in the request's cookie, or a new one with its cookie.
    private func loginToken(_ request: Request) -> (token: String, setCookie: String?) {
        if let t = UISessions.cookie(UISessions.loginCookieName, from: request), SessionStore.isWellFormed(t) { return (t, nil) }
        let t = Digest.hex(Digest.randomBytes(SessionStore.idBytes))
        return (t, sessions.setCookie(UISessions.loginCookieName, value: t, path: "/login", maxAge: 3600, request: request))
    }

    func login(_ request: Request, context: Context) async throws -> Response {
        let client = sessions.clientAddress(request, context: context)
        var refusal = sessions.signInLimiter.admit(client: client)
        if refusal == nil { refusal = await sessions.sharedSignInLimit.admit(client: client) }
        if let wait = refusal {
            let (token, cookie) = loginToken(request)
            var headers: HTTPFields = [.retryAfter: String(wait)]
            if let cookie { headers[.setCookie] = cookie }
            return Layout.response(LoginPage.render(next: "/", csrfToken: token, error: "Too many sign-in attempts: try again in \(wait) s."), status: .tooManyRequests, headers: headers)
        }
        let body = try await request.body.collect(upTo: 16 * 1024)
        let form = FormBody.parse(String(buffer: body))
        let next = Self.safeNext(form["next"])
        let (token, newCookie) = loginToken(request)
        func page(_ status: HTTPResponse.Status, _ error: String) -> Response {
            Layout.response(LoginPage.render(next: next, csrfToken: token, error: error), status: status, headers: newCookie.map { [.setCookie: $0] } ?? [:])
        }
        guard let sent = form[UISessions.csrfField], !sent.isEmpty else {
            return page(.forbidden, "Missing CSRF token: reload the sign-in page and try again.")
        }
        guard newCookie == nil else {
            return page(.forbidden, "The sign-in form's cookie is missing (the form is over an hour old, or cookies are blocked): sign in again on this page.")
        }
        guard Digest.constantTimeEqual(Array(sent.utf8), Array(token.utf8)) else {
            return page(.forbidden, "Wrong CSRF token: reload the sign-in page and try again.")
        }
        let key = (form["api_key"] ?? "").trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty else { return page(.unauthorized, "Enter an API key.") }
        guard try await projects.authenticate(key: key) != nil,
              let created = try await sessions.store.create(key: key, idleSeconds: sessions.idleSeconds, absoluteSeconds: sessions.absoluteSeconds) else {
            return page(.unauthorized, "That key is not valid for any project.")
        }
        var headers: HTTPFields = [.location: next]
        headers.append(HTTPField(name: .setCookie, value: sessions.sessionCookie(id: created.id, request: request)))
        headers.append(HTTPField(name: .setCookie, value: sessions.setCookie(UISessions.loginCookieName, value: "", path: "/login", maxAge: 0, request: request)))
        // Browsers of older versions hold the raw key in this cookie: remove it.
        headers.append(HTTPField(name: .setCookie, value: sessions.setCookie(UISessions.legacyKeyCookie, value: "", maxAge: 0, request: request)))
        return Response(status: .seeOther, headers: headers)
    }

    /// Deletes the session server-side (its cookie is worthless from here on) and clears the cookie.
    func logout(_ request: Request, context: Context) async throws -> Response {
        if let session = context.session { try await sessions.store.delete(id: session.id) }
        var headers: HTTPFields = [.location: "/login"]
        headers.append(HTTPField(name: .setCookie, value: sessions.clearSessionCookie(request)))
        headers.append(HTTPField(name: .setCookie, value: sessions.setCookie(UISessions.legacyKeyCookie, value: "", maxAge: 0, request: request)))
        return Response(status: .seeOther, headers: headers)
    }

    /// Only same-site paths: "/…" but not "//…" (another host) and no backslashes or controls.
    static func safeNext(_ s: String?) -> String {
        guard let s, s.hasPrefix("/"), !s.hasPrefix("//"), !s.contains("\\"), s.utf8.count < 2048,
              !s.unicodeScalars.contains(where: { $0.value < 0x20 }) else { return "/" }
        return s
    }
}

enum LoginPage {
    static func render(next: String, csrfToken: String, error: String?) -> HTML {
        let content: HTML = """
        <form class="card login" method="post" action="/login">
          <span class="brand"><span class="logo"></span>EvalForge</span>
          <h1>Sign in</h1>
          <p>Use a project API key. It is not kept: signing in starts a session on the server, which this browser holds in an HttpOnly cookie.</p>
          \(error.map { e -> HTML in "<div class=\"callout error\" role=\"alert\">\(e)</div>" } ?? .empty)
          <input type="hidden" name="next" value="\(next)">
          <input type="hidden" name="csrf_token" value="\(csrfToken)">
          <input type="password" name="api_key" id="api_key" placeholder="API key" autocomplete="current-password" autofocus required>
          <button class="btn" type="submit">Sign in</button>
        </form>
        """
        return Layout.page(title: "Sign in", section: .none, project: nil, content)
    }
}
