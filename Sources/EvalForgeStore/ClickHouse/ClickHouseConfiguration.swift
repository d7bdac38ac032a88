/// Where and how the backend writes to ClickHouse (over its HTTP interface).
public struct ClickHouseConfiguration: Sendable, Equatable {
    /// Base URL of the HTTP interface. Env `EVALFORGE_CLICKHOUSE_URL`; flag `--clickhouse-url`.
    /// No default: without it the backend uses the embedded SQLite store.
    public var url: String
    /// Database name. Env `EVALFORGE_CLICKHOUSE_DATABASE`. Default "evalforge".
    public var database: String
    /// Cluster mode: the name of a cluster in the servers' `remote_servers` (letters, digits,
    /// underscores). Env `EVALFORGE_CLICKHOUSE_CLUSTER`; flag `--clickhouse-cluster`. Default nil (one
    /// server). Tables are created `ON CLUSTER` as Replicated `<table>_local` on every shard with
    /// Distributed tables over them, sharded by trace (docs/storage.md, "Cluster"); the server at
    /// `url` is any node of the cluster (it routes reads and writes to the shards).
    public var cluster: String?
    /// Cluster mode: a second cluster in `remote_servers` naming one replica of each shard of
    /// `cluster`, on which deletes (retention, project deletion: `ALTER … DELETE`) run `ON CLUSTER`;
    /// the other replicas of each shard get the mutation through replication. Run on every replica,
    /// 18.16's DDL worker can die when two replicas of a shard race for the same statement
    /// (docs/storage.md, "Cluster"). Env `EVALFORGE_CLICKHOUSE_MUTATION_CLUSTER`; flag
    /// `--clickhouse-mutation-cluster`. Default nil: deletes run on `cluster` (a warning at start on 18.x).
    public var mutationCluster: String?
    /// User. Env `EVALFORGE_CLICKHOUSE_USER`. Default "default".
    public var user: String
    /// Password. Env `EVALFORGE_CLICKHOUSE_PASSWORD`. Default "".
    public var password: String
    /// Rows buffered before an insert is sent. Env `EVALFORGE_CLICKHOUSE_BATCH_ROWS`. Default 10,000.
    public var batchRows: Int
    /// Longest time a row waits in the buffer, milliseconds. Env `EVALFORGE_CLICKHOUSE_FLUSH_MS`. Default 1,000.
    public var flushIntervalMilliseconds: Int
    /// Request timeout, seconds. Env `EVALFORGE_CLICKHOUSE_TIMEOUT_S`. Default 30.
    public var timeoutSeconds: Int
    /// Connect timeout, milliseconds: how long an insert waits for a server that does not accept
    /// connections before the attempt fails (then retried per `maxAttempts`). Default 2,000.
    public var connectTimeoutMilliseconds: Int
    /// Attempts per request for transient failures (connection refused, overload), with exponential
    /// backoff from `retryBackoffMilliseconds`. Default 4 (waits 100 + 200 + 400 ms).
    public var maxAttempts: Int
    /// First retry delay, milliseconds. Default 100.
    public var retryBackoffMilliseconds: Int
    /// Inserts in flight at once. Default 2.
    public var maxConcurrentInserts: Int
    /// Rows the writer holds while inserts are in flight before it refuses new batches with
    /// `StoreError.unavailable` (backpressure). Default 4 × `batchRows`.
    public var maxBufferedRows: Int

    public init(url: String, database: String = "evalforge", user: String = "default", password: String = "", batchRows: Int = 10_000, flushIntervalMilliseconds: Int = 1_000, timeoutSeconds: Int = 30, connectTimeoutMilliseconds: Int = 2_000, maxAttempts: Int = 4, retryBackoffMilliseconds: Int = 100, maxConcurrentInserts: Int = 2, maxBufferedRows: Int? = nil, cluster: String? = nil, mutationCluster: String? = nil) {
        self.url = url
        self.database = database
        self.user = user
        self.password = password
        self.batchRows = batchRows
        self.flushIntervalMilliseconds = flushIntervalMilliseconds
        self.timeoutSeconds = timeoutSeconds
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.maxAttempts = maxAttempts
        self.retryBackoffMilliseconds = retryBackoffMilliseconds
        self.maxConcurrentInserts = maxConcurrentInserts
        self.maxBufferedRows = maxBufferedRows ?? 4 * max(1, batchRows)
        self.cluster = cluster
        self.mutationCluster = mutationCluster
    }

    /// True when `name` can be a cluster name here: 1 to 64 ASCII letters, digits and underscores
    /// (it is written into DDL as an identifier).
    public static func validClusterName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { $0 == 95 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }
    }
}
