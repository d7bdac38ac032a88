import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The server-rendered web UI: sign-in (stores the API key in the HttpOnly `evalforge_key` cookie,
/// which `APIKeyMiddleware` also accepts, so the UI's export links reach /api), dashboard, traces,
/// trace detail, sessions, users, experiments (runs, comparisons). Pages read the store and the
/// evaluation service directly, through the same code as the API.
enum WebUI {
    static func addRoutes(to router: Router<BackendRequestContext>, services: BackendServices) {
        let auth = UIAuth(projects: services.projects)
        router.get("/ui/app.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "public, max-age=300", .xContentTypeOptions: "nosniff"],
                     body: .init(byteBuffer: ByteBuffer(string: Assets.js)))
        }
        router.get("/login") { request, _ in
            let next = UIAuth.safeNext(request.uri.queryParameters.get("next"))
            return Layout.response(LoginPage.render(next: next, error: nil))
        }
        router.post("/login") { request, context in try await auth.login(request, context: context) }
        router.post("/logout") { _, _ in
            Response(status: .seeOther, headers: [.location: "/login", .setCookie: "\(UIAuth.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"])
        }

        let pages = router.group().add(middleware: auth).add(middleware: ScopeMiddleware())
        let store = services.store
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
        SettingsPage.addRoutes(to: pages, projects: services.projects)
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

/// Sends requests without a valid key to the sign-in page and puts the project on the context.
struct UIAuth: RouterMiddleware {
    typealias Context = BackendRequestContext
    static let cookie = "evalforge_key"
    let projects: ProjectStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let key = APIKeyMiddleware.key(from: request), let found = try await projects.authenticateKey(key) {
            var context = context
            context.project = found.project
            context.access = Access(principal: .key(id: found.keyID), scopes: found.scopes)
            return try await next(request, context)
        }
        let target = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        return Response(status: .seeOther, headers: [.location: "/login" + URLQuery.string([("next", target)])])
    }

    func login(_ request: Request, context: Context) async throws -> Response {
        let body = try await request.body.collect(upTo: 16 * 1024)
        let text = String(buffer: body)
        var form: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if kv.count == 2 { form[kv[0]] = kv[1] }
        }
        let next = Self.safeNext(form["next"])
        let key = (form["api_key"] ?? "").trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, try await projects.authenticate(key: key) != nil else {
            return Layout.response(LoginPage.render(next: next, error: key.isEmpty ? "Enter an API key." : "That key is not valid for any project."), status: .unauthorized)
        }
        let cookie = "\(Self.cookie)=\(URLQuery.component(key)); Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
        return Response(status: .seeOther, headers: [.location: next, .setCookie: cookie])
    }

    /// Only same-site paths: "/…" but not "//…" (another host) and no backslashes or controls.
    static func safeNext(_ s: String?) -> String {
        guard let s, s.hasPrefix("/"), !s.hasPrefix("//"), !s.contains("\\"), s.utf8.count < 2048,
              !s.unicodeScalars.contains(where: { $0.value < 0x20 }) else { return "/" }
        return s
    }
}

enum LoginPage {
    static func render(next: String, error: String?) -> HTML {
        let content: HTML = """
        <form class="card login" method="post" action="/login">
          <span class="brand"><span class="logo"></span>EvalForge</span>
          <h1>Sign in</h1>
          <p>Use a project API key. It is kept in an HttpOnly cookie on this browser.</p>
          \(error.map { e -> HTML in "<div class=\"callout error\" role=\"alert\">\(e)</div>" } ?? .empty)
          <input type="hidden" name="next" value="\(next)">
          <input type="password" name="api_key" id="api_key" placeholder="API key" autocomplete="current-password" autofocus required>
          <button class="btn" type="submit">Sign in</button>
        </form>
        """
        return Layout.page(title: "Sign in", section: .none, project: nil, content)
    }
}
