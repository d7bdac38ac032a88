import EvalForgeCore
import EvalForgeCrypto
import EvalForgeStore
import Evaluation
import Foundation
import Logging

/// Configuration of `evalforge backend`.
public struct BackendConfiguration: Sendable, Equatable {
    /// Listen address. Env `EVALFORGE_BACKEND_HOST`; flag `--host`. Default "127.0.0.1".
    public var host: String
    /// Listen port for ingest, API and UI. Env `EVALFORGE_BACKEND_PORT`; flag `--port`. Default 3000.
    public var port: Int
    /// The operator listener: `/metrics` and the detailed `/healthz`, which need no key and so are not
    /// on the public port (that one keeps a bare liveness `/healthz`). Env `EVALFORGE_OPERATOR_HOST` /
    /// `EVALFORGE_OPERATOR_PORT`; flags `--operator-host` / `--operator-port`. `evalforge backend`
    /// defaults to 127.0.0.1:3001; nil (the library's default) serves no operator listener.
    public var operatorHost: String = "127.0.0.1"
    public var operatorPort: Int? = nil
    /// What this backend serves and runs: `ingest` (`/v1/batches`, `/v1/traces`), `query` (the API,
    /// export, UI, evaluation and admin API), `worker` (evaluation runs, webhooks, online evaluation,
    /// retention, trace summary repair); health and readiness in every role. Env `EVALFORGE_ROLE`;
    /// flag `--role` (`all`, one role, or a comma list such as `ingest,query`). Default all.
    /// docs/deployment.md, "Roles".
    public var roles: BackendRoles = .all
    /// How often the backend reads the metadata database's cache generations, milliseconds: a
    /// change made through another backend (the admin token, a rate-limit tier, telemetry deleted)
    /// reaches this backend's caches within it. Env `EVALFORGE_CACHE_POLL_MS` (100…60,000).
    /// Default 1,000. docs/scaling.md, "Caches with several backends".
    public var cacheGenerationPollMilliseconds: Int = 1_000
    /// Directory of the SQLite files (metadata, and telemetry when no ClickHouse is configured).
    /// Env `EVALFORGE_DATA_DIR`; flag `--data-dir`. Default "data".
    public var dataDirectory: String
    /// ClickHouse for telemetry; nil uses the embedded SQLite store. Env `EVALFORGE_CLICKHOUSE_URL`.
    public var clickHouse: ClickHouseConfiguration?
    /// Postgres for metadata (projects, keys, sessions, rate-limit counters, the audit log,
    /// evaluations, webhooks, the online-evaluation queue) instead of the SQLite metadata file, so
    /// several backends share it; telemetry storage is unchanged. Flag `--postgres-url` (env
    /// `EVALFORGE_POSTGRES_URL`), pool `--postgres-pool-size` (`EVALFORGE_POSTGRES_POOL_SIZE`,
    /// default 8), `EVALFORGE_POSTGRES_CONNECT_TIMEOUT_S` (10) and
    /// `EVALFORGE_POSTGRES_STATEMENT_TIMEOUT_S` (30). Default nil. docs/storage.md, "Postgres metadata".
    public var postgres: PostgresMetadataConfiguration?
    /// Largest accepted request body (compressed and inflated), bytes. Env `EVALFORGE_MAX_BODY_BYTES`.
    /// Default 16 MiB.
    public var maxBodyBytes: Int
    /// Most ingest requests stored concurrently; beyond it the backend answers 503 with Retry-After
    /// (backpressure to the collector's queue). Env `EVALFORGE_MAX_INFLIGHT_INGEST`. Default 16.
    public var maxInflightIngest: Int
    /// Project created at start-up when no project exists, with this id. Default "default".
    public var defaultProjectID: String
    /// Plaintext API key registered for the default project at start-up (e.g. `evalforge dev
    /// --api-key`). Env `EVALFORGE_API_KEY`. Default nil (no key added).
    public var bootstrapAPIKey: String?
    /// The instance admin token (manages projects and keys; docs/access-control.md). Env
    /// `EVALFORGE_ADMIN_TOKEN`; flag `--admin-token-file`. Default nil: one is generated at the
    /// first start and printed once; only its SHA-256 hash is stored.
    public var adminToken: String?
    /// How often retention deletes run, seconds. Env `EVALFORGE_RETENTION_INTERVAL_S`. Default 3600.
    public var retentionIntervalSeconds: Int
    /// Days of telemetry kept for projects without their own retention (settings page, admin API,
    /// `evalforge admin projects set-retention`); 0 keeps everything. Flag `--retention-days`; env
    /// `EVALFORGE_RETENTION_DAYS`. Default 0. docs/storage.md, "Retention".
    public var defaultRetentionDays: Int = 0
    /// How often the ClickHouse store gives traces missing from `trace_summary` their row
    /// (`TraceSummaryRepairService`), seconds. Env `EVALFORGE_TRACE_SUMMARY_REPAIR_INTERVAL_S`
    /// (1…86,400). Default 30.
    public var traceSummaryRepairIntervalSeconds: Int = 30
    /// How long a trace must be seen missing from `trace_summary` before it is repaired, seconds:
    /// longer than an insert and replication take, so no partial row is written. Env
    /// `EVALFORGE_TRACE_SUMMARY_REPAIR_SETTLE_S` (0…86,400). Default 60.
    public var traceSummaryRepairSettleSeconds: Int = 60
    /// Spans one project may have queued for online evaluation; beyond it a batch's spans are
    /// skipped and counted (`GET /api/online-queue`). Env `EVALFORGE_ONLINE_QUEUE_PER_PROJECT`.
    /// Default 10,000.
    public var onlineQueuePerProject: Int
    /// Leases on the evaluation work backends share (run items, webhook deliveries, queued online
    /// spans): how long a claim holds without its backend's heartbeat, seconds. Env
    /// `EVALFORGE_WORK_LEASE_S` (1…3,600). Default 30.
    public var workLeaseSeconds: Int = 30

    /// Private, loopback and other non-public addresses (and endpoints) webhooks, `http` targets and
    /// providers may reach, comma-separated: `10.0.0.0/8,llm.internal:8000,[::1]:8080`. Env
    /// `EVALFORGE_OUTBOUND_ALLOW`; flag `--outbound-allow`. Default "" (public addresses only).
    /// docs/backend-configuration.md, "Outbound calls".
    public var outboundAllowList: String
    /// Endpoints of the installation outbound calls may not reach unless the allow-list names their
    /// exact port, besides the ClickHouse URL and this backend's listener (added at start-up);
    /// `evalforge dev` adds its collector. Default none.
    public var outboundProtected: [OutboundPolicy.ProtectedEndpoint]
    /// Prices cost is stamped from on spans sent straight to the backend's OTLP endpoint: the
    /// built-in table, or it with the operator's price file (`--price-file`, env `EVALFORGE_PRICE_FILE`;
    /// the same file the SDK and the collector load, docs/sdk.md "Prices"). Default `PriceTable.builtIn`.
    public var priceTable: PriceTable = .builtIn

    /// Web UI sessions end after this many seconds without use. Env `EVALFORGE_SESSION_IDLE_S`;
    /// flag `--session-idle`. Default 43,200 (12 h). docs/security.md, "Web UI sessions".
    public var sessionIdleSeconds: Int = 43_200
    /// Web UI sessions end this many seconds after sign-in, used or not. Env
    /// `EVALFORGE_SESSION_MAX_S`; flag `--session-max`. Default 604,800 (7 days).
    public var sessionMaxSeconds: Int = 604_800
    /// Trust the reverse proxy's `X-Forwarded-Proto` (cookies get `Secure` behind HTTPS) and
    /// `X-Forwarded-For` (sign-in limits count the client, not the proxy). Only when every request
    /// comes through that proxy. Env `EVALFORGE_TRUST_PROXY=1`; flag `--trust-proxy`. Default off.
    public var trustProxy: Bool = false
    /// Mark cookies `Secure` on every answer (HTTPS terminated in front without
    /// `X-Forwarded-Proto`). Env `EVALFORGE_SECURE_COOKIES=1`; flag `--secure-cookies`. Default off.
    public var secureCookies: Bool = false
    /// Sign-in attempts per client address per minute, across every backend sharing the metadata
    /// database. Env `EVALFORGE_SIGNIN_PER_CLIENT_PER_MIN`. Default 10.
    public var signInPerClientPerMinute: Int = 10
    /// Sign-in attempts per minute in total, across every backend sharing the metadata database
    /// (each process also holds itself to it). Env `EVALFORGE_SIGNIN_PER_MIN`. Default 100.
    public var signInPerMinute: Int = 100

    /// The file holding the secrets key (32 random bytes, base64) provider API keys and headers,
    /// `http` target headers and webhook secrets are sealed with at rest. Flag `--secrets-key-file`;
    /// env `EVALFORGE_SECRETS_KEY_FILE`. Default: `EVALFORGE_SECRETS_KEY`, else `<data-dir>/secrets.key`
    /// (created 0600 when missing). docs/security.md, "Secrets at rest".
    public var secretsKeyFile: String?
    /// The secrets key itself, base64. Env `EVALFORGE_SECRETS_KEY`; a key file wins.
    public var secretsKey: String?
    /// Files of earlier secrets keys, for rotation: values sealed with them are opened and sealed
    /// again with the current key at start-up. Flag `--secrets-old-key-file` (repeatable); env
    /// `EVALFORGE_SECRETS_OLD_KEY_FILES` (comma-separated).
    public var secretsOldKeyFiles: [String] = []

    /// Rate-limit tiers, the tier of projects without one, and whether limits apply: built-in
    /// tiers, changed by a tier file (`--rate-limit-tiers`, env `EVALFORGE_RATE_LIMIT_TIERS`); default
    /// tier `--default-tier` / `EVALFORGE_DEFAULT_TIER` (default "enterprise"); off with
    /// `EVALFORGE_RATE_LIMITS=off`. docs/access-control.md, "Rate limits".
    public var rateLimits: RateLimitTiers = RateLimitTiers()

    public static let `default` = BackendConfiguration()

    public init(host: String = "127.0.0.1", port: Int = 3000, dataDirectory: String = "data", clickHouse: ClickHouseConfiguration? = nil, maxBodyBytes: Int = 16 << 20, maxInflightIngest: Int = 16, defaultProjectID: String = "default", bootstrapAPIKey: String? = nil, retentionIntervalSeconds: Int = 3600, onlineQueuePerProject: Int = 10_000, outboundAllowList: String = "", outboundProtected: [OutboundPolicy.ProtectedEndpoint] = []) {
        self.outboundAllowList = outboundAllowList
        self.outboundProtected = outboundProtected
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.clickHouse = clickHouse
        self.maxBodyBytes = maxBodyBytes
        self.maxInflightIngest = maxInflightIngest
        self.defaultProjectID = defaultProjectID
        self.bootstrapAPIKey = bootstrapAPIKey
        self.adminToken = nil
        self.retentionIntervalSeconds = retentionIntervalSeconds
        self.onlineQueuePerProject = onlineQueuePerProject
    }

    /// Paths of the two SQLite files.
    public var metadataPath: String { dataDirectory + "/evalforge-meta.sqlite" }
    public var telemetryPath: String { dataDirectory + "/evalforge-telemetry.sqlite" }

    /// The outbound policy: the allow-list, protecting the ClickHouse store, this backend's
    /// listener and `outboundProtected`. Throws on a malformed allow-list (naming the entry).
    public func outboundPolicy() throws(OutboundError) -> OutboundPolicy {
        var protected = [OutboundPolicy.ProtectedEndpoint(host: host, port: port, what: "this backend's listener")]
        if let ch = clickHouse, let p = OutboundPolicy.ProtectedEndpoint(url: ch.url, what: "the ClickHouse store") { protected.append(p) }
        return try OutboundPolicy(allowList: outboundAllowList, protected: protected + outboundProtected)
    }
}

extension BackendConfiguration {
    /// Where the secrets key is kept when none is configured.
    public var defaultSecretsKeyPath: String { dataDirectory + "/secrets.key" }

    /// The keyring of `secretsKeyFile`, else `secretsKey`, else the data directory's key file
    /// (generated when missing), with the old keys for rotation. Throws naming the file or variable.
    func secretsKeyring(logger: Logger) throws(SecretsError) -> SecretKeyring {
        let current: [UInt8]
        if let file = secretsKeyFile {
            current = try SecretKeyring.readKeyFile(file)
        } else if let text = secretsKey {
            current = try SecretKeyring.decodeKey(base64: text, source: "EVALFORGE_SECRETS_KEY")
        } else {
            let (key, created) = try SecretKeyring.loadOrCreateKeyFile(defaultSecretsKeyPath)
            if created {
                logger.warning("generated a secrets key; back it up with the metadata file (without it provider keys and webhook secrets cannot be read), and in production keep it outside the data directory (--secrets-key-file or EVALFORGE_SECRETS_KEY)", metadata: ["path": "\(defaultSecretsKeyPath)"])
            }
            current = key
        }
        let old = try secretsOldKeyFiles.map { f throws(SecretsError) in try SecretKeyring.readKeyFile(f) }
        return try SecretKeyring(current: current, previous: old)
    }
}

