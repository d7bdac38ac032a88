import EvalForgeCompression
import EvalForgeCore
import Foundation

/// Everything the collector can be told. Start from `.default`; the `evalforge collector` command
/// applies a YAML file (`--config`), then `EVALFORGE_COLLECTOR_*` environment variables, then flags.
/// docs/collector-configuration.md lists every key.
public struct CollectorConfiguration: Sendable, Equatable {
    /// Receiver address. Config `receiver.host` / `receiver.port`, env `EVALFORGE_COLLECTOR_HOST` / `_PORT`. Default 127.0.0.1:4318.
    public var host: String = "127.0.0.1"
    public var port: Int = 4318
    /// Largest request body accepted, compressed or inflated; larger gets 413. Config `receiver.max_body_bytes`. Default 8 MiB.
    public var maxBodyBytes: Int = 8 << 20
    /// Project for spans whose resource has no `evalforge.project`. Config `receiver.default_project`. Default "default".
    public var defaultProject: String = "default"
    /// Names besides IP addresses, `localhost`, the listen host and this machine's host name that
    /// requests may carry in `Host` and `Origin` (DNS rebinding protection; `*` turns it off).
    /// Config `receiver.allowed_hosts`. Default none.
    public var allowedHosts: [String] = []

    /// The operator listener: `/metrics` and the detailed `/healthz` (counters, degraded reason),
    /// which need no key and so are not on the receiver (that one keeps a bare liveness `/healthz`).
    /// Config `operator.host` / `operator.port`, env `EVALFORGE_COLLECTOR_OPERATOR_PORT`, flags
    /// `--operator-host` / `--operator-port`. `evalforge collector` defaults to 127.0.0.1:13133 (0: any
    /// free port); nil (the library's default) serves no operator listener.
    public var operatorHost: String = "127.0.0.1"
    public var operatorPort: Int? = nil

    /// Who may send OTLP: `key` (a key with the `ingest` scope of the project this collector
    /// forwards to, checked against the backend) or `open` (anyone; loopback only). Config
    /// `auth.mode`, env `EVALFORGE_COLLECTOR_AUTH_MODE`, flag `--open`. Default key.
    public var authMode: CollectorAuthMode = .key
    /// Allow open mode on a non-loopback address. Config `auth.force_open`, flag `--force-open`. Default false.
    public var forceOpen: Bool = false
    /// How long the backend's acceptance of a key is trusted (a revoked key is refused at most this
    /// long after). Config `auth.cache_ttl_ms`. Default 30,000.
    public var authCacheTTL: Duration = .seconds(30)
    /// How long a refusal (unknown, revoked key; missing scope) or an unreachable backend is remembered.
    /// Config `auth.negative_ttl_ms`. Default 5,000.
    public var authNegativeTTL: Duration = .seconds(5)
    /// While the backend cannot be reached, a key it accepted at most this long ago stays accepted
    /// (unknown keys get 503). 0: none. Config `auth.stale_grace_ms`. Default 300,000 (5 min).
    public var authStaleGrace: Duration = .seconds(300)

    /// Deduplication window. Config `dedup.window_seconds`. Default 600 s.
    public var dedupWindow: Duration = .seconds(600)
    /// Most (trace id, span id) pairs remembered (~12 bytes each). Config `dedup.max_ids`. Default 4,000,000 (~48 MB).
    public var dedupMaxIDs: Int = 4_000_000

    public var sampling: TailSamplingPolicy = .default

    /// WAL directory. Config `queue.directory`, env `EVALFORGE_COLLECTOR_QUEUE_DIR`. Default ./data/collector-wal.
    public var queueDirectory: String = "data/collector-wal"
    /// WAL size cap; above it the receiver answers 503 with Retry-After. Config `queue.max_bytes`. Default 1 GiB.
    public var queueMaxBytes: Int = 1 << 30
    /// WAL segment size. Config `queue.segment_bytes`. Default 64 MiB.
    public var queueSegmentBytes: Int = 64 << 20
    /// fsync policy: "always" (before every acknowledgement, group-committed), "interval:<ms>", "never".
    /// Config `queue.fsync`, env `EVALFORGE_COLLECTOR_FSYNC`. Default "always".
    public var fsync: String = "always"

    /// Backend base URLs (1…64); batches go to `<url>/v1/batches` of a healthy one (round robin),
    /// failing over to another on a transport error or a 5xx. Config `forward.backend_urls` (a list)
    /// or `forward.backend_url`, env `EVALFORGE_BACKEND_URL` (comma-separated), flag `--backend-url`
    /// (repeatable). Default http://127.0.0.1:3000.
    public var backendURLs: [String] = ["http://127.0.0.1:3000"]
    /// The first backend URL; setting it makes it the only one (one backend, as before several).
    public var backendURL: String {
        get { backendURLs.first ?? "" }
        set { backendURLs = [newValue] }
    }
    /// With several backends, each one's `/readyz` is checked this often; a backend that fails the
    /// check (or a delivery, with a transport error or a 5xx) gets no batches until it passes again.
    /// Config `forward.health_interval_ms` (100…600,000). Default 5,000.
    public var healthInterval: Duration = .seconds(5)
    /// Timeout of one readiness check. Config `forward.health_timeout_ms` (10…60,000). Default 2,000.
    public var healthTimeout: Duration = .seconds(2)
    /// API key sent as `Authorization: Bearer`. Config `forward.api_key`, env `EVALFORGE_API_KEY`. Default none.
    public var apiKey: String? = nil
    /// Prices cost is stamped from on spans that carry none: the built-in table, or it with the
    /// operator's price file (`--price-file`, env `EVALFORGE_PRICE_FILE`; the same file the SDK and the
    /// backend load, docs/sdk.md "Prices"). Default `PriceTable.builtIn`.
    public var priceTable: PriceTable = .builtIn

    /// Kept spans per batch at most. Config `forward.max_batch_spans`. Default 5,000.
    public var maxBatchSpans: Int = 5_000
    /// Bytes of a batch before compression at most (an estimate from above: spans, resources,
    /// scopes and rollups). The backend refuses bodies above 16 MiB, compressed or not, with 413;
    /// batches stay well below. A request whose normalized spans would not fit one batch, or a
    /// single span above it, is refused by the receiver with 413 before it is acknowledged.
    /// Config `forward.max_batch_bytes` (256 KiB…15 MiB). Default 10 MiB.
    public var maxBatchBytes: Int = 10 << 20
    /// Batches in flight to the backend at once; the WAL is released in order as the oldest ones are
    /// acknowledged. Config `forward.concurrency`. Default 4.
    public var forwardConcurrency: Int = 4
    /// Longest a batch waits before it is sent. Config `forward.flush_interval_ms`. Default 1,000.
    public var flushInterval: Duration = .seconds(1)
    /// Timeout of one forward request. Config `forward.timeout_ms`. Default 30,000.
    public var forwardTimeout: Duration = .seconds(30)
    /// Retry backoff bounds (exponential with jitter). Config `forward.initial_backoff_ms` / `forward.max_backoff_ms`. Default 200 ms / 30 s.
    public var initialBackoff: Duration = .milliseconds(200)
    public var maxBackoff: Duration = .seconds(30)
    /// Compression of forwarded batches, sent as their `Content-Encoding`: `lz4`, `zstd`, `gzip`
    /// or `none`. Config `forward.compression`. Default lz4: the sidecar's CPU is the service
    /// host's, and on span data lz4 compresses at about twice zstd level 1's speed (3.5× smaller
    /// batches against zstd's 5.4×; docs/benchmarks.md). Choose zstd where the link to the backend
    /// is scarce (across regions), gzip for a backend behind a proxy that only knows gzip. Each
    /// batch in the outbox keeps the encoding it was written with, so changing this between runs
    /// is safe.
    public var compression: ForwardCompression = .lz4
    /// zstd level of forwarded batches (1 fastest … 19 smallest). Config `forward.zstd_level`. Default 1.
    public var zstdLevel: Int = 1
    /// gzip level of forwarded batches (1 fastest … 9 smallest). Config `forward.gzip_level`. Default 1.
    public var gzipLevel: Int = 1
    /// This collector's id in batch ids. Config `forward.collector_id`, env `EVALFORGE_COLLECTOR_ID`. Default the host name.
    public var collectorID: String = ProcessInfo.processInfo.hostName

    /// How long graceful shutdown may spend forwarding what is pending. Config `shutdown_timeout_ms`. Default 10,000.
    public var shutdownTimeout: Duration = .seconds(10)

    public init() {}
    public static let `default` = CollectorConfiguration()

    /// Whether `host` is a loopback address or name (open mode is allowed there).
    public static func isLoopback(_ host: String) -> Bool {
        let h = HostAllowList.normalized(host)
        return h == "localhost" || HostAllowList.isLoopbackIP(h)
    }

    /// The checks that need every source applied (file, environment, flags): open mode only on
    /// loopback unless forced; key mode needs the collector's own `forward.api_key`, whose project
    /// client keys must belong to. `CollectorApp.build` runs them.
    public func validateAuth() throws {
        switch authMode {
        case .open:
            guard Self.isLoopback(host) || forceOpen else {
                throw CollectorError.configuration("auth.mode open on '\(host)', a non-loopback address, would accept OTLP from anyone who can reach it: listen on 127.0.0.1, use keys (auth.mode key), or force it (auth.force_open: true / --force-open)")
            }
        case .key:
            guard let apiKey, !apiKey.isEmpty else {
                throw CollectorError.configuration("auth.mode key (the default) needs forward.api_key (EVALFORGE_API_KEY): clients' keys must belong to the project it writes to; or run open on loopback (auth.mode open / --open)")
            }
        }
    }

    /// The coding and level forwarded batches are compressed with.
    var forwardCoding: (coding: ContentCoding, level: Int32) {
        switch compression {
        case .lz4: (.lz4, 0)
        case .zstd: (.zstd, Int32(zstdLevel))
        case .gzip: (.gzip, Int32(gzipLevel))
        case .none: (.identity, 0)
        }
    }

    var fsyncPolicy: WriteAheadLog.FsyncPolicy? {
        switch fsync {
        case "always": return .always
        case "never": return .never
        default:
            guard fsync.hasPrefix("interval:"), let ms = Int(fsync.dropFirst("interval:".count)), (1...60_000).contains(ms) else { return nil }
            return .interval(.milliseconds(ms))
        }
    }
}

/// How the collector compresses forwarded batches (`forward.compression`).
public enum ForwardCompression: String, Sendable, Equatable, CaseIterable {
    case lz4
    case zstd
    case gzip
    case none
}
