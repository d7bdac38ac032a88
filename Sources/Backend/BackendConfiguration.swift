import EvalForgeCore
import EvalForgeStore
import Evaluation
import Foundation

/// Configuration of `evalforge backend`.
public struct BackendConfiguration: Sendable, Equatable {
    /// Listen address. Env `EVALFORGE_BACKEND_HOST`; flag `--host`. Default "127.0.0.1".
    public var host: String
    /// Listen port for ingest, API and UI. Env `EVALFORGE_BACKEND_PORT`; flag `--port`. Default 3000.
    public var port: Int
    /// Directory of the SQLite files (metadata, and telemetry when no ClickHouse is configured).
    /// Env `EVALFORGE_DATA_DIR`; flag `--data-dir`. Default "data".
    public var dataDirectory: String
    /// ClickHouse for telemetry; nil uses the embedded SQLite store. Env `EVALFORGE_CLICKHOUSE_URL`.
    public var clickHouse: ClickHouseConfiguration?
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
    /// How often retention deletes run, seconds. Env `EVALFORGE_RETENTION_INTERVAL_S`. Default 3600.
    public var retentionIntervalSeconds: Int
    /// Spans one project may have queued for online evaluation; beyond it a batch's spans are
    /// skipped and counted (`GET /api/online-queue`). Env `EVALFORGE_ONLINE_QUEUE_PER_PROJECT`.
    /// Default 10,000.
    public var onlineQueuePerProject: Int

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
