import ArgumentParser
import AsyncHTTPClient
import Backend
import Collector
import EvalForgeCore
import EvalForgeCrypto
import EvalForgeSDK
import Evaluation
import Foundation
import Hummingbird
import Logging
import MockLLM
import Prometheus
import ServiceLifecycle

/// `evalforge dev`: the whole product in one process — mock LLM, collector, backend on SQLite.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run everything in one process: mock LLM (:8080), collector (OTLP :4318) and backend with API and UI (:3000).",
        discussion: """
            Data lives under --data-dir (SQLite, the collector's queue) and survives restarts. A default project \
            and API key are created; --api-key chooses the key, otherwise one is generated on the first run, kept in \
            <data-dir>/dev-api-key and printed. --clickhouse-url stores telemetry in ClickHouse instead. \
            --demo sends realistic traffic through the SDK once everything is up. Ctrl-C stops cleanly.
            """)

    @Option(help: "Directory for all data.")
    var dataDir = "data"

    @Option(help: "API key of the default project (default: generated once and kept in <data-dir>/dev-api-key).")
    var apiKey: String?

    @Option(help: "Store telemetry in ClickHouse at this HTTP URL instead of SQLite.")
    var clickhouseURL: String?

    @Option(help: "Backend (API and UI) port.")
    var port = 3000

    @Option(help: "Collector OTLP/HTTP port.")
    var otlpPort = 4318

    @Option(help: "Operator port of the backend (/metrics, /healthz details); the collector's is this + 1. Loopback only.")
    var operatorPort = 3001

    @Option(help: "Mock LLM port.")
    var llmPort = 8080

    @Option(help: "Mock LLM time to first token: none, fixed:MS, uniform:MIN-MAX or lognormal:p50=MS,p95=MS.")
    var llmLatency = "uniform:20-150"

    @Flag(help: "Send a demo workload through the SDK once everything is up.")
    var demo = false

    @Option(help: "Traces the demo workload sends.")
    var demoTraces = 500

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "notice"

    func validate() throws {
        for (name, p) in [("--port", port), ("--otlp-port", otlpPort), ("--llm-port", llmPort)] where !(1...65535).contains(p) {
            throw ValidationError("\(name) \(p): expected 1…65535")
        }
        guard (1...65534).contains(operatorPort) else { throw ValidationError("--operator-port \(operatorPort): expected 1…65534") }
        guard Set([port, otlpPort, llmPort, operatorPort, operatorPort + 1]).count == 5 else { throw ValidationError("--port, --otlp-port, --llm-port, --operator-port and --operator-port + 1 must differ") }
        guard LatencyModel(llmLatency) != nil else { throw ValidationError("--llm-latency '\(llmLatency)': expected none, fixed:MS, uniform:MIN-MAX or lognormal:p50=MS,p95=MS") }
        guard demoTraces > 0 else { throw ValidationError("--demo-traces must be at least 1") }
        if let apiKey, apiKey.utf8.count < 8 { throw ValidationError("--api-key must be at least 8 characters") }
    }

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level \(logLevel): expected trace, debug, info, notice, warning, error or critical") }
        var logger = Logger(label: "evalforge.dev")
        logger.logLevel = level
        do { try OwnerOnlyFiles.createDirectory(dataDir) } catch { throw ValidationError(error.message) }
        let key = try apiKey ?? Self.persistentKey(dataDir: dataDir, file: "dev-api-key", prefix: "ef_dev_")

        var environment = ProcessInfo.processInfo.environment
        environment["EVALFORGE_ROLE"] = nil  // dev is one process doing everything
        var backendConfig = try BackendConfigurationLoader.load(environment: environment, host: "127.0.0.1", port: port, dataDir: dataDir, clickhouseURL: clickhouseURL, apiKey: key)
        backendConfig.bootstrapAPIKey = key
        backendConfig.operatorPort = operatorPort
        // Dev keeps the admin token beside the key (printed in the banner at every start) unless
        // EVALFORGE_ADMIN_TOKEN sets it.
        if backendConfig.adminToken == nil { backendConfig.adminToken = try Self.persistentKey(dataDir: dataDir, file: "dev-admin-token", prefix: "efadmin_dev_") }
        // Dev runs on one machine: judges may call the mock LLM (and local models) on loopback unless
        // EVALFORGE_OUTBOUND_ALLOW says otherwise; the backend's and the collector's own ports stay refused.
        if ProcessInfo.processInfo.environment["EVALFORGE_OUTBOUND_ALLOW"] == nil {
            backendConfig.outboundAllowList = "127.0.0.0/8,::1,localhost"
            logger.notice("dev mode: webhooks, http targets and providers may reach loopback addresses (the mock LLM on :\(llmPort)); set EVALFORGE_OUTBOUND_ALLOW to change it")
        }
        backendConfig.outboundProtected = [.init(host: "127.0.0.1", port: otlpPort, what: "the dev collector's OTLP listener")]
        let (backend, services) = try await BackendApp.build(configuration: backendConfig, logger: logger, metricsRegistry: MetricsBootstrap.prometheus())

        var collectorConfig = CollectorConfiguration.default
        collectorConfig.port = otlpPort
        collectorConfig.queueDirectory = dataDir + "/collector-wal"
        collectorConfig.backendURL = "http://127.0.0.1:\(port)"
        collectorConfig.apiKey = key
        // The collector's default, durable policy: acknowledged spans survive a power loss (group
        // commit keeps it cheap; issue 14).
        collectorConfig.fsync = "always"
        collectorConfig.collectorID = "dev"
        collectorConfig.operatorPort = operatorPort + 1
        // Dev listens on loopback only: OTLP needs no key there (auth.mode open), and says so.
        collectorConfig.authMode = .open
        logger.notice("dev mode: the collector accepts OTLP without a key (auth.mode open, loopback only); spans naming another project than the dev key's are refused")
        try? collectorConfig.validate()
        let (collector, _) = try CollectorApp.build(configuration: collectorConfig, registry: PrometheusCollectorRegistry(), logger: logger)

        var mockConfig = MockLLMConfiguration.default
        mockConfig.port = llmPort
        mockConfig.latency = LatencyModel(llmLatency) ?? .none
        mockConfig.interChunkDelay = .milliseconds(5)
        let mock = buildMockLLMApplication(configuration: mockConfig, logger: logger)

        var serviceList: [any Service] = [backend, collector, mock]
        let banner = DevBanner(port: port, otlpPort: otlpPort, llmPort: llmPort, operatorPort: operatorPort, key: key, adminToken: backendConfig.adminToken ?? "", store: services.store.description, demo: demo, demoTraces: demoTraces, logger: logger)
        serviceList.append(banner)
        let group = ServiceGroup(configuration: .init(services: serviceList, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        say("evalforge dev: stopped; data kept in \(dataDir)")
    }

    /// A dev secret (the API key, the admin token): read from `<dataDir>/<file>`, or generated and
    /// written there (owner-only) on first run.
    static func persistentKey(dataDir: String, file: String, prefix: String) throws -> String {
        let path = dataDir + "/" + file
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let k = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if k.utf8.count >= 16 || (k.utf8.count >= 8 && file == "dev-api-key") {
                do { try OwnerOnlyFiles.narrowIfExists(path) } catch { throw ValidationError(error.message) }
                return k
            }
        }
        let k = prefix + Digest.hex(Digest.randomBytes(16))
        do {
            try OwnerOnlyFiles.write(Array(k.utf8), to: path)
        } catch {
            throw ValidationError("cannot write the generated secret to \(path): \(error.message)")
        }
        return k
    }
}

/// Waits until the three servers answer, prints where everything is, and optionally runs the demo
/// workload; then idles until shutdown.
struct DevBanner: Service {
    let port: Int
    let otlpPort: Int
    let llmPort: Int
    let operatorPort: Int
    let key: String
    let adminToken: String
    let store: String
    let demo: Bool
    let demoTraces: Int
    let logger: Logger

    func run() async throws {
        let ready = await Self.waitForHealth(urls: ["http://127.0.0.1:\(port)/healthz", "http://127.0.0.1:\(otlpPort)/healthz"])
        say("""

            EvalForge dev is running\(ready ? "" : " (some servers did not answer /healthz yet)")
              UI and API    http://127.0.0.1:\(port)/        (sign in with the API key)
              OTLP/HTTP     http://127.0.0.1:\(otlpPort)/v1/traces   (open: no key needed, loopback only)
              Mock LLM      http://127.0.0.1:\(llmPort)/v1/chat/completions · /v1/messages
              Operators     http://127.0.0.1:\(operatorPort)/metrics (backend) · http://127.0.0.1:\(operatorPort + 1)/metrics (collector)
              API key       \(key)
              Admin token   \(adminToken)   (evalforge admin …, with EVALFORGE_ADMIN_TOKEN)
              Storage       \(store)
            Send traffic:   swift run evalforge seed --traces 1000
            Stop:           Ctrl-C

            """)
        if demo {
            var config = EvalForge.Configuration.default
            config.serviceName = "acme-assistant"
            config.exporter.endpoint = "http://127.0.0.1:\(otlpPort)/v1/traces"
            config.content.capture = true
            let pipeline = try EvalForge.bootstrap(config)
            async let exportLoop: Void = pipeline.run()
            do {
                let workload = try SeedWorkload(llmURL: "http://127.0.0.1:\(llmPort)")
                let (errors, seconds) = await SeedRunner.run(workload, count: demoTraces, concurrency: 16, progress: true, label: "demo")
                await pipeline.forceFlush(timeout: .seconds(10))
                say(String(format: "demo: %d traces in %.1f s (%d with an injected failure); open http://127.0.0.1:%d/", demoTraces, seconds, errors, port))
            } catch {
                logger.error("demo workload failed", metadata: ["error": "\(error)"])
            }
            await pipeline.shutdown()
            try? await exportLoop
        }
        try? await gracefulShutdown()
    }

    static func waitForHealth(urls: [String]) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(30)
        var pending = urls
        while !pending.isEmpty, ContinuousClock.now < deadline {
            var still: [String] = []
            for u in pending {
                var request = HTTPClientRequest(url: u)
                request.method = .GET
                let status = try? await HTTPClient.shared.execute(request, timeout: .seconds(1)).status
                if status != .ok { still.append(u) }
            }
            pending = still
            if !pending.isEmpty { try? await Task.sleep(for: .milliseconds(200)) }
        }
        return pending.isEmpty
    }
}
