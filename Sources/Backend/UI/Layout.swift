import HTTPTypes
import Hummingbird
import NIOCore

/// The page frame: head with the inlined stylesheet, top navigation, content, script.
enum Layout {
    enum Section: String { case dashboard, traces, sessions, users, experiments, settings, none }

    static func page(title: String, section: Section, project: String?, _ content: HTML) -> HTML {
        let nav: [(Section, String, String)] = [(.dashboard, "/", "Dashboard"), (.traces, "/traces", "Traces"), (.sessions, "/sessions", "Sessions"), (.users, "/users", "Users"), (.experiments, "/experiments", "Experiments"), (.settings, "/settings", "Settings")]
        let links = nav.map { s, href, label -> HTML in "<a href=\"\(href)\"\(HTML(raw: s == section ? " class=\"active\" aria-current=\"page\"" : ""))>\(label)</a>" }
        let right: HTML = project.map { p in
            """
            <span title="Project">\(p)</span>
            <button type="button" class="btn-ghost" id="theme-toggle" title="Switch light / dark">◐ Theme</button>
            <form method="post" action="/logout" style="margin:0">\(csrfField)<button class="btn-ghost" type="submit">Sign out</button></form>
            """
        } ?? .empty
        return """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · EvalForge</title>
        <link rel="icon" href="data:,">
        \(UIRequest.csrfToken.map { t -> HTML in "<meta name=\"csrf-token\" content=\"\(t)\">" } ?? .empty)
        <style>\(HTML(raw: Assets.css))</style>
        <script src="/ui/app.js"></script>
        </head>
        <body>
        \(HTML.when(project != nil) { """
        <header class="topbar">
          <a class="brand" href="/"><span class="logo"></span>EvalForge</a>
          <nav class="nav">\(links)</nav>
          <div class="right">\(right)</div>
        </header>
        """ })
        <main>
        \(content)
        </main>
        </body>
        </html>
        """
    }

    /// The hidden CSRF field every state-changing form (method="post") of a signed-in page carries;
    /// `SessionMiddleware` checks it.
    static var csrfField: HTML {
        UIRequest.csrfToken.map { t -> HTML in "<input type=\"hidden\" name=\"csrf_token\" value=\"\(t)\">" } ?? .empty
    }

    static func response(_ html: HTML, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [
            .contentType: "text/html; charset=utf-8",
            .cacheControl: "no-store",
            .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            .xContentTypeOptions: "nosniff",
        ]
        if let referrer = HTTPField.Name("Referrer-Policy") { headers[referrer] = "same-origin" }
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html.raw)))
    }

    static func empty(_ title: String, _ hint: String) -> HTML {
        "<div class=\"empty\"><strong>\(title)</strong>\(hint)</div>"
    }

    static func statusBadge(_ isError: Bool) -> HTML {
        isError ? "<span class=\"badge error\">Error</span>" : "<span class=\"badge ok\">OK</span>"
    }
}
