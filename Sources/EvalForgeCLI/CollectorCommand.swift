import ArgumentParser
import Collector
import EvalForgeCore
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus

/// `evalforge collector`: the per-host sidecar.
struct CollectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collector",
        abstract: "Run the per-host collector: receive OTLP, normalize, deduplicate, aggregate, tail-sample, and forward durably to the backend.",
        discussion: """
            Settings come from --config (YAML; every key is in docs/collector-configuration.md), then \
            EVALFORGE_COLLECTOR_* environment variables, then these flags. Accepted spans are written to the \
            write-ahead log under --queue-dir before the client is acknowledged; after a crash they are \
            replayed and forwarded exactly once.
            """)

    @Option(help: "YAML configuration file.")
    var config: String?

    @Option(help: "Receiver host (default 127.0.0.1).")
    var host: String?

    @Option(help: "Receiver port for OTLP/HTTP (default 4318).")
    var port: Int?

    @Option(help: "Backend base URL; batches go to <url>/v1/batches of a healthy one. Repeat it (or give a comma-separated list) for several backends (default http://127.0.0.1:3000).")
    var backendURL: [String] = []

    @Option(help: "Write-ahead log directory (default data/collector-wal).")
    var queueDir: String?

    @Option(help: "fsync policy: always, never or interval:<ms> (default always).")
    var fsync: String?

    @Option(help: "Fraction of uninteresting traces kept, 0…1 (default 1.0).")
    var samplingRatio: Double?

    @Option(help: "JSON price file (docs/sdk.md, \"Prices\"): cost of spans without one, the same file as the SDK's and the backend's (env EVALFORGE_PRICE_FILE).")
    var priceFile: String?

    @Option(help: "Operator listener port: /metrics and the detailed /healthz, which need no key (default 13133; 0: any free port; env EVALFORGE_COLLECTOR_OPERATOR_PORT). Keep it private.")
    var operatorPort: Int?

    @Option(help: "Operator listener host (default 127.0.0.1).")
    var operatorHost: String?

    @Flag(help: "Accept OTLP without a key (auth.mode open). Only on a loopback address unless --force-open.")
    var open = false

    @Flag(help: "Allow --open (auth.mode open) on a non-loopback address: anyone who reaches it may send.")
    var forceOpen = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// The configuration from --config, the environment and the flags (read again on SIGHUP).
    func loadConfiguration() throws -> CollectorConfiguration {
        var c = CollectorConfiguration.default
        do {
            if let config {
                guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                    throw ValidationError("--config \(config): cannot read the file")
                }
                try c.apply(yaml: text)
            }
            try c.apply(environment: ProcessInfo.processInfo.environment)
            if let host { c.host = host }
            if let port { c.port = port }
            if !backendURL.isEmpty { c.backendURLs = backendURL.flatMap(CollectorConfiguration.urlList) }
            if let queueDir { c.queueDirectory = queueDir }
            if let fsync { c.fsync = fsync }
            if let operatorPort { c.operatorPort = operatorPort }
            if let operatorHost { c.operatorHost = operatorHost }
            if c.operatorPort == nil { c.operatorPort = 13133 }
            if open { c.authMode = .open }
            if forceOpen { c.forceOpen = true }
            if let path = priceFile ?? ProcessInfo.processInfo.environment["EVALFORGE_PRICE_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
                do { c.priceTable = try PriceFile.load(path: path) } catch { throw ValidationError("--price-file / EVALFORGE_PRICE_FILE: \(error.message)") }
            }
            if let samplingRatio {
                guard (0...1).contains(samplingRatio) else { throw ValidationError("--sampling-ratio \(samplingRatio): expected a number between 0 and 1") }
                c.sampling.ratio = samplingRatio
            }
            try c.validate()
            try c.validateAuth()
        } catch let e as CollectorError {
            throw ValidationError(e.message)
        }
        return c
    }

    func run() async throws {
        let c = try loadConfiguration()
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level \(logLevel): expected trace, debug, info, notice, warning, error or critical") }
        var logger = Logger(label: "evalforge.collector")
        logger.logLevel = level
        let registry = PrometheusCollectorRegistry()
        let (app, pipeline) = try CollectorApp.build(configuration: c, registry: registry, logger: logger)
        // SIGHUP re-reads the configuration and applies forward.api_key (a rotated key: forwarding
        // held by 401/403 resumes at the next retry); other settings need a restart.
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { [self] in
            do {
                let reloaded = try loadConfiguration()
                pipeline.reload(apiKey: reloaded.apiKey)
                logger.notice("configuration reloaded on SIGHUP (forward.api_key applied; other settings need a restart)")
            } catch {
                logger.error("SIGHUP: the configuration is invalid; keeping the current one", metadata: ["error": "\(error)"])
            }
        }
        hangup.resume()
        defer { hangup.cancel() }
        logger.info("collector listening", metadata: ["address": "\(c.host):\(c.port)", "operator": "\(c.operatorHost):\(c.operatorPort ?? 0)", "backends": "\(c.backendURLs.joined(separator: ","))", "queue": "\(c.queueDirectory)", "fsync": "\(c.fsync)", "auth": "\(c.authMode.rawValue)"])
        try await app.runService()
    }
}
