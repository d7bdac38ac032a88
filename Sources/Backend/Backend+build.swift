import EvalForgeIngest
import EvalForgeModel
import EvalForgeStore
import Evaluation
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The backend as a runnable application: ingest (`/v1/batches`, `/v1/traces`), the query API and
/// evaluation API under `/api`, the web UI, `/healthz`, and `/metrics` when given a registry. `evalforge backend` runs it; `evalforge dev`
/// hosts it next to the collector and the mock LLM. `configuration.roles` selects what one process
/// serves and runs (docs/deployment.md, "Roles").
public enum BackendApp {
    /// Opens the stores (migrating their schemas), ensures the default project (and the bootstrap
    /// key, when configured) exists, and builds the HTTP application with its background services.
    /// `closesStoreAtShutdown`: the process owns the store and closes it after graceful shutdown
    /// (the executables); tests that read the store after the application stopped pass false.
    public static func build(
        configuration: BackendConfiguration,
        logger: Logger = Logger(label: "evalforge.backend"),
        metricsRegistry: PrometheusCollectorRegistry? = nil,
        additionalServices: [any Service] = [],
        closesStoreAtShutdown: Bool = true
    ) async throws -> (app: some ApplicationProtocol, services: BackendServices) {
        let services = try await makeServices(configuration: configuration, logger: logger)
        let router = buildRouter(services: services)
        var background: [any Service] = closesStoreAtShutdown ? [StoreCloseService(store: services.store, metadata: services.metadata)] : []  // first: stopped last
        if let operatorPort = configuration.operatorPort {
            background.append(Application(
                router: buildOperatorRouter(services: services, metricsRegistry: metricsRegistry),
                configuration: .init(address: .hostname(configuration.operatorHost, port: operatorPort), serverName: "evalforge-backend-operator"),
                logger: logger))
            logger.info("operator listener (/metrics, /healthz details)", metadata: ["address": "http://\(configuration.operatorHost):\(operatorPort)"])
        }
        // Every role keeps caches another backend's changes must reach.
        background.append(CacheGenerationService(
            metadata: services.metadata, interval: .milliseconds(min(max(100, configuration.cacheGenerationPollMilliseconds), 60_000)),
            forget: CacheGenerationService.forgetting(services), logger: logger))
        background += workerServices(services: services)
        background += additionalServices
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "evalforge-backend"),
            services: background,
            onServerRunning: { _ in },
            logger: logger)
        return (app, services)
    }

    /// The background work of the worker role, none without it: the evaluation runner's services
    /// (runs, webhook delivery, online evaluation), retention, and on ClickHouse the trace summary
    /// repair. Backends without the worker role still queue work (runs started through the API,
    /// spans matching online rules) in the metadata database, where workers claim it.
    static func workerServices(services: BackendServices) -> [any Service] {
        let configuration = services.configuration
        guard configuration.roles.contains(.worker) else { return [] }
        var out = services.evaluation.services
        out.append(RetentionService(store: services.store, projects: services.projects, interval: .seconds(max(60, configuration.retentionIntervalSeconds)), defaultDays: configuration.defaultRetentionDays, logger: services.logger))
        if let store = services.store as? ClickHouseStore {
            out.append(TraceSummaryRepairService(
                store: store, interval: .seconds(min(max(1, configuration.traceSummaryRepairIntervalSeconds), 86_400)),
                settle: .seconds(min(max(0, configuration.traceSummaryRepairSettleSeconds), 86_400)), logger: services.logger))
        }
        return out
    }

    /// Opens and migrates the stores and the evaluation runner without an HTTP server.
    public static func makeServices(configuration: BackendConfiguration, logger: Logger) async throws -> BackendServices {
        let metadata: any MetadataDatabase
        if var pg = configuration.postgres {
            pg.localDirectory = pg.localDirectory ?? configuration.dataDirectory
            metadata = try await PostgresMetadataDatabase(configuration: pg, logger: logger)
        } else {
            metadata = try SQLiteDatabase(path: configuration.metadataPath)
        }
        let projects = ProjectStore(db: metadata)
        try await projects.migrate()
        let sessionStore = SessionStore(db: metadata)
        try await sessionStore.migrate()
        let rateLimitStore = RateLimitStore(db: metadata)
        try await rateLimitStore.migrate()
        let rateLimiter = RateLimiter(store: rateLimitStore, tiers: configuration.rateLimits, logger: logger)
        let store: any SpanStore
        if let ch = configuration.clickHouse {
            store = try await ClickHouseStore(configuration: ch, logger: logger)
        } else {
            store = try SQLiteStore(path: configuration.telemetryPath, logger: logger)
        }
        // A store that connected is closed before any later failure is thrown (the ClickHouse store
        // owns an HTTP client that must be shut down, not dropped).
        do {
            try await store.migrate()
            if try await projects.project(id: configuration.defaultProjectID) == nil {
                try await projects.upsert(Project(id: configuration.defaultProjectID, name: configuration.defaultProjectID))
            }
            if let key = configuration.bootstrapAPIKey {
                try await projects.addKey(key, projectID: configuration.defaultProjectID, name: "bootstrap")
            }
            let generatedAdminToken = try await projects.ensureAdminToken(configured: configuration.adminToken)
            let outbound = try configuration.outboundPolicy()
            if !outbound.allowListText.isEmpty {
                logger.notice("outbound calls (webhooks, http targets, providers) may reach the allow-listed non-public addresses", metadata: ["allow": "\(outbound.allowListText)"])
            }
            var evaluationSettings = EvaluationSettings(onlineQueuePerProject: configuration.onlineQueuePerProject, outbound: outbound)
            evaluationSettings.secrets = try configuration.secretsKeyring(logger: logger)
            evaluationSettings.leases.duration = .seconds(min(max(1, configuration.workLeaseSeconds), 3600))
            evaluationSettings.priceTable = configuration.priceTable
            if configuration.rateLimits.enabled { evaluationSettings.usageGate = RateLimitEvaluationGate(limiter: rateLimiter) }
            let evaluation = try await EvaluationService(store: store, metadata: metadata, logger: logger, settings: evaluationSettings)
            let ingest = IngestService(store: store, evaluation: evaluation, maxInflight: configuration.maxInflightIngest, logger: logger)
            logger.info("backend storage ready", metadata: ["store": "\(store.description)", "metadata": "\(metadata.location)", "roles": "\(configuration.roles)"])
            var services = BackendServices(configuration: configuration, store: store, metadata: metadata, projects: projects, sessions: UISessions(store: sessionStore, configuration: configuration),
                                           ingest: ingest, evaluation: evaluation, logger: logger, rateLimiter: rateLimiter)
            services.generatedAdminToken = generatedAdminToken
            return services
        } catch {
            await store.shutdown()
            if metadata.dialect == .postgres { await metadata.shutdown() }
            throw error
        }
    }

    /// The operator listener's routes (`configuration.operatorPort`, loopback by default): `/healthz`
    /// and `/readyz` with the store's address, `/metrics` with the Prometheus exposition of
    /// `metricsRegistry` — the registry the executable bootstrapped swift-metrics with. They need no
    /// key, so they are not on the public port.
    public static func buildOperatorRouter(services: BackendServices, metricsRegistry: PrometheusCollectorRegistry?) -> Router<BasicRequestContext> {
        let router = Router()
        let readiness = BackendReadiness(store: services.store, metadata: services.metadata, roles: services.configuration.roles)
        let liveness = readiness.livenessJSON(includingStore: true)
        router.get("/healthz") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: liveness)))
        }
        router.get("/readyz") { _, _ -> Response in
            let report = await readiness.check()
            return Response(status: report.ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(string: readiness.readinessJSON(report, includingStore: true))))
        }
        if let metricsRegistry {
            router.get("/metrics") { _, _ -> Response in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metricsRegistry.emitToBuffer())))
            }
        }
        return router
    }

    /// Routes: public (liveness `/healthz` and readiness `/readyz` for load balancers, with the
    /// versions and roles but not the store's address, and the UI, whose pages handle their login), ingest
    /// behind `APIKeyMiddleware`, and `/api` behind `SessionMiddleware` (a UI session with its CSRF
    /// header) then `APIKeyMiddleware`. Metrics and health details are on the operator listener
    /// (`buildOperatorRouter`). Only the routes of `configuration.roles` are registered; a request
    /// for another role's route is answered 404 naming that role (`RoleGateMiddleware`).
    public static func buildRouter(services: BackendServices) -> Router<BackendRequestContext> {
        let router = Router(context: BackendRequestContext.self)
        let roles = services.configuration.roles
        // First, so it also answers paths whose routes this backend does not register.
        if roles != .all { router.add(middleware: RoleGateMiddleware(roles: roles)) }
        let readiness = BackendReadiness(store: services.store, metadata: services.metadata, roles: roles)
        let liveness = readiness.livenessJSON(includingStore: false)
        router.get("/healthz") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: liveness)))
        }
        // Readiness: 503 naming what cannot take writes (BackendReadiness).
        router.get("/readyz") { _, _ -> Response in
            let report = await readiness.check()
            return Response(status: report.ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(string: readiness.readinessJSON(report, includingStore: false))))
        }
        if roles.contains(.query) { WebUI.addRoutes(to: router, services: services) }

        // One middleware per concern: who (a UI session with its CSRF header on /api, else a key or
        // the admin token), may they (the route's scope, RoutePolicy), record it (audit).
        let keyAuth = APIKeyMiddleware(projects: services.projects)
        let rateLimit = RateLimitMiddleware(limiter: services.rateLimiter)
        if roles.contains(.ingest) {
            let authed = router.group().add(middleware: keyAuth).add(middleware: rateLimit).add(middleware: ScopeMiddleware()).add(middleware: AuditMiddleware(projects: services.projects))
            BatchIngestController(ingest: services.ingest, maxBodyBytes: services.configuration.maxBodyBytes).addRoutes(to: authed)
            OTLPIngestController(ingest: services.ingest, normalizer: GenAINormalizer(priceTable: services.configuration.priceTable), maxBodyBytes: services.configuration.maxBodyBytes).addRoutes(to: authed)
        }
        guard roles.contains(.query) || roles.contains(.ingest) else { return router }
        let api = router.group("api").add(middleware: SessionMiddleware(sessions: services.sessions, mode: .api)).add(middleware: keyAuth)
            .add(middleware: rateLimit).add(middleware: ScopeMiddleware()).add(middleware: AuditMiddleware(projects: services.projects))
        // The collectors' key check goes where their batches go.
        AuthCheckRoutes.addRoutes(to: api)
        guard roles.contains(.query) else { return router }
        UsageController(store: services.store).addRoutes(to: api)
        QueryRoutes.addRoutes(to: api, services: services)
        EvaluationRoutes.addRoutes(to: api, services: services)
        AdminRoutes.addRoutes(to: api.group("admin"), services: services)
        RateLimitRoutes.addUsageRoutes(to: api, services: services)
        RateLimitRoutes.addAdminRoutes(to: api.group("admin"), services: services)
        return router
    }
}
