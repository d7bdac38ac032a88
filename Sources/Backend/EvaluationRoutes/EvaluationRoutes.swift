import EvalForgeStore
import Evaluation
import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Evaluation API under /api (providers, evaluators, online rules, datasets, experiments, runs,
/// comparisons, scores, webhooks); see docs/evaluation.md.
enum EvaluationRoutes {
    static let maxBody = 32 << 20
    /// Largest body of `POST /api/evaluate` (evaluated synchronously, in memory).
    static let maxEvaluateBody = 16 << 20

    static func addRoutes(to group: RouterGroup<BackendRequestContext>, services: BackendServices) {
        let ev = services.evaluation
        let store = services.store

        // Providers
        group.post("providers") { req, ctx in try await handle(.created) { try await ev.putProvider(projectID: try ctx.requireProject().id, try await decode(ProviderConfig.self, req)) } }
        group.get("providers") { _, ctx in try await handle { try await ev.listProviders(projectID: try ctx.requireProject().id) } }
        group.delete("providers/:name") { _, ctx in try await handle(.noContent) { try await ev.deleteProvider(projectID: try ctx.requireProject().id, name: try ctx.parameters.require("name")); return Empty() } }

        // Evaluators
        group.post("evaluators") { req, ctx in try await handle(.created) { try await ev.putEvaluator(projectID: try ctx.requireProject().id, try await decode(EvaluatorSpec.self, req)) } }
        group.get("evaluators") { _, ctx in try await handle { try await ev.listEvaluators(projectID: try ctx.requireProject().id) } }
        group.delete("evaluators/:name") { _, ctx in try await handle(.noContent) { try await ev.deleteEvaluator(projectID: try ctx.requireProject().id, name: try ctx.parameters.require("name")); return Empty() } }
        let gate = EvaluateGate(limit: EvaluateGate.defaultLimit)
        group.post("evaluate") { req, ctx in
            try await handle {
                let project = try ctx.requireProject().id
                guard gate.enter(project) else {
                    throw EvaluationError.overloaded("POST /api/evaluate: \(gate.limit) evaluations are in flight already (at most \(gate.perProject) per project); retry after \(retryAfterSeconds) s")
                }
                defer { gate.leave(project) }
                let body = try await decode(EvaluateRequest.self, req, limit: maxEvaluateBody)
                let inputs = body.items.map { EvaluationInput(input: $0.input ?? "", output: $0.output, expected: $0.expected, context: $0.context, latencyMs: $0.latencyMs, costUSD: $0.costUSD) }
                let (results, ns) = try await ev.evaluate(projectID: project, evaluators: body.evaluators ?? [], specs: body.specs ?? [], inputs: inputs)
                let n = results.reduce(0) { $0 + $1.count }
                return EvaluateResponse(results: body.summaryOnly == true ? nil : results, evaluations: n, elapsedNs: ns, evaluationsPerSecond: ns > 0 ? Double(n) / (Double(ns) / 1e9) : 0)
            }
        }

        // Online rules
        group.post("online-rules") { req, ctx in
            try await handle(.created) {
                let b = try await decode(RuleRequest.self, req)
                return try await ev.createRule(projectID: try ctx.requireProject().id, name: b.name ?? "", filter: b.filter ?? RuleFilter(), samplingRate: b.samplingRate ?? 1, evaluators: b.evaluators, enabled: b.enabled ?? true)
            }
        }
        group.get("online-rules") { _, ctx in try await handle { try await ev.listRules(projectID: try ctx.requireProject().id) } }
        group.get("online-queue") { _, ctx in try await handle { try await ev.onlineQueueStats(projectID: try ctx.requireProject().id) } }
        group.delete("online-rules/:id") { _, ctx in try await handle(.noContent) { try await ev.deleteRule(projectID: try ctx.requireProject().id, id: try ctx.parameters.require("id")); return Empty() } }

        // Datasets
        group.post("datasets") { req, ctx in
            try await handle(.created) {
                let b = try await decode(DatasetRequest.self, req)
                return try await ev.createDataset(projectID: try ctx.requireProject().id, name: b.name, description: b.description ?? "", items: b.items ?? [])
            }
        }
        group.get("datasets") { _, ctx in try await handle { try await ev.listDatasets(projectID: try ctx.requireProject().id) } }
        group.get("datasets/:id") { req, ctx in
            try await handle {
                let p = try ctx.requireProject().id
                let id = try ctx.parameters.require("id")
                let limit = min(10_000, max(1, req.uri.queryParameters.get("limit", as: Int.self) ?? 1000))
                let offset = max(0, req.uri.queryParameters.get("offset", as: Int.self) ?? 0)
                return DatasetWithItems(dataset: try await ev.dataset(projectID: p, id: id), items: try await ev.items(projectID: p, datasetID: id, limit: limit, offset: offset))
            }
        }
        group.delete("datasets/:id") { _, ctx in try await handle(.noContent) { try await ev.deleteDataset(projectID: try ctx.requireProject().id, id: try ctx.parameters.require("id")); return Empty() } }
        group.post("datasets/:id/items") { req, ctx in
            try await handle(.created) {
                let b = try await decode(ItemsRequest.self, req)
                return try await ev.addItems(projectID: try ctx.requireProject().id, datasetID: try ctx.parameters.require("id"), items: b.items)
            }
        }
        group.post("datasets/:id/items/from-traces") { req, ctx in
            try await handle(.created) {
                let b = try await decode(FromTracesRequest.self, req)
                return try await ev.addItemsFromTraces(projectID: try ctx.requireProject().id, datasetID: try ctx.parameters.require("id"), traceIDs: b.traceIds)
            }
        }

        // Experiments and runs
        group.post("experiments") { req, ctx in
            try await handle(.created) {
                let p = try ctx.requireProject().id
                let b = try await decode(ExperimentRequest.self, req)
                let e = try await ev.createExperiment(projectID: p, name: b.name ?? "", datasetID: b.datasetId, target: b.target ?? Target(type: "recorded"), evaluators: b.evaluators, concurrency: b.concurrency)
                let run = b.run == false ? nil : try await ev.startRun(projectID: p, experimentID: e.id)
                return ExperimentResponse(experiment: e, run: run)
            }
        }
        group.get("experiments") { _, ctx in try await handle { try await ev.listExperiments(projectID: try ctx.requireProject().id) } }
        group.post("experiments/:id/runs") { _, ctx in try await handle(.created) { try await ev.startRun(projectID: try ctx.requireProject().id, experimentID: try ctx.parameters.require("id")) } }
        group.get("runs") { req, ctx in try await handle { try await ev.listRuns(projectID: try ctx.requireProject().id, limit: min(1000, max(1, req.uri.queryParameters.get("limit", as: Int.self) ?? 100))) } }
        group.get("runs/:id") { _, ctx in try await handle { try await ev.run(projectID: try ctx.requireProject().id, id: try ctx.parameters.require("id")) } }
        group.get("runs/:id/items") { _, ctx in try await handle { try await ev.runItems(projectID: try ctx.requireProject().id, id: try ctx.parameters.require("id")) } }
        group.post("runs/:id/cancel") { _, ctx in try await handle { try await ev.cancelRun(projectID: try ctx.requireProject().id, id: try ctx.parameters.require("id")) } }
        group.get("runs/:id/compare/:other") { _, ctx in
            try await handle { try await ev.compare(projectID: try ctx.requireProject().id, base: try ctx.parameters.require("id"), candidate: try ctx.parameters.require("other")) }
        }

        // Scores (feedback)
        group.post("scores") { req, ctx in
            try await handle(.created) {
                let p = try ctx.requireProject().id
                let buffer = try await req.body.collect(upTo: maxBody)
                guard let json = JSON.parse(String(buffer: buffer)) else { throw EvaluationError.invalidArgument("body: not valid JSON") }
                let list = json["scores"]?.arrayValue ?? (json.arrayValue ?? [json])
                return try await ev.addScores(projectID: p, try list.map(scoreRow))
            }
        }
        group.get("scores") { req, ctx in
            try await handle {
                let p = try ctx.requireProject().id
                let q = req.uri.queryParameters
                if let t = q.get("traceId") { return try await store.scores(projectID: p, traceIDs: [t]) }
                if let s = q.get("sessionId") { return try await store.scores(projectID: p, sessionID: s) }
                if let r = q.get("runId") { return try await store.scores(projectID: p, runID: r) }
                throw EvaluationError.invalidArgument("query: traceId, sessionId or runId is required")
            }
        }

        // Webhooks
        group.post("webhooks") { req, ctx in
            try await handle(.created) {
                let b = try await decode(WebhookRequest.self, req)
                return try await ev.createWebhook(projectID: try ctx.requireProject().id, url: b.url, secret: b.secret, events: b.events ?? [])
            }
        }
        group.get("webhooks") { _, ctx in try await handle { try await ev.listWebhooks(projectID: try ctx.requireProject().id) } }
        group.delete("webhooks/:id") { _, ctx in try await handle(.noContent) { try await ev.deleteWebhook(projectID: try ctx.requireProject().id, id: try ctx.parameters.require("id")); return Empty() } }
        group.post("webhooks/:id/test") { _, ctx in try await handle { try await ev.testWebhook(projectID: try ctx.requireProject().id, id: try ctx.parameters.require("id")) } }
        group.get("webhooks/:id/deliveries") { req, ctx in
            try await handle { try await ev.deliveries(projectID: try ctx.requireProject().id, webhookID: try ctx.parameters.require("id"), limit: min(1000, max(1, req.uri.queryParameters.get("limit", as: Int.self) ?? 100))) }
        }
    }

    // MARK: helpers

    struct Empty: Encodable {}

    /// Decodes a JSON body of at most `limit` bytes (413 naming the bound past it; 400 naming the field
    /// for anything that does not decode).
    static func decode<T: Decodable>(_ type: T.Type, _ req: Request, limit: Int = maxBody) async throws -> T {
        let tooLarge = EvaluationError.tooLarge("body: larger than \(limit) bytes, the bound of \(req.method) \(req.uri.path); send less per request")
        if let length = req.headers[.contentLength].flatMap(Int.init), length > limit { throw tooLarge }
        let buffer: ByteBuffer
        do { buffer = try await req.body.collect(upTo: limit) } catch is NIOTooManyBytesError { throw tooLarge }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let DecodingError.keyNotFound(key, c) {
            throw EvaluationError.invalidArgument("body: missing field '\((c.codingPath + [key]).map(\.stringValue).joined(separator: "."))'")
        } catch let DecodingError.typeMismatch(t, c) {
            throw EvaluationError.invalidArgument("body: field '\(c.codingPath.map(\.stringValue).joined(separator: "."))' should be \(t)")
        } catch let DecodingError.valueNotFound(t, c) {
            throw EvaluationError.invalidArgument("body: field '\(c.codingPath.map(\.stringValue).joined(separator: "."))' should be \(t), got null")
        } catch let DecodingError.dataCorrupted(c) {
            throw EvaluationError.invalidArgument("body: \(c.codingPath.isEmpty ? "not valid JSON (or a number too large for its field)" : "field '\(c.codingPath.map(\.stringValue).joined(separator: "."))': \(c.debugDescription)")")
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    static func handle<T: Encodable>(_ status: HTTPResponse.Status = .ok, _ body: () async throws -> T) async throws -> Response {
        do {
            let value = try await body()
            if status == .noContent { return Response(status: .noContent) }
            let data = try encoder.encode(value)
            return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        } catch let e as EvaluationError {
            if e.isOverloaded {
                var r = errorResponse(.serviceUnavailable, e.message)
                r.headers[.retryAfter] = "\(retryAfterSeconds)"
                return r
            }
            let status: HTTPResponse.Status = e.isInvalidArgument ? .badRequest : e.isNotFound ? .notFound : e.isConflict ? .conflict : e.isTooLarge ? .contentTooLarge : .badGateway
            return errorResponse(status, e.message)
        } catch let e as StoreError {
            return errorResponse(e.isInvalidArgument ? .badRequest : .serviceUnavailable, e.message)
        }
    }

    static let retryAfterSeconds = 1

    /// Bounds the synchronous evaluations in flight: `limit` in all and half of it per project, so one
    /// project cannot take them all. Refuses at once rather than queueing (the caller retries).
    final class EvaluateGate: Sendable {
        static let defaultLimit = max(4, ProcessInfo.processInfo.activeProcessorCount)
        let limit: Int
        let perProject: Int
        private let state = Mutex<(total: Int, byProject: [String: Int])>((0, [:]))

        init(limit: Int) {
            self.limit = max(1, limit)
            perProject = max(1, self.limit / 2)
        }

        func enter(_ project: String) -> Bool {
            state.withLock { s in
                guard s.total < limit, s.byProject[project, default: 0] < perProject else { return false }
                s.total += 1
                s.byProject[project, default: 0] += 1
                return true
            }
        }

        func leave(_ project: String) {
            state.withLock { s in
                s.total -= 1
                let n = s.byProject[project, default: 1] - 1
                s.byProject[project] = n > 0 ? n : nil
            }
        }
    }

    static func errorResponse(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = "{\"error\":" + JSON.quote(message) + "}"
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func scoreRow(_ j: JSON) throws -> ScoreRow {
        guard let name = j["name"]?.stringValue else { throw EvaluationError.invalidArgument("scores[].name: required") }
        var value: Double?
        var dataType: ScoreDataType
        switch j["value"] {
        case .bool(let b)?: value = b ? 1 : 0; dataType = .boolean
        case .number(let d)?: value = d; dataType = .numeric
        case nil, .null?: dataType = .categorical
        default: throw EvaluationError.invalidArgument("scores[].value: a number or a boolean expected")
        }
        if let t = j["dataType"]?.stringValue {
            guard let dt = ScoreDataType(rawValue: t) else { throw EvaluationError.invalidArgument("scores[].dataType: expected numeric, categorical or boolean") }
            dataType = dt
        }
        var source = ScoreSource.api
        if let s = j["source"]?.stringValue { source = ScoreSource(rawValue: s) ?? .api }
        return ScoreRow(id: j["id"]?.stringValue ?? "", projectID: "", traceID: j["traceId"]?.stringValue ?? "", spanID: j["spanId"]?.stringValue ?? "", sessionID: j["sessionId"]?.stringValue ?? "",
                        name: name, value: value, label: j["label"]?.stringValue ?? "", dataType: dataType, source: source, comment: j["comment"]?.stringValue ?? "", createdUnixNanos: 0)
    }

    struct EvaluateRequest: Decodable {
        struct Item: Decodable {
            var input: String?
            var output: String
            var expected: String?
            var context: String?
            var latencyMs: Double?
            var costUSD: Double?
        }
        var evaluators: [String]?
        var specs: [EvaluatorSpec]?
        var items: [Item]
        var summaryOnly: Bool?
    }

    struct EvaluateResponse: Encodable {
        var results: [[EvaluationResult]]?
        var evaluations: Int
        var elapsedNs: Int64
        var evaluationsPerSecond: Double
    }

    struct RuleRequest: Decodable {
        var name: String?
        var filter: RuleFilter?
        var samplingRate: Double?
        var evaluators: [String]
        var enabled: Bool?
    }

    struct DatasetRequest: Decodable {
        var name: String
        var description: String?
        var items: [DatasetItem]?
    }

    struct DatasetWithItems: Encodable {
        var dataset: Dataset
        var items: [DatasetItem]
    }

    struct ItemsRequest: Decodable { var items: [DatasetItem] }
    struct FromTracesRequest: Decodable { var traceIds: [String] }

    struct ExperimentRequest: Decodable {
        var name: String?
        var datasetId: String
        var target: Target?
        var evaluators: [String]
        var concurrency: Int?
        /// Start a run at once (default true).
        var run: Bool?

        enum CodingKeys: String, CodingKey { case name, datasetId, target, evaluators, concurrency, run }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            datasetId = try c.decode(String.self, forKey: .datasetId)
            target = try c.decodeIfPresent(Target.self, forKey: .target)
            evaluators = try c.decode([String].self, forKey: .evaluators)
            concurrency = try c.decodeCheckedInt(.concurrency, field: "concurrency")
            run = try c.decodeIfPresent(Bool.self, forKey: .run)
        }
    }

    struct ExperimentResponse: Encodable {
        var experiment: Experiment
        var run: Run?
    }

    struct WebhookRequest: Decodable {
        var url: String
        var secret: String?
        var events: [String]?
    }
}
