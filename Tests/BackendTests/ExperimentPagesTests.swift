@testable import Backend
import EvalForgeStore
import Evaluation
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// The experiment pages against real runs: a dataset of ten capital-city questions, a base run over
/// the recorded answers and a candidate run against a stand-in application (an "http" target) that
/// gets seven answers wrong, one right that the recording got wrong, and fails on one item.
@Suite("Experiment pages", .serialized)
struct ExperimentPagesTests {
    typealias F = QueryFixture
    static let evil = "<script>alert(1)</script>"
    static let attr = "\"><img src=x onerror=alert(2)>"
    static let countries = [("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Canada", "Ottawa"),
                            ("Egypt", "Cairo"), ("Norway", "Oslo"), ("Chile", "Santiago"), ("Ghana", "Accra"), ("Spain", "Madrid")]

    struct Fixture: Sendable {
        var base: String
        var candidate: String
        /// A run of another dataset.
        var other: String
    }

    /// The application under test: wrong for France … Norway, right for Chile and Ghana, a 500 for Spain.
    static func candidateApp() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/answer") { req, _ -> Response in
            let body = String(buffer: try await req.body.collect(upTo: 1 << 20))
            let input = JSON.parse(body)?["input"]?.stringValue ?? ""
            let text: String
            if input.contains("Spain") {
                return Response(status: .internalServerError, body: .init(byteBuffer: ByteBuffer(string: "model overloaded")))
            } else if input.contains("Chile") {
                text = "The capital of Chile is Santiago."
            } else if input.contains("Ghana") {
                text = "Accra is the capital of Ghana."
            } else {
                text = "It is probably a big city."
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: JSON.object(["output": .string(text)]).text)))
        }
        return router
    }

    func page(_ client: some TestClientProtocol, _ uri: String) async throws -> (status: HTTPResponse.Status, body: String, headers: HTTPFields) {
        try await client.page(uri, signedInWith: F.keyA)
    }

    @discardableResult
    func post(_ client: some TestClientProtocol, _ uri: String, _ body: String) async throws -> JSON {
        let (status, text) = try await client.execute(uri: uri, method: .post, headers: [.authorization: "Bearer \(F.keyA)", .contentType: "application/json"], body: ByteBuffer(string: body)) {
            ($0.status, String(buffer: $0.body))
        }
        #expect(status == .created, "\(uri): \(status) \(text.prefix(300))")
        return try #require(JSON.parse(text))
    }

    func waitForRun(_ client: some TestClientProtocol, _ id: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let r = try await client.get("/api/runs/\(id)")
            if let status = JSON.parse(r.body)?["status"]?.stringValue, ["completed", "failed", "cancelled"].contains(status) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("run \(id) did not finish")
    }

    /// Creates the evaluators, datasets and three runs through the API; waits for them to finish.
    func seed(_ client: some TestClientProtocol, targetPort: Int) async throws -> Fixture {
        try await post(client, "/api/evaluators", #"{"name":"has_answer","type":"contains","ignoreCase":true}"#)
        try await post(client, "/api/evaluators", #"{"name":"concise","type":"length","max":80}"#)
        try await post(client, "/api/evaluators", #"{"name":"cheap","type":"cost","maxUSD":0.01}"#)
        let items = Self.countries.map { country, capital -> JSON in
            let input = country == "France" ? "\(Self.evil) What is the capital of France? \(Self.attr)" : "What is the capital of \(country)?"
            let output = country == "Ghana" ? "I do not know." : "The capital of \(country) is \(capital)."
            return .object(["id": .string("item-" + country.lowercased()), "input": .string(input), "expected": .string(capital), "output": .string(output)])
        }
        let ds = try await post(client, "/api/datasets", JSON.object(["name": "capitals", "description": "Capital cities", "items": .array(items)]).text)
        let dsID = try #require(ds["id"]?.stringValue)
        let base = try await post(client, "/api/experiments", #"{"name":"recorded answers","datasetId":"\#(dsID)","target":{"type":"recorded"},"evaluators":["has_answer","concise","cheap"],"concurrency":4}"#)
        let baseID = try #require(base["run"]?["id"]?.stringValue)
        try await waitForRun(client, baseID)
        let cand = try await post(client, "/api/experiments", #"{"name":"new prompt","datasetId":"\#(dsID)","target":{"type":"http","url":"http://127.0.0.1:\#(targetPort)/answer","timeoutMs":5000},"evaluators":["has_answer","concise","cheap"],"concurrency":4}"#)
        let candID = try #require(cand["run"]?["id"]?.stringValue)
        try await waitForRun(client, candID)
        // Another dataset, with markup in every name.
        let ds2 = try await post(client, "/api/datasets", JSON.object(["name": .string("other " + Self.evil), "description": .string(Self.attr),
                                                                         "items": .array([.object(["input": "hi", "output": "hello"])])]).text)
        let ds2ID = try #require(ds2["id"]?.stringValue)
        let other = try await post(client, "/api/experiments", JSON.object(["name": .string("exp " + Self.attr), "datasetId": .string(ds2ID), "target": ["type": "recorded"], "evaluators": ["concise"]]).text)
        let otherID = try #require(other["run"]?["id"]?.stringValue)
        try await waitForRun(client, otherID)
        return Fixture(base: baseID, candidate: candID, other: otherID)
    }

    /// A backend (with its evaluation workers running) and the candidate application on a loopback port.
    func withRuns(_ body: @Sendable (any TestClientProtocol, BackendServices, Fixture) async throws -> Void) async throws {
        let logger = {
            var l = Logger(label: "experiment-pages-test")
            l.logLevel = .warning
            return l
        }()
        let target = Application(router: Self.candidateApp(), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        try await target.test(.live) { targetClient in
            let port = try #require(targetClient.port)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-exp-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let services = try await BackendApp.makeServices(configuration: F.configuration(dir: dir, store: .sqlite), logger: logger)
            let app = Application(router: BackendApp.buildRouter(services: services), services: services.evaluation.services, logger: logger)
            do {
                try await app.test(.router) { client in
                    let fixture = try await seed(client, targetPort: port)
                    try await body(client, services, fixture)
                }
            } catch {
                await services.store.shutdown()
                throw error
            }
            await services.store.shutdown()
        }
    }

    /// The part of a page from `from` up to `to` (or the end).
    func section(_ body: String, from: String, to: String? = nil) -> String {
        guard let start = body.range(of: from) else { return "" }
        let rest = body[start.lowerBound...]
        if let to, let end = rest.range(of: to) { return String(rest[..<end.lowerBound]) }
        return String(rest)
    }

    @Test func pagesShowRealRunsAndTheComparison() async throws {
        try await withRuns { client, services, fx in
            let ev = services.evaluation
            let base = try await ev.run(projectID: "default", id: fx.base)
            let cand = try await ev.run(projectID: "default", id: fx.candidate)
            #expect(base.status == .completed && cand.status == .completed)
            let baseAnswer = try #require(base.aggregates?.first { $0.evaluator == "has_answer" })
            let candAnswer = try #require(cand.aggregates?.first { $0.evaluator == "has_answer" })
            #expect(baseAnswer.mean == 0.9)  // all but Ghana
            #expect(abs((candAnswer.mean ?? 0) - 2.0 / 9) < 1e-9)  // Chile and Ghana of the nine answered

            // The list: datasets with item counts, runs newest first with their aggregates.
            let list = try await page(client, "/experiments")
            #expect(list.status == .ok)
            #expect(list.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            #expect(list.body.contains("href=\"/experiments\" class=\"active\""))
            let datasets = section(list.body, from: "id=\"datasets\"", to: "</table>")
            #expect(datasets.contains("capitals") && datasets.contains("<td class=\"num\">10</td>"))
            let runs = section(list.body, from: "id=\"runs\"", to: "</table>")
            let order = [fx.other, fx.candidate, fx.base].map { runs.range(of: "data-run=\"\($0)\"")?.lowerBound }
            #expect(order.allSatisfy { $0 != nil } && order[0]! < order[1]! && order[1]! < order[2]!, "runs are listed newest first")
            #expect(runs.contains("<b>0.900</b> · 90% pass"))  // base has_answer
            #expect(runs.contains("<b>0.222</b> · 22.2% pass"))  // candidate has_answer
            #expect(runs.contains("10 errors"))  // the cost evaluator has no cost to judge
            #expect(runs.contains("10/10") && runs.contains("10 with errors"))  // an item with any error counts
            #expect(runs.contains("/experiments/compare?base=\(fx.base)&amp;candidate=\(fx.candidate)"))

            // One run: aggregates and items, errors shown as errors.
            let run = try await page(client, "/experiments/runs/\(fx.base)")
            #expect(run.status == .ok)
            let aggs = section(run.body, from: "id=\"aggregates\"", to: "</table>")
            #expect(aggs.contains("<td class=\"mono\">has_answer</td>") && aggs.contains("<b>0.900</b>") && aggs.contains("90%"))
            #expect(aggs.contains("<span class=\"badge error\">10</span>"))
            let ghana = section(run.body, from: "id=\"item-9\"", to: "</tr>")
            #expect(ghana.contains("I do not know.") && ghana.contains("Accra") && ghana.contains("<b>0.000</b> <span class=\"badge error\">fail</span>"))
            #expect(ghana.contains("class=\"eval-error\"") && ghana.contains("no cost recorded"))
            let france = section(run.body, from: "id=\"item-1\"", to: "</tr>")
            #expect(france.contains("&lt;script&gt;alert(1)&lt;/script&gt; What is the capital of France?"))
            #expect(france.contains("The capital of France is Paris.") && france.contains("<b>1.000</b> <span class=\"badge ok\">pass</span>"))
            let candPage = try await page(client, "/experiments/runs/\(fx.candidate)")
            let spain = section(candPage.body, from: "id=\"item-10\"", to: "</tr>")
            #expect(spain.contains("Item failed") && spain.contains("endpoint answered 500"))
            #expect(candPage.body.contains("It is probably a big city."))

            // The comparison: the numbers of EvaluationService.compare, a verdict, the items.
            let cmp = try await ev.compare(projectID: "default", base: fx.base, candidate: fx.candidate)
            let answer = try #require(cmp.evaluators.first { $0.evaluator == "has_answer" })
            #expect(answer.pairs == 9 && answer.regressed == 7 && answer.improved == 1 && answer.unchanged == 1)
            #expect(answer.significant && answer.pValue != nil)
            let compare = try await page(client, "/experiments/compare?base=\(fx.base)&candidate=\(fx.candidate)")
            #expect(compare.status == .ok)
            let row = section(compare.body, from: "data-evaluator=\"has_answer\"", to: "</tr>")
            #expect(row.contains(">0.900<") && row.contains(">0.222<"))
            #expect(row.contains(EvalUI.delta(answer.meanDelta)) && EvalUI.delta(answer.meanDelta) == "−0.667")
            #expect(row.contains(EvalUI.pValue(answer.pValue)) && row.contains(EvalUI.ci(answer.ci95)))
            #expect(row.contains("Worse: a significant regression"))
            let concise = section(compare.body, from: "data-evaluator=\"concise\"", to: "</tr>")
            #expect(concise.contains("No change: every paired item scored the same."))
            #expect(compare.body.contains("The candidate is significantly worse on has_answer."))
            #expect(compare.body.contains("id=\"kpi-regressions\">7<") && compare.body.contains("id=\"kpi-improvements\">1<"))
            #expect(compare.body.contains("id=\"kpi-unchanged\">\(cmp.evaluators.reduce(0) { $0 + $1.unchanged })<"))
            let regressions = section(compare.body, from: "id=\"regressions\"", to: "</table>")
            #expect(regressions.components(separatedBy: "<tr data-item=").count - 1 == 7)
            #expect(regressions.contains("data-item=\"item-france\"") && regressions.contains("data-item=\"item-norway\""))
            #expect(!regressions.contains("item-ghana") && !regressions.contains("item-chile") && !regressions.contains("item-spain"))
            #expect(regressions.contains("&lt;script&gt;alert(1)&lt;/script&gt; What is the capital of France?"))
            let improvements = section(compare.body, from: "id=\"improvements\"", to: "</table>")
            #expect(improvements.contains("data-item=\"item-ghana\"") && improvements.contains("Accra is the capital of Ghana."))
            #expect(compare.body.contains("<svg class=\"chart deltas\"") && compare.body.contains("class=\"bar-down\""))
            // The form offers the runs grouped by dataset, with the compared pair selected.
            #expect(compare.body.contains("<option value=\"\(fx.base)\" selected>") && compare.body.contains("<optgroup label=\"capitals (10 items)\">"))
            // Without a pair the form preselects the newest run and the run before it on its dataset.
            let form = try await page(client, "/experiments/compare?candidate=\(fx.candidate)")
            #expect(form.status == .ok && form.body.contains("<option value=\"\(fx.base)\" selected>") && !form.body.contains("id=\"deltas\""))

            // Markup in item inputs, dataset and run names is text everywhere.
            for uri in ["/experiments", "/experiments/runs/\(fx.base)", "/experiments/runs/\(fx.other)", "/experiments/compare?base=\(fx.base)&candidate=\(fx.candidate)", "/experiments/compare"] {
                let r = try await page(client, uri)
                #expect(r.status == .ok, "\(uri): \(r.status)")
                #expect(!r.body.contains("<script>alert"), "\(uri) has an unescaped script")
                #expect(!r.body.contains("<img src=x"), "\(uri) has an unescaped attribute break-out")
            }
            #expect(list.body.contains("other &lt;script&gt;alert(1)&lt;/script&gt;") && list.body.contains("exp &quot;&gt;&lt;img src=x onerror=alert(2)&gt;"))
        }
    }

    @Test func badAndUnknownIdsAreErrorPages() async throws {
        try await withRuns { client, _, fx in
            let unknown = try await page(client, "/experiments/runs/run_00000000deadbeef")
            #expect(unknown.status == .notFound && unknown.body.contains("Run &#39;run_00000000deadbeef&#39; does not exist in this project."))
            #expect(unknown.body.contains("href=\"/experiments\""))
            let bad = try await page(client, "/experiments/runs/\(URLQuery.component(Self.evil))")
            #expect(bad.status == .badRequest && bad.body.contains("is not a run id") && !bad.body.contains("<script>alert"))
            #expect(try await page(client, "/experiments/runs/\(fx.base)?page=0").status == .badRequest)
            #expect(try await page(client, "/experiments/runs/\(fx.base)?sort=x").status == .badRequest)
            let noBase = try await page(client, "/experiments/compare?base=run_00000000deadbeef&candidate=\(fx.candidate)")
            #expect(noBase.status == .notFound && noBase.body.contains("Base run &#39;run_00000000deadbeef&#39; does not exist"))
            let alone = try await page(client, "/experiments/compare?candidate=run_0000000000000002")
            #expect(alone.status == .notFound && alone.body.contains("Candidate run &#39;run_0000000000000002&#39; does not exist"))
            #expect(try await page(client, "/experiments/compare?base=run_0000000000000002").status == .notFound)
            let noCand = try await page(client, "/experiments/compare?base=\(fx.base)&candidate=run_0000000000000001")
            #expect(noCand.status == .notFound && noCand.body.contains("Candidate run"))
            let badCompare = try await page(client, "/experiments/compare?base=\(URLQuery.component(Self.attr))&candidate=\(fx.candidate)")
            #expect(badCompare.status == .badRequest && !badCompare.body.contains("<img src=x"))
            let mixed = try await page(client, "/experiments/compare?base=\(fx.base)&candidate=\(fx.other)")
            #expect(mixed.status == .badRequest && mixed.body.contains("evaluate different datasets"))
            #expect(!mixed.body.contains("<script>alert"))
            #expect(try await page(client, "/experiments?limit=0").status == .badRequest)
            // Without the cookie: the sign-in page.
            #expect(try await client.get("/experiments", key: nil).status == .seeOther)
        }
    }
}
