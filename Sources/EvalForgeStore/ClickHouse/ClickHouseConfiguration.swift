/// Where and how the backend writes to ClickHouse (over its HTTP interface).
public struct ClickHouseConfiguration: Sendable, Equatable {
    /// Base URL of the HTTP interface. Env `EVALFORGE_CLICKHOUSE_URL`; flag `--clickhouse-url`.
    /// No default: without it the backend uses the embedded SQLite store.
    public var url: String
    /// Database name. Env `EVALFORGE_CLICKHOUSE_DATABASE`. Default "evalforge".
    public var database: String
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

    public init(url: String, database: String = "evalforge", user: String = "default", password: String = "", batchRows: Int = 10_000, flushIntervalMilliseconds: Int = 1_000, timeoutSeconds: Int = 30) {
        self.url = url
        self.database = database
        self.user = user
        self.password = password
        self.batchRows = batchRows
        self.flushIntervalMilliseconds = flushIntervalMilliseconds
        self.timeoutSeconds = timeoutSeconds
    }
}
