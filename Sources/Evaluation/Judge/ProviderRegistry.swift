import AsyncHTTPClient
import EvalForgeCore
import EvalForgeCrypto
import Logging
import Synchronization

/// One `ProviderClient` per (project, provider name, configuration): runs and online rules that use
/// the same provider share its concurrency cap, rate limit and circuit breaker.
final class ProviderRegistry: Sendable {
    private let repo: EvalRepository
    private let http: OutboundHTTP
    private let priceTable: PriceTable
    private let logger: Logger
    private let clients = Mutex<[String: ProviderClient]>([:])
    /// Swift evaluators registered with `EvaluationService.register(_:)`, by name.
    let custom = Mutex<[String: any Evaluator]>([:])
    /// Rate limits on evaluations and judge usage (the backend's tiers); nil: none.
    let usageGate: (any EvaluationUsageGate)?

    init(repo: EvalRepository, http: OutboundHTTP, priceTable: PriceTable = .builtIn, usageGate: (any EvaluationUsageGate)? = nil, logger: Logger) {
        self.usageGate = usageGate
        self.repo = repo
        self.http = http
        self.priceTable = priceTable
        self.logger = logger
    }

    /// The clients of the named providers that exist in the project.
    func clients(projectID: String, names: Set<String>) async throws -> [String: ProviderClient] {
        guard !names.isEmpty else { return [:] }
        let configs = try await repo.providers(projectID).filter { names.contains($0.name) }
        return clients.withLock { cache in
            var out: [String: ProviderClient] = [:]
            for c in configs {
                let key = projectID + "\u{0}" + encodeJSON(c)
                if let existing = cache[key] { out[c.name] = existing; continue }
                let client = ProviderClient(config: c, http: http, priceTable: priceTable, logger: logger)
                cache[key] = client
                out[c.name] = client
            }
            return out
        }
    }

    /// Builds evaluators from specs, resolving judge providers.
    func build(projectID: String, specs: [VersionedSpec]) async throws -> [any Evaluator] {
        let names = Set(specs.compactMap { $0.spec.isJudge ? $0.spec.provider : nil })
        let clients = try await clients(projectID: projectID, names: names)
        let custom = self.custom.withLock { $0 }
        let built: [any Evaluator] = try specs.map { s in
            if s.spec.type == "custom" {
                guard let e = custom[s.spec.name] else { throw EvaluationError.notFound("custom evaluator '\(s.spec.name)' is not registered in this process") }
                return e
            }
            return try s.spec.build(version: s.version, providers: { clients[$0] })
        }
        // Judges and custom evaluators count against the project's evaluation and judge budgets;
        // heuristics run locally in microseconds and stay on their inline path.
        guard let gate = usageGate else { return built }
        return built.map { e in e is any HeuristicEvaluator ? e : GatedEvaluator(inner: e, gate: gate, projectID: projectID) }
    }
}
