import EvalForgeCore
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle

/// The collector as a runnable application: receiver, health and metrics endpoints, and the
/// forwarder service. `evalforge collector` runs it; the backend's dev mode hosts it in-process.
public enum CollectorApp {
    /// Opens the WAL (replaying what was not acknowledged), then builds the HTTP app with the
    /// forwarder added as a service.
    public static func build(
        configuration: CollectorConfiguration,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        logger: Logger = Logger(label: "evalforge.collector")
    ) throws -> (app: some ApplicationProtocol, pipeline: CollectorPipeline) {
        try configuration.validateAuth()
        switch configuration.authMode {
        case .key: logger.info("OTLP needs a key with the 'ingest' scope of this collector's project (auth.mode key)")
        case .open where CollectorConfiguration.isLoopback(configuration.host):
            logger.notice("auth.mode open: OTLP is accepted without a key (loopback only)", metadata: ["host": "\(configuration.host)"])
        case .open:
            logger.warning("auth.mode open FORCED on a non-loopback address: anyone who can reach it may send OTLP without a key", metadata: ["host": "\(configuration.host)"])
        }
        let factory = PrometheusMetricsFactory(registry: registry)
        let pipeline = try CollectorPipeline(configuration: configuration, metricsFactory: factory, logger: logger)
        let outbox = try Outbox(directory: configuration.queueDirectory + "/outbox")
        let skip = outbox.pending().map(\.lastSeq).max() ?? 0
        let replayed = try pipeline.replay(skipThrough: skip)
        if replayed > 0 { logger.info("replayed WAL records", metadata: ["records": "\(replayed)"]) }
        let forwarder = Forwarder(pipeline: pipeline, outbox: outbox, logger: logger)
        var services: [any Service] = [forwarder]
        if configuration.backendURLs.count > 1 {
            services.append(BackendHealthService(pool: pipeline.forwarding.backends, interval: configuration.healthInterval, timeout: configuration.healthTimeout, logger: logger))
        }
        if case .interval(let every)? = configuration.fsyncPolicy {
            services.append(WALSyncService(wal: pipeline.wal, interval: every))
        }
        if let operatorPort = configuration.operatorPort {
            services.append(Application(
                router: buildOperatorRouter(pipeline: pipeline, registry: registry),
                configuration: .init(address: .hostname(configuration.operatorHost, port: operatorPort), serverName: "evalforge-collector-operator"),
                logger: logger))
        }
        let router = buildRouter(pipeline: pipeline)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "evalforge-collector"),
            services: services,
            logger: logger)
        return (app, pipeline)
    }

    /// The receiver: `POST /v1/traces` and a bare liveness `/healthz`, behind the Host/Origin check.
    static func buildRouter(pipeline: CollectorPipeline) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: HostCheckMiddleware(allow: HostAllowList(configuration: pipeline.configuration), refused: pipeline.metrics.requestsRefusedAuth))
        let keys = KeyChecker(configuration: pipeline.configuration, forwardKey: { [forwarding = pipeline.forwarding] in forwarding.apiKey })
        OTLPTraceController(pipeline: pipeline, keys: keys).addRoutes(to: router)
        // Liveness and readiness for load balancers, with the version but no counters (those are on
        // the operator listener). Not ready while the WAL is full (spans would be refused with 503).
        let version = "\"\(EvalForgeVersion.release)\""  // our own constant: no escaping needed
        router.get("/healthz") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\",\"version\":\(version)}")))
        }
        router.get("/readyz") { _, _ -> Response in
            let ready = pipeline.statistics.ready
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\(ready ? "\"ready\"" : "\"not ready\""),\"version\":\(version)}")))
        }
        return router
    }

    /// The operator listener (`operator.port`, loopback by default): `/healthz` with every counter and
    /// the degraded reason, `/metrics` in Prometheus text. They need no key, so they are not public.
    static func buildOperatorRouter(pipeline: CollectorPipeline, registry: PrometheusCollectorRegistry) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthz") { _, _ -> Response in
            let s = pipeline.statistics
            let data = (try? JSONEncoder().encode(s)) ?? Data()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        // Readiness: 503 while the WAL is full (spans would be refused with 503), the same body.
        // A collector whose backends are down stays ready: it queues (`status` says "degraded").
        router.get("/readyz") { _, _ -> Response in
            let s = pipeline.statistics
            let data = (try? JSONEncoder().encode(s)) ?? Data()
            return Response(status: s.ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/metrics") { _, _ -> Response in
            let s = pipeline.statistics
            pipeline.metrics.queueDepth.record(s.queueDepthRecords)
            pipeline.metrics.queueBytes.record(s.queueBytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        return router
    }
}
