import EvalForgeCore
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The project's settings page (`admin` scope, RoutePolicy): its API keys (create — the secret is
/// shown once, on the answer page — and revoke) and its recent audit entries. Changes go through
/// `ProjectStore`, as the admin API's do, with the signed-in principal as the audit actor.
struct SettingsPage: Sendable {
    let projects: ProjectStore
    /// The rate limits: the project's tier and this minute's and day's usage are shown (read-only:
    /// only the instance admin sets tiers).
    var limiter: RateLimiter? = nil
    /// The server's `--retention-days` (0 = forever), shown for projects that follow it.
    var defaultRetentionDays = 0

    static func addRoutes(to pages: RouterGroup<BackendRequestContext>, projects: ProjectStore, limiter: RateLimiter? = nil, defaultRetentionDays: Int = 0) {
        let page = SettingsPage(projects: projects, limiter: limiter, defaultRetentionDays: defaultRetentionDays)
        pages.post("/settings/retention") { request, context in try await page.setRetention(request, context: context) }
        pages.get("/settings") { _, context in try await page.render(context: context, created: nil, error: nil) }
        pages.post("/settings/keys") { request, context in try await page.createKey(request, context: context) }
        pages.post("/settings/keys/:id/revoke") { request, context in try await page.revokeKey(request, context: context) }
    }

    func render(context: BackendRequestContext, created: (key: String, record: APIKeyRecord)?, error: String?, status: HTTPResponse.Status = .ok) async throws -> Response {
        try await WebUI.guarded(context) {
            let project = try context.requireProject()
            let keys = try await storeCall { try await projects.keys(projectID: project.id) }
            let audit = try await storeCall { try await projects.auditLog(projectID: project.id, limit: 20) }
            var limits: HTML = .empty
            if let limiter { limits = Self.limitsCard(try await storeCall { try await RateLimitRoutes.usage(project: project.id, limiter: limiter, projects: projects) }) }
            let current = try await storeCall { try await projects.project(id: project.id) } ?? project
            let retention = Self.retentionCard(current, defaultDays: defaultRetentionDays)
            return Layout.response(Layout.page(title: "Settings", section: .settings, project: project.name, Self.body(project: project, keys: keys, audit: audit, created: created, error: error, limits: limits, retention: retention)), status: status)
        }
    }

    func createKey(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try Self.requireSameOrigin(request)
        let project = try context.requireProject()
        let form = try await Self.form(request)
        do {
            let scopes = try Scope.parse(form.all("scope"))
            var seconds: Int64?
            if let days = form.string("expires_in_days") {
                guard let d = Int(days), (1...3660).contains(d) else { throw AccessError.invalid("expiry: expected 1 to 3660 days, got '\(days.prefix(32))'") }
                seconds = Int64(d) * 86_400
            }
            let created = try await projects.createKey(projectID: project.id, name: form.string("name") ?? "key", scopes: scopes, expiresInSeconds: seconds, actor: context.access?.actor ?? "ui")
            return try await render(context: context, created: created, error: nil, status: .created)
        } catch let e as AccessError {
            return try await render(context: context, created: nil, error: e.message, status: e.isNotFound ? .notFound : .badRequest)
        }
    }

    func revokeKey(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try Self.requireSameOrigin(request)
        let project = try context.requireProject()
        let id = try IDFormat.pathValue(context, "id")
        do {
            try await projects.revokeKey(id: id, projectID: project.id, actor: context.access?.actor ?? "ui")
        } catch let e as AccessError {
            return try await render(context: context, created: nil, error: e.message, status: .notFound)
        }
        return Response(status: .seeOther, headers: [.location: "/settings"])
    }

    /// The urlencoded form body (at most 16 KiB).
    static func form(_ request: Request) async throws -> QueryParameters {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: 16 * 1024) } catch { throw HTTPError(.contentTooLarge, message: "form larger than 16 KiB") }
        return try QueryParameters(QueryParameters.pairs(String(buffer: body)), allowed: ["name", "scope", "expires_in_days", "retention_days"])
    }

    /// Refuses a cross-site form post: a browser's `Sec-Fetch-Site` must be same-origin (or none: typed
    /// or bookmarked), and an `Origin` must name this host. (The session cookie is SameSite=Strict too.)
    static func requireSameOrigin(_ request: Request) throws {
        if let name = HTTPField.Name("Sec-Fetch-Site"), let site = request.headers[name], site != "same-origin", site != "none" {
            throw HTTPError(.forbidden, message: "cross-site form post refused (Sec-Fetch-Site: \(site.prefix(32)))")
        }
        if let origin = request.headers[.origin], origin != "null" {
            let host = request.head.authority ?? ""
            guard let u = URL(string: origin), let h = u.host else { throw HTTPError(.forbidden, message: "cross-site form post refused (Origin: \(origin.prefix(64)))") }
            let originAuthority = u.port.map { "\(h):\($0)" } ?? h
            guard originAuthority == host || h == host else {
                throw HTTPError(.forbidden, message: "cross-site form post refused (Origin \(origin.prefix(64)) is not \(host.prefix(64)))")
            }
        }
    }

    /// The rate-limit card: tier, and per dimension the limits and what this minute and today used.
    static func limitsCard(_ u: RateLimitRoutes.Usage) -> HTML {
        func n(_ v: Double, _ usd: Bool) -> String { usd ? String(format: "$%.2f", v) : String(v.clampedInteger(Int64.self) ?? 0) }
        let rows = RateLimitDimension.allCases.compactMap { d -> HTML? in
            guard let f = u.limits[d.fileKey] else { return nil }
            let usd = d == .judgeCost
            return "<tr data-dimension=\"\(d.fileKey)\"><td>\(d.fileKey.replacingOccurrences(of: "_", with: " "))</td><td class=\"num\">\(n(f.usedMinute, usd)) / \(n(f.perMinute, usd)) (+\(n(f.burst, usd)) burst)</td><td class=\"num\">\(n(f.usedDay, usd)) / \(n(f.perDay, usd))</td></tr>"
        }
        let state = u.enabled ? "" : " (rate limits are off on this backend)"
        return """
        <div class="card" id="rate-limits" style="margin-bottom:16px"><div class="pad"><strong>Rate limits · tier \(u.tier)</strong>\(state)
          <p class="sub">Tier \(u.tierSource == "project" ? "set by the instance admin" : "is the backend's default"); only the instance admin changes it (evalforge admin projects set-tier). Used: units reserved by the backend replicas in the current UTC minute and day.</p></div>
          <div class="table-wrap"><table class="data">
          <thead><tr><th>Limit</th><th>This minute</th><th>Today</th></tr></thead>
          <tbody>\(rows)</tbody></table></div></div>
        """
    }

    static func body(project: Project, keys: [APIKeyRecord], audit: [AuditEntry], created: (key: String, record: APIKeyRecord)?, error: String?, limits: HTML = .empty, retention: HTML = .empty) -> HTML {
        let rows = keys.map { k -> HTML in
            let status = k.status
            let action: HTML = status == "active"
                ? "<form method=\"post\" action=\"/settings/keys/\(k.id)/revoke\" style=\"margin:0\">\(Layout.csrfField)<button class=\"btn-ghost\" type=\"submit\">Revoke</button></form>"
                : .empty
            return """
            <tr data-key="\(k.id)">
              <td><span class="name">\(k.name)</span><div class="sub mono">\(k.id)</div></td>
              <td class="mono">\(k.prefix)</td>
              <td>\(k.scopes.map(\.rawValue).joined(separator: ", "))</td>
              <td>\(status)</td>
              <td class="nowrap">\(Fmt.time(k.createdUnixNanos))</td>
              <td class="nowrap">\(k.lastUsedUnixNanos.map { Fmt.time($0) } ?? "—")</td>
              <td class="nowrap">\(k.expiresUnixNanos.map { Fmt.time($0) } ?? "never")</td>
              <td>\(action)</td>
            </tr>
            """
        }
        let createdBox: HTML = created.map { c in
            """
            <div class="card pad" id="new-key" style="margin-bottom:16px">
              <strong>New key “\(c.record.name)” (\(c.record.scopes.map(\.rawValue).joined(separator: ", ")))</strong>
              <p class="sub">Copy it now: it is shown only this once.</p>
              <pre class="mono">\(c.key)</pre>
            </div>
            """
        } ?? .empty
        let errorBox: HTML = error.map { "<div class=\"card pad err-text\" id=\"settings-error\" style=\"margin-bottom:16px\">\($0)</div>" } ?? .empty
        let scopeBoxes = Scope.allCases.map { s -> HTML in "<label><input type=\"checkbox\" name=\"scope\" value=\"\(s.rawValue)\"\(HTML(raw: s == .ingest ? " checked" : ""))> \(s.rawValue)</label> " }
        let auditRows = audit.map { e -> HTML in
            "<tr><td class=\"nowrap\">\(Fmt.time(e.atUnixNanos))</td><td class=\"mono\">\(e.actor)</td><td>\(e.action)</td><td class=\"mono\">\(e.target)</td><td>\(e.detail)</td></tr>"
        }
        return """
        <h1>Settings · \(project.name)</h1>
        \(errorBox)\(createdBox)\(limits)
        <div class="card" style="margin-bottom:16px"><div class="table-wrap"><table class="data" id="keys">
          <thead><tr><th>Key</th><th>Prefix</th><th>Scopes</th><th>Status</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead>
          <tbody>\(rows)</tbody></table></div></div>
        <form method="post" action="/settings/keys" class="card pad" id="create-key" style="margin-bottom:16px">\(Layout.csrfField)
          <strong>Create a key</strong>
          <p><label>Name <input name="name" maxlength="\(ProjectStore.maxNameBytes)" required></label></p>
          <p>Scopes: \(scopeBoxes)</p>
          <p><label>Expires in days (blank: never) <input name="expires_in_days" type="number" min="1" max="3660"></label></p>
          <button type="submit">Create key</button>
        </form>
        \(retention)
        <div class="card"><div class="table-wrap"><table class="data" id="audit">
          <thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th><th>Detail</th></tr></thead>
          <tbody>\(auditRows)</tbody></table></div></div>
        """
    }
}
