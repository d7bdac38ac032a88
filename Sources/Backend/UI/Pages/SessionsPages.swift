import EvalForgeModel
import EvalForgeStore
import Foundation
import Hummingbird

/// Sessions list (filter by user, paging).
struct SessionsPage: Sendable {
    let store: any SpanStore

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await WebUI.guarded(context) {
            let project = try context.requireProject()
            let p = try QueryParameters(request, allowed: ["user_id", "cursor", "from", "to"])
            let filter = try SessionsController.sessionFilter(p, projectID: project.id)
            let page = try await storeCall { try await store.listSessions(filter, limit: 50, cursor: p.string("cursor")) }
            let rows = page.items.map { s -> HTML in
                """
                <tr>
                  <td><a class="name" href="\(URLQuery.path("/sessions/", s.sessionID))">\(s.sessionID)</a></td>
                  <td>\(s.userID.isEmpty ? HTML("–") : "<a href=\"/sessions\(URLQuery.string([("user_id", s.userID)]))\">\(s.userID)</a>")</td>
                  <td class="nowrap">\(Fmt.time(s.firstUnixNanos))</td>
                  <td class="nowrap">\(Fmt.time(s.lastUnixNanos))</td>
                  <td class="num">\(s.traceCount)</td>
                  <td class="num">\(s.llmCalls)</td>
                  <td class="num">\(s.errorCount > 0 ? HTML("<span class=\"badge error\">\(s.errorCount)</span>") : "0")</td>
                  <td class="num">\(Fmt.count(s.inputTokens.addingSaturated(s.outputTokens)))</td>
                  <td class="num">\(Fmt.cost(s.costUSD))</td>
                </tr>
                """
            }
            let user = p.string("user_id")
            let form: HTML = """
            <form class="card filters" method="get" action="/sessions"><div class="row">
              \(TracesPage.input("user_id", "User", user, placeholder: "user id"))
              <button class="btn" type="submit">Apply</button><a class="btn secondary" href="/sessions">Reset</a>
            </div></form>
            """
            let table: HTML = rows.isEmpty ? "<div class=\"card\">\(Layout.empty("No sessions yet", "Sessions group traces that carry the same session.id attribute."))</div>" : """
            <div class="card"><div class="table-wrap"><table class="data" id="sessions">
              <thead><tr><th>Session</th><th>User</th><th>Started</th><th>Last activity</th><th class="num">Traces</th><th class="num">LLM calls</th><th class="num">Errors</th><th class="num">Tokens</th><th class="num">Cost</th></tr></thead>
              <tbody>\(rows)</tbody></table></div>
              \(page.nextCursor.map { c -> HTML in "<div class=\"pager\"><a class=\"btn secondary\" href=\"/sessions\(URLQuery.string([("user_id", user ?? ""), ("cursor", c)]))\">Next page →</a></div>" } ?? .empty)
            </div>
            """
            let body: HTML = """
            <div class="page-head"><div><h1>Sessions</h1><div class="sub">Conversations: the traces that share a session id, most recent first.</div></div></div>
            \(form)\(table)
            """
            return Layout.response(Layout.page(title: "Sessions", section: .sessions, project: project.name, body))
        }
    }
}

/// One session as a conversation: each model call's new user messages and the assistant's reply.
struct SessionDetailPage: Sendable {
    let store: any SpanStore

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await WebUI.guarded(context) {
            let project = try context.requireProject()
            _ = try QueryParameters(request, allowed: [])
            let sessionID = try IDFormat.pathValue(context, "session_id")
            guard let d = try await SessionsController.load(store: store, projectID: project.id, sessionID: sessionID) else {
                throw HTTPError(.notFound, message: "No session '\(sessionID)' in this project.")
            }
            return Layout.response(Layout.page(title: "Session " + sessionID, section: .sessions, project: project.name, Self.body(d)))
        }
    }

    static func body(_ d: SessionDetailDTO) -> HTML {
        let s = d.session
        var seen = 0  // messages of earlier turns' inputs already shown (chat history is resent each call)
        var turns: [HTML] = []
        for (i, t) in d.turns.enumerated() {
            let input = Messages.parse(t.input) ?? []
            // New messages: those beyond the previous call's input and output; at least the last user message.
            var fresh = input.count > seen ? Array(input[seen...]) : []
            fresh = fresh.filter { $0.role != "assistant" }
            if fresh.isEmpty, let lastUser = input.last(where: { $0.role == "user" }) { fresh = [lastUser] }
            let system = i == 0 ? input.filter { $0.role == "system" } : []
            fresh.removeAll { $0.role == "system" }
            let outputs = Messages.parse(t.output) ?? []
            seen = input.count + max(outputs.count, 1)
            let userBubbles = fresh.map { m -> HTML in
                "<div class=\"who\">\(m.role.isEmpty ? "user" : m.role)</div><div class=\"bubble user\">\(Messages.text(m))\(m.extras)</div>"
            }
            let replyText = outputs.map(Messages.text).filter { !$0.isEmpty }.joined(separator: "\n")
            let tools = outputs.flatMap(\.extras)
            let reply: HTML
            if t.status == "error" && replyText.isEmpty {
                reply = "<div class=\"who right\">assistant</div><div class=\"bubble assistant error\">The call failed.</div>"
            } else if replyText.isEmpty && tools.isEmpty {
                reply = "<div class=\"who right\">assistant</div><div class=\"bubble assistant\" style=\"opacity:.7\">(output not recorded)</div>"
            } else {
                let errorClass = HTML(raw: t.status == "error" ? " error" : "")
                let toolCard: HTML = tools.isEmpty ? .empty : "<div class=\"msg\">\(tools)</div>"
                reply = "<div class=\"who right\">assistant · \(t.model)</div><div class=\"bubble assistant\(errorClass)\">\(replyText)</div>\(toolCard)"
            }
            turns.append("""
            <div class="card turn" id="turn-\(i + 1)">
              \(HTML.when(!system.isEmpty) { "<details style=\"margin-bottom:8px\"><summary class=\"who\">System prompt</summary><div class=\"msg system\" style=\"margin-top:6px\"><div class=\"text\">\(system.map(Messages.text).joined(separator: "\n"))</div></div></details>" })
              <div class="bubble-row">\(userBubbles)\(reply)</div>
              <div class="meta"><span>Turn \(i + 1)</span><span>\(Fmt.time(t.startUnixNanos))</span><span>\(t.provider) \(t.model)</span><span>\(Fmt.ms(t.durationMs))</span><span>\(Fmt.count(t.inputTokens)) → \(Fmt.count(t.outputTokens)) tokens</span><span>\(t.costUSD.map(Fmt.cost) ?? "unpriced")</span><a href="/traces/\(t.traceID)#span-\(t.spanID)">Open trace →</a></div>
            </div>
            """)
        }
        let scores: HTML = d.scores.isEmpty ? .empty : "<div class=\"card pad\" style=\"margin-bottom:16px;max-width:860px\"><h2>Scores</h2>\(TraceDetailPage.scoresTable(d.scores))</div>"
        return """
        <div class="crumbs"><a href="/sessions">Sessions</a> / <span class="mono">\(s.sessionID)</span></div>
        <div class="page-head"><div>
          <h1>Session <span class="mono" style="font-size:18px">\(s.sessionID)</span></h1>
          <div class="stats">
            \(HTML.when(!s.userID.isEmpty) { "<span>User <a href=\"/traces\(URLQuery.string([("user_id", s.userID)]))\"><b>\(s.userID)</b></a></span>" })
            <span>Started <b>\(Fmt.time(s.firstUnixNanos))</b></span>
            <span>Turns <b>\(d.turns.count)</b></span>
            <span>Traces <b>\(s.traceCount)</b></span>
            <span>Tokens <b>\(Fmt.count(s.inputTokens.addingSaturated(s.outputTokens)))</b></span>
            <span>Cost <b>\(Fmt.cost(s.costUSD))</b></span>
            \(HTML.when(s.errorCount > 0) { "<span class=\"badge error\">\(s.errorCount) failed</span>" })
          </div>
        </div>
        <a class="btn secondary" href="/traces\(URLQuery.string([("session_id", s.sessionID), ("sort", "start_asc")]))">View traces</a>
        </div>
        \(scores)
        <div class="convo" id="conversation">\(turns.isEmpty ? Layout.empty("No model calls in this session", "Its traces have no LLM spans.") : HTML.join(turns))</div>
        """
    }
}

/// Users: activity per end user.
struct UsersPage: Sendable {
    let store: any SpanStore

    func render(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try await WebUI.guarded(context) {
            let project = try context.requireProject()
            let p = try QueryParameters(request, allowed: ["cursor"])
            let page = try await storeCall { try await store.listUsers(SessionFilter(projectID: project.id), limit: 50, cursor: p.string("cursor")) }
            let rows = page.items.map { u -> HTML in
                """
                <tr>
                  <td><a class="name" href="/traces\(URLQuery.string([("user_id", u.userID)]))">\(u.userID)</a></td>
                  <td class="nowrap">\(Fmt.time(u.lastUnixNanos))</td>
                  <td class="num"><a href="/sessions\(URLQuery.string([("user_id", u.userID)]))">\(u.sessionCount)</a></td>
                  <td class="num">\(u.traceCount)</td>
                  <td class="num">\(u.llmCalls)</td>
                  <td class="num">\(u.errorCount)</td>
                  <td class="num">\(Fmt.count(u.inputTokens.addingSaturated(u.outputTokens)))</td>
                  <td class="num">\(Fmt.cost(u.costUSD))</td>
                </tr>
                """
            }
            let table: HTML = rows.isEmpty ? "<div class=\"card\">\(Layout.empty("No users yet", "Users come from the user.id attribute on spans."))</div>" : """
            <div class="card"><div class="table-wrap"><table class="data" id="users">
              <thead><tr><th>User</th><th>Last active</th><th class="num">Sessions</th><th class="num">Traces</th><th class="num">LLM calls</th><th class="num">Errors</th><th class="num">Tokens</th><th class="num">Cost</th></tr></thead>
              <tbody>\(rows)</tbody></table></div>
              \(page.nextCursor.map { c -> HTML in "<div class=\"pager\"><a class=\"btn secondary\" href=\"/users\(URLQuery.string([("cursor", c)]))\">Next page →</a></div>" } ?? .empty)
            </div>
            """
            let body: HTML = "<div class=\"page-head\"><div><h1>Users</h1><div class=\"sub\">End users by most recent activity.</div></div></div>\(table)"
            return Layout.response(Layout.page(title: "Users", section: .users, project: project.name, body))
        }
    }
}
