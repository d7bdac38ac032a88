import ArgumentParser
import Backend
import EvalForgeCore
import EvalForgeCrypto
import Evaluation
import EvalForgeStore
import Foundation
import Hummingbird
import Logging

/// `evalforge backend`: ingest, storage, query API, web UI and evaluation runner.
struct BackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backend",
        abstract: "Run the backend: receive collector batches and OTLP, store them, serve the API and the web UI, run evaluations.",
        discussion: """
            Telemetry goes to ClickHouse when --clickhouse-url (or EVALFORGE_CLICKHOUSE_URL) is set, otherwise to an \
            embedded SQLite file under --data-dir. Projects, API keys, datasets and evaluation runs always live in \
            <data-dir>/evalforge-meta.sqlite. Every setting is listed in docs/backend-configuration.md.
            """)

    @Option(help: "What this backend serves and runs: ingest (/v1/batches, /v1/traces), query (API, export, UI, evaluation and admin API), worker (evaluation runs, webhooks, online evaluation, retention, trace summary repair), all, or a comma list such as ingest,query (default all; env EVALFORGE_ROLE). docs/deployment.md, \"Roles\".")
    var role: String?

    @Option(help: "Listen host (default 127.0.0.1; env EVALFORGE_BACKEND_HOST).")
    var host: String?

    @Option(help: "Listen port for ingest, API and UI (default 3000; env EVALFORGE_BACKEND_PORT).")
    var port: Int?

    @Option(help: "Operator listener port: /metrics and the detailed /healthz, which need no key (default 3001; env EVALFORGE_OPERATOR_PORT). Keep it private.")
    var operatorPort: Int?

    @Option(help: "Operator listener host (default 127.0.0.1; env EVALFORGE_OPERATOR_HOST).")
    var operatorHost: String?

    @Option(help: "Directory of the SQLite files (default data; env EVALFORGE_DATA_DIR).")
    var dataDir: String?

    @Option(help: "ClickHouse HTTP URL, e.g. http://127.0.0.1:8123 (env EVALFORGE_CLICKHOUSE_URL). Without it: embedded SQLite.")
    var clickhouseURL: String?

    @Option(help: "ClickHouse database (default evalforge; env EVALFORGE_CLICKHOUSE_DATABASE).")
    var clickhouseDatabase: String?

    @Option(help: "ClickHouse cluster (from the servers' remote_servers; env EVALFORGE_CLICKHOUSE_CLUSTER): tables are created ON CLUSTER as Replicated tables on every shard with Distributed tables over them (docs/storage.md, \"Cluster\"). Without it: one server.")
    var clickhouseCluster: String?

    @Option(help: "With --clickhouse-cluster: a cluster in remote_servers naming one replica of each shard, on which deletes (retention, project deletion) run ON CLUSTER; replication takes them to the other replicas. On 18.16 set it: run on every replica, the DDL worker can die when two replicas race (env EVALFORGE_CLICKHOUSE_MUTATION_CLUSTER; docs/storage.md, \"Cluster\").")
    var clickhouseMutationCluster: String?

    @Option(help: "Postgres for metadata (projects, keys, evaluations, the online queue), e.g. postgres://evalforge@db:5432/evalforge (env EVALFORGE_POSTGRES_URL). Without it: the SQLite metadata file in --data-dir. Telemetry storage is unchanged (docs/storage.md, \"Postgres metadata\").")
    var postgresURL: String?

    @Option(help: "Postgres connections (and transaction threads) at most, 1…256 (default 8; env EVALFORGE_POSTGRES_POOL_SIZE).")
    var postgresPoolSize: Int?

    @Option(help: "API key registered for the default project at start-up (env EVALFORGE_API_KEY).")
    var apiKey: String?

    @Option(help: "Non-public addresses webhooks, http targets and providers may reach, comma-separated: 10.0.0.0/8,llm.internal:8000,[::1]:8080 (env EVALFORGE_OUTBOUND_ALLOW; default: public addresses only).")
    var outboundAllow: String?

    @Option(help: "File holding the instance admin token (env EVALFORGE_ADMIN_TOKEN; default: generated at the first start and printed once).")
    var adminTokenFile: String?

    @Option(help: "Web UI sessions end after this many seconds without use (default 43200 = 12 h; env EVALFORGE_SESSION_IDLE_S).")
    var sessionIdle: Int?

    @Option(help: "Web UI sessions end this many seconds after sign-in (default 604800 = 7 days; env EVALFORGE_SESSION_MAX_S).")
    var sessionMax: Int?

    @Flag(help: "Trust X-Forwarded-Proto and X-Forwarded-For from the reverse proxy in front (env EVALFORGE_TRUST_PROXY=1). Only when every request comes through it.")
    var trustProxy = false

    @Flag(help: "Mark cookies Secure on every answer: HTTPS is terminated in front (env EVALFORGE_SECURE_COOKIES=1).")
    var secureCookies = false

    @Option(help: "File with the secrets key (32 random bytes, base64: openssl rand -base64 32) that seals provider keys and webhook secrets at rest (env EVALFORGE_SECRETS_KEY_FILE, or the key itself in EVALFORGE_SECRETS_KEY; default <data-dir>/secrets.key, generated). See docs/security.md.")
    var secretsKeyFile: String?

    @Option(help: "File with an earlier secrets key (repeatable; env EVALFORGE_SECRETS_OLD_KEY_FILES, comma-separated): secrets sealed with it are sealed again with the current key at start-up (rotation).")
    var secretsOldKeyFile: [String] = []

    @Option(help: "JSON price file (docs/sdk.md, \"Prices\"): cost of spans without one, the same file as the SDK's and the collector's (env EVALFORGE_PRICE_FILE).")
    var priceFile: String?

    @Option(help: "JSON file of rate-limit tiers: changes the built-in free, basic, premium, enterprise and adds tiers (env EVALFORGE_RATE_LIMIT_TIERS; docs/access-control.md, \"Rate limits\"). EVALFORGE_RATE_LIMITS=off turns limits off.")
    var rateLimitTiers: String?

    @Option(help: "Tier of projects without one (default enterprise; env EVALFORGE_DEFAULT_TIER). A shared installation sets free.")
    var defaultTier: String?

    @Option(help: "Days of telemetry kept for projects without their own retention, 0 = forever (env EVALFORGE_RETENTION_DAYS; docs/storage.md, \"Retention\").")
    var retentionDays: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        var c = try BackendConfigurationLoader.load(
            environment: ProcessInfo.processInfo.environment,
            role: role, host: host, port: port, dataDir: dataDir, clickhouseURL: clickhouseURL, clickhouseDatabase: clickhouseDatabase, clickhouseCluster: clickhouseCluster, clickhouseMutationCluster: clickhouseMutationCluster, apiKey: apiKey, outboundAllow: outboundAllow, adminTokenFile: adminTokenFile, priceFile: priceFile,
            postgresURL: postgresURL, postgresPoolSize: postgresPoolSize,
            sessions: .init(idleSeconds: sessionIdle, maxSeconds: sessionMax, trustProxy: trustProxy, secureCookies: secureCookies),
            secrets: .init(keyFile: secretsKeyFile, oldKeyFiles: secretsOldKeyFile))
        let env = ProcessInfo.processInfo.environment
        c.operatorHost = operatorHost ?? env["EVALFORGE_OPERATOR_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        let op: Int
        if let operatorPort { op = operatorPort } else if let raw = env["EVALFORGE_OPERATOR_PORT"] {
            guard let v = Int(raw) else { throw ValidationError("EVALFORGE_OPERATOR_PORT=\(raw): expected a port number") }
            op = v
        } else { op = 3001 }
        guard (0...65535).contains(op), op == 0 || op != c.port else { throw ValidationError("--operator-port \(op): expected 0…65535 (0: any free port), not the public port \(c.port)") }
        c.operatorPort = op
        c.rateLimits = try BackendConfigurationLoader.rateLimits(environment: ProcessInfo.processInfo.environment, tiersFile: rateLimitTiers, defaultTier: defaultTier)
        if let retentionDays {
            guard (0...Project.retentionDaysRange.upperBound).contains(retentionDays) else {
                throw ValidationError("--retention-days \(retentionDays): expected 0 (keep forever) to \(Project.retentionDaysRange.upperBound) days")
            }
            c.defaultRetentionDays = retentionDays
        }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level \(logLevel): expected trace, debug, info, notice, warning, error or critical") }
        var logger = Logger(label: "evalforge.backend")
        logger.logLevel = level
        let registry = MetricsBootstrap.prometheus()
        let (app, services) = try await BackendApp.build(configuration: c, logger: logger, metricsRegistry: registry)
        if let token = services.generatedAdminToken {
            // Shown once: only its hash is stored. Not logged.
            say("evalforge backend: generated the instance admin token (shown only now; keep it, e.g. in EVALFORGE_ADMIN_TOKEN):\n\(token)")
        }
        logger.info("backend listening", metadata: ["address": "http://\(c.host):\(c.port)", "store": "\(services.store.description)", "roles": "\(c.roles)"])
        try await app.runService()
    }
}

/// Builds a `BackendConfiguration` from defaults, environment and flags (flags win), naming the
/// offending variable or flag on a bad value.
enum BackendConfigurationLoader {
    /// The session and proxy flags of `evalforge backend` (nil / false: the environment or the default).
    struct SessionFlags {
        var idleSeconds: Int?
        var maxSeconds: Int?
        var trustProxy = false
        var secureCookies = false
    }

    /// The secrets key flags of `evalforge backend` (nil / empty: the environment or the default).
    struct SecretsFlags {
        var keyFile: String?
        var oldKeyFiles: [String] = []
    }

    static func load(environment env: [String: String], role: String? = nil, host: String? = nil, port: Int? = nil, dataDir: String? = nil, clickhouseURL: String? = nil, clickhouseDatabase: String? = nil, clickhouseCluster: String? = nil, clickhouseMutationCluster: String? = nil, apiKey: String? = nil, outboundAllow: String? = nil, adminTokenFile: String? = nil, priceFile: String? = nil,
                     postgresURL: String? = nil, postgresPoolSize: Int? = nil,
                     sessions: SessionFlags = .init(), secrets: SecretsFlags = .init()) throws -> BackendConfiguration {
        var c = BackendConfiguration.default
        func int(_ name: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = env[name] else { return nil }
            guard let v = Int(text), range.contains(v) else { throw ValidationError("\(name)=\(text): expected an integer in \(range.lowerBound)…\(range.upperBound)") }
            return v
        }
        if let text = role ?? env["EVALFORGE_ROLE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do { c.roles = try BackendRoles(parsing: text) } catch {
                throw ValidationError("\(role == nil ? "EVALFORGE_ROLE" : "--role"): \(error.message)")
            }
        }
        if let v = try int("EVALFORGE_CACHE_POLL_MS", 100...60_000) { c.cacheGenerationPollMilliseconds = v }
        if let v = env["EVALFORGE_BACKEND_HOST"] { c.host = v }
        if let v = try int("EVALFORGE_BACKEND_PORT", 1...65535) { c.port = v }
        if let v = env["EVALFORGE_DATA_DIR"] { c.dataDirectory = v }
        if let v = try int("EVALFORGE_MAX_BODY_BYTES", 1024...(1 << 30)) { c.maxBodyBytes = v }
        if let v = try int("EVALFORGE_MAX_INFLIGHT_INGEST", 1...1024) { c.maxInflightIngest = v }
        if let v = try int("EVALFORGE_RETENTION_INTERVAL_S", 60...86_400 * 7) { c.retentionIntervalSeconds = v }
        if let v = try int("EVALFORGE_TRACE_SUMMARY_REPAIR_INTERVAL_S", 1...86_400) { c.traceSummaryRepairIntervalSeconds = v }
        if let v = try int("EVALFORGE_TRACE_SUMMARY_REPAIR_SETTLE_S", 0...86_400) { c.traceSummaryRepairSettleSeconds = v }
        if let v = try int("EVALFORGE_RETENTION_DAYS", 0...Project.retentionDaysRange.upperBound) { c.defaultRetentionDays = v }
        if let v = try int("EVALFORGE_ONLINE_QUEUE_PER_PROJECT", 1...1_000_000) { c.onlineQueuePerProject = v }
        if let v = try int("EVALFORGE_WORK_LEASE_S", 1...3600) { c.workLeaseSeconds = v }
        if let v = env["EVALFORGE_API_KEY"], !v.isEmpty { c.bootstrapAPIKey = v }
        if let v = env["EVALFORGE_ADMIN_TOKEN"], !v.isEmpty { c.adminToken = v }
        if let adminTokenFile {
            guard let text = try? String(contentsOfFile: adminTokenFile, encoding: .utf8) else {
                throw ValidationError("--admin-token-file \(adminTokenFile): cannot read the file")
            }
            c.adminToken = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let t = c.adminToken, !ProjectStore.validAdminToken(t) {
            throw ValidationError("admin token (EVALFORGE_ADMIN_TOKEN / --admin-token-file): expected 16 to 256 printable ASCII characters without spaces")
        }
        var chURL = env["EVALFORGE_CLICKHOUSE_URL"].flatMap { $0.isEmpty ? nil : $0 }
        if let host { c.host = host }
        if let port {
            guard (1...65535).contains(port) else { throw ValidationError("--port \(port): expected 1…65535") }
            c.port = port
        }
        if let dataDir { c.dataDirectory = dataDir }
        if let apiKey { c.bootstrapAPIKey = apiKey }
        if let clickhouseURL { chURL = clickhouseURL }
        func flag(_ name: String) throws -> Bool {
            guard let text = env[name] else { return false }
            switch text.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off", "": return false
            default: throw ValidationError("\(name)=\(text): expected 1 or 0 (true/false)")
            }
        }
        let maxSession = 366 * 86_400
        if let v = try int("EVALFORGE_SESSION_IDLE_S", 1...maxSession) { c.sessionIdleSeconds = v }
        if let v = try int("EVALFORGE_SESSION_MAX_S", 1...maxSession) { c.sessionMaxSeconds = v }
        if let v = sessions.idleSeconds {
            guard (1...maxSession).contains(v) else { throw ValidationError("--session-idle \(v): expected 1…\(maxSession) seconds") }
            c.sessionIdleSeconds = v
        }
        if let v = sessions.maxSeconds {
            guard (1...maxSession).contains(v) else { throw ValidationError("--session-max \(v): expected 1…\(maxSession) seconds") }
            c.sessionMaxSeconds = v
        }
        guard c.sessionIdleSeconds <= c.sessionMaxSeconds else {
            throw ValidationError("session idle expiry (\(c.sessionIdleSeconds) s) is longer than the absolute expiry (\(c.sessionMaxSeconds) s): --session-idle must be at most --session-max")
        }
        c.trustProxy = try flag("EVALFORGE_TRUST_PROXY") || sessions.trustProxy
        c.secureCookies = try flag("EVALFORGE_SECURE_COOKIES") || sessions.secureCookies
        if let v = try int("EVALFORGE_SIGNIN_PER_CLIENT_PER_MIN", 1...100_000) { c.signInPerClientPerMinute = v }
        if let v = try int("EVALFORGE_SIGNIN_PER_MIN", 1...1_000_000) { c.signInPerMinute = v }
        if let v = env["EVALFORGE_SECRETS_KEY"], !v.isEmpty { c.secretsKey = v }
        if let v = env["EVALFORGE_SECRETS_KEY_FILE"], !v.isEmpty { c.secretsKeyFile = v }
        if let v = env["EVALFORGE_SECRETS_OLD_KEY_FILES"] { c.secretsOldKeyFiles = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        if let v = secrets.keyFile { c.secretsKeyFile = v }
        if !secrets.oldKeyFiles.isEmpty { c.secretsOldKeyFiles = secrets.oldKeyFiles }
        if let v = c.secretsKey, c.secretsKeyFile == nil {
            do { _ = try SecretKeyring.decodeKey(base64: v, source: "EVALFORGE_SECRETS_KEY") } catch { throw ValidationError(error.message) }
        }
        if let v = env["EVALFORGE_OUTBOUND_ALLOW"] { c.outboundAllowList = v }
        if let outboundAllow { c.outboundAllowList = outboundAllow }
        if let path = priceFile ?? env["EVALFORGE_PRICE_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do { c.priceTable = try PriceFile.load(path: path) } catch { throw ValidationError("--price-file / EVALFORGE_PRICE_FILE: \(error.message)") }
        }
        do {
            _ = try OutboundPolicy(allowList: c.outboundAllowList)
        } catch {
            throw ValidationError("--outbound-allow / EVALFORGE_OUTBOUND_ALLOW: \(error.message)")
        }
        if let url = chURL {
            guard let u = URL(string: url), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil else {
                throw ValidationError("ClickHouse URL '\(url)': expected http://host:port (the HTTP interface, usually port 8123)")
            }
            var ch = ClickHouseConfiguration(url: url)
            if let v = env["EVALFORGE_CLICKHOUSE_DATABASE"] { ch.database = v }
            if let v = clickhouseDatabase { ch.database = v }
            if let v = env["EVALFORGE_CLICKHOUSE_USER"] { ch.user = v }
            if let v = env["EVALFORGE_CLICKHOUSE_PASSWORD"] { ch.password = v }
            if let v = try int("EVALFORGE_CLICKHOUSE_BATCH_ROWS", 1...1_000_000) { ch.batchRows = v }
            if let v = try int("EVALFORGE_CLICKHOUSE_FLUSH_MS", 1...600_000) { ch.flushIntervalMilliseconds = v }
            if let v = try int("EVALFORGE_CLICKHOUSE_TIMEOUT_S", 1...3600) { ch.timeoutSeconds = v }
            guard ch.database.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !ch.database.isEmpty else {
                throw ValidationError("ClickHouse database '\(ch.database)': use letters, digits and underscores only")
            }
            if let v = env["EVALFORGE_CLICKHOUSE_CLUSTER"], !v.isEmpty { ch.cluster = v }
            if let v = clickhouseCluster { ch.cluster = v }
            if let v = ch.cluster, !ClickHouseConfiguration.validClusterName(v) {
                throw ValidationError("--clickhouse-cluster / EVALFORGE_CLICKHOUSE_CLUSTER '\(v)': expected the cluster's name from remote_servers, 1 to 64 letters, digits and underscores")
            }
            if let v = env["EVALFORGE_CLICKHOUSE_MUTATION_CLUSTER"], !v.isEmpty { ch.mutationCluster = v }
            if let v = clickhouseMutationCluster { ch.mutationCluster = v }
            if let v = ch.mutationCluster {
                guard ch.cluster != nil else {
                    throw ValidationError("--clickhouse-mutation-cluster / EVALFORGE_CLICKHOUSE_MUTATION_CLUSTER needs --clickhouse-cluster")
                }
                guard ClickHouseConfiguration.validClusterName(v) else {
                    throw ValidationError("--clickhouse-mutation-cluster / EVALFORGE_CLICKHOUSE_MUTATION_CLUSTER '\(v)': expected a cluster's name from remote_servers, 1 to 64 letters, digits and underscores")
                }
            }
            c.clickHouse = ch
        } else if clickhouseCluster != nil || !(env["EVALFORGE_CLICKHOUSE_CLUSTER"] ?? "").isEmpty {
            throw ValidationError("--clickhouse-cluster / EVALFORGE_CLICKHOUSE_CLUSTER needs --clickhouse-url (any node of the cluster)")
        }
        if let url = postgresURL ?? env["EVALFORGE_POSTGRES_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            var pg: PostgresMetadataConfiguration
            do { pg = try PostgresMetadataConfiguration(url: url) } catch let e as StoreError { throw ValidationError(e.message) }
            if let v = try int("EVALFORGE_POSTGRES_POOL_SIZE", PostgresMetadataConfiguration.poolSizeRange) { pg.poolSize = v }
            if let v = postgresPoolSize {
                guard PostgresMetadataConfiguration.poolSizeRange.contains(v) else { throw ValidationError("--postgres-pool-size \(v): expected 1…256") }
                pg.poolSize = v
            }
            if let v = try int("EVALFORGE_POSTGRES_CONNECT_TIMEOUT_S", 1...600) { pg.connectTimeout = .seconds(v) }
            if let v = try int("EVALFORGE_POSTGRES_STATEMENT_TIMEOUT_S", 1...3600) { pg.statementTimeout = .seconds(v) }
            c.postgres = pg
        } else if postgresPoolSize != nil {
            throw ValidationError("--postgres-pool-size needs --postgres-url (or EVALFORGE_POSTGRES_URL)")
        }
        return c
    }
}
