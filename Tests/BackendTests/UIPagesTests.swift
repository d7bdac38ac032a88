@testable import Backend
import EvalForgeModel
import EvalForgeStore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@Suite("Web UI", .serialized)
struct UIPagesTests {
    typealias F = QueryFixture
    func page(_ client: some TestClientProtocol, _ uri: String) async throws -> (status: HTTPResponse.Status, body: String, headers: HTTPFields) {
        try await client.page(uri, signedInWith: F.keyA)
    }

    @Test func signInStartsASessionAndPagesNeedIt() async throws {
        try await withQueryBackend(seed: false) { client, _ in
            let anon = try await client.get("/traces?model=gpt-4o", key: nil)
            #expect(anon.status == .seeOther)
            #expect(anon.headers[.location] == "/login?next=%2Ftraces%3Fmodel%3Dgpt-4o")
            let login = try await client.get("/login?next=/traces", key: nil)
            #expect(login.status == .ok && login.body.contains("name=\"api_key\"") && login.body.contains("name=\"csrf_token\""))

            let form = try await client.loginForm()
            func post(_ fields: String) async throws -> (HTTPResponse.Status, HTTPFields, String) {
                let r = try await client.postLogin(fields + "&csrf_token=\(form.token)", cookie: form.cookie)
                return (r.status, r.headers, r.body)
            }
            let bad = try await post("api_key=wrong&next=%2Ftraces")
            #expect(bad.0 == .unauthorized && bad.2.contains("not valid"))
            let good = try await post("api_key=\(F.keyA)&next=%2Ftraces%3Fmodel%3Dgpt-4o")
            #expect(good.0 == .seeOther)
            #expect(good.1[.location] == "/traces?model=gpt-4o")
            // The cookie holds a random session id, never the key; the old raw-key cookie is cleared.
            let cookie = try #require(setCookieField("evalforge_session", in: good.1))
            #expect(!cookie.contains(F.keyA))
            #expect(good.1[values: .setCookie].contains { $0.hasPrefix("evalforge_key=;") && $0.contains("Max-Age=0") })
            // No open redirect to another host.
            for next in ["%2F%2Fevil.example", "https%3A%2F%2Fevil.example", "%2F%5Cevil.example"] {
                #expect(try await post("api_key=\(F.keyA)&next=\(next)").1[.location] == "/")
            }
            // The old raw-key cookie signs nothing in any more.
            #expect(try await client.get("/traces", key: nil, headers: [.cookie: "evalforge_key=\(F.keyA)"]).status == .seeOther)
            #expect(try await client.get("/api/traces", key: nil, headers: [.cookie: "evalforge_key=\(F.keyA)"]).status == .unauthorized)
        }
    }

    @Test func everyPageRendersRealData() async throws {
        try await withQueryBackend { client, _ in
            let traces = try await page(client, "/traces")
            #expect(traces.status == .ok)
            #expect(traces.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            #expect(traces.body.contains(F.traceID(F.traceCount - 1)))
            #expect(traces.body.contains("id=\"next-page\""))
            let detail = try await page(client, "/traces/\(F.traceID(7))")
            #expect(detail.status == .ok)
            #expect(detail.body.contains("class=\"wf-row"))
            #expect(detail.body.contains("answer 7 mentions Zebra"))
            #expect(detail.body.contains("class=\"msg assistant\""))
            #expect(detail.body.contains("question 7 about invoices"))
            let session = try await page(client, "/sessions/session-1")
            #expect(session.status == .ok)
            #expect(session.body.contains("bubble user") && session.body.contains("follow-up 7"))
            #expect(try await page(client, "/sessions").body.contains("session-5"))
            #expect(try await page(client, "/users").body.contains("user-3"))
            #expect(try await page(client, "/").status == .ok)
            #expect(try await page(client, "/traces/" + String(repeating: "a", count: 32)).status == .notFound)
            #expect(try await page(client, "/traces?min_cost_usd=lots").status == .badRequest)
            let js = try await client.get("/ui/app.js", key: nil)
            #expect(js.status == .ok && js.body.contains("waterfall"))
        }
    }

    @Test func filtersChangeTheTraceList() async throws {
        try await withQueryBackend { client, _ in
            func rows(_ q: String) async throws -> Set<String> {
                let body = try await page(client, "/traces?limit=500&" + q).body
                return Set(body.components(separatedBy: "data-trace=\"").dropFirst().map { String($0.prefix(32)) })
            }
            let all = try await rows("")
            let model = try await rows("model=gpt-4o")
            let text = try await rows("q=Zebra")
            let errors = try await rows("status=error&service=svc-0")
            #expect(all.count == F.traceCount)
            #expect(model.count == F.traceCount / 3 && model.isSubset(of: all))
            #expect(text == [F.traceID(7)])
            #expect(errors.count == F.traceCount / 10)
        }
    }

    @Test func userDataIsEscapedEverywhere() async throws {
        try await withQueryBackend(seed: false) { client, services in
            let evil = "<script>alert(1)</script>"
            let attr = "\"><img src=x onerror=alert(2)>"
            var spans = QueryFixture.spans(trace: 1, projectID: "default", nameOverride: evil)
            let now = Int64(Date().timeIntervalSince1970) * 1_000_000_000
            spans = spans.map { s in
                var s = s
                s.startUnixNanos = now - 3_600_000_000_000 + (s.startUnixNanos - (F.baseUnix + 60) * 1_000_000_000)
                s.userID = attr
                s.sessionID = "s'\(evil)"
                s.model = s.model.isEmpty ? "" : "m\(evil)"
                s.tags = [evil]
                s.attributesJSON = "{\"k\(evil)\":\"\(attr.replacingOccurrences(of: "\"", with: "\\\""))\"}"
                if !s.input.isEmpty { s.input = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\(evil)\"}]}]" }
                if !s.output.isEmpty { s.output = "not json \(evil)" }
                s.statusMessage = evil
                return s
            }
            _ = try await services.store.insert(StoreBatch(projectID: "default", batchID: "evil", spans: spans, rollups: QueryFixture.rollups(spans)))
            let pages = ["/", "/traces", "/traces/\(F.traceID(1))", "/sessions", "/sessions/\(URLQuery.component("s'" + evil))", "/users",
                         "/traces?q=\(URLQuery.component(evil))", "/traces?model=\(URLQuery.component(attr))"]
            for uri in pages {
                let r = try await page(client, uri)
                #expect(r.status == .ok, "\(uri): \(r.status)")
                #expect(!r.body.contains("<script>alert"), "\(uri) has an unescaped script")
                #expect(!r.body.contains("<img src=x"), "\(uri) has an unescaped attribute break-out")
                #expect(!r.body.contains("onerror=alert(2)>\""), "\(uri)")
            }
            let detail = try await page(client, "/traces/\(F.traceID(1))").body
            #expect(detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(detail.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"))
        }
    }
}
