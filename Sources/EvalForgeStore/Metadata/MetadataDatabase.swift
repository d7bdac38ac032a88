import Foundation

/// The SQL dialect of a metadata database, for the few statements that must differ (catalog
/// queries, SQLite pragmas). Everything else is written once in the subset both understand
/// (`ON CONFLICT … DO NOTHING/UPDATE`, `RETURNING`, `?` placeholders, two-argument `MIN`/`MAX`,
/// which the Postgres schema defines as functions).
public enum MetadataDialect: String, Sendable {
    case sqlite
    case postgres
}

/// A value bound to or read from a metadata statement. SQLite's value cases are the common ones:
/// Postgres columns map onto them (BIGINT → integer, DOUBLE PRECISION → real, TEXT → text,
/// BYTEA → blob), so row decoding is shared.
public typealias MetadataValue = SQLiteValue
/// One result row of a metadata query.
public typealias MetadataRow = SQLiteRow

/// One connection inside one transaction of a `MetadataDatabase`, used by one synchronous closure
/// on a blocking thread (never on an event loop or the cooperative pool).
public protocol MetadataConnection: AnyObject {
    var dialect: MetadataDialect { get }
    /// Runs one or more statements without parameters or results (schema changes).
    func execute(_ sql: String) throws
    /// Runs a statement with `?` (or `?N`) parameters, returning the number of changed rows.
    @discardableResult
    func run(_ sql: String, _ binds: [MetadataValue]) throws -> Int
    /// Runs a query with parameters and calls `body` for each row.
    func forEach(_ sql: String, _ binds: [MetadataValue], _ body: (MetadataRow) throws -> Void) throws
}

extension MetadataConnection {
    @discardableResult
    public func run(_ sql: String) throws -> Int { try run(sql, []) }

    /// Runs a query with parameters and returns every row.
    public func query(_ sql: String, _ binds: [MetadataValue] = []) throws -> [MetadataRow] {
        var rows: [MetadataRow] = []
        try forEach(sql, binds) { rows.append($0) }
        return rows
    }

    /// The first column of the first row, or nil.
    public func scalar(_ sql: String, _ binds: [MetadataValue] = []) throws -> MetadataValue? {
        var result: MetadataValue?
        try forEach(sql, binds) { row in if result == nil { result = row[0] } }
        return result
    }

    public func forEach(_ sql: String, _ body: (MetadataRow) throws -> Void) throws { try forEach(sql, [], body) }
}

/// Where the backend keeps everything besides telemetry: projects, keys, sessions, rate-limit
/// counters, the audit log, providers, evaluators, datasets, runs, scores' runs, webhooks and the
/// online-evaluation queue. One embedded SQLite file (`SQLiteDatabase`) or a Postgres server
/// shared by several backends (`PostgresMetadataDatabase`, `--postgres-url`).
///
/// Bodies are synchronous closures run on a blocking thread pool, each inside one transaction.
/// A body may run more than once (Postgres retries a transaction that failed on a serialization
/// conflict, a deadlock or a lost connection before its COMMIT was sent): a body must only read and
/// write through the connection, and keep any effect outside the database for after it returns.
public protocol MetadataDatabase: Sendable {
    var dialect: MetadataDialect { get }
    /// Where the data lives, for messages (a file path, or a Postgres URL without its password).
    var location: String { get }
    /// A local folder for files that belong with the metadata (the secrets key file); nil when the
    /// database has none (Postgres without a configured folder).
    var localDirectory: String? { get }
    /// Runs `body` inside one write transaction (committed when it returns, rolled back when it throws).
    @discardableResult
    func write<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T
    /// Runs `body` on a consistent read-only snapshot.
    func read<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T
    /// Readiness: the database can take a write transaction now; returns the applied migrations.
    /// A check that does not finish within `timeout` fails with `StoreError.unavailable`.
    func checkWritable(timeout: Duration) async throws -> Int
    /// Closes every connection; further use throws.
    func shutdown() async
}

extension SQLiteConnection: MetadataConnection {
    public var dialect: MetadataDialect { .sqlite }
}

extension SQLiteDatabase: MetadataDatabase {
    public var dialect: MetadataDialect { .sqlite }
    public var location: String { path }
    public var localDirectory: String? { (path as NSString).deletingLastPathComponent }

    @_disfavoredOverload @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T {
        try await write { (c: SQLiteConnection) in try body(c) }
    }

    @_disfavoredOverload
    public func read<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T {
        try await read { (c: SQLiteConnection) in try body(c) }
    }

    public func checkWritable(timeout: Duration) async throws -> Int {
        try await StoreReadiness.checkWritable(self, timeout: timeout)
    }

    public func shutdown() async { close() }
}

extension MetadataDialect {
    /// The locking clause of a work claim's `SELECT` (`of`: the table alias to lock, for a query
    /// that joins): on Postgres `FOR UPDATE [OF …] SKIP LOCKED`, so backends claiming at once take
    /// different rows instead of waiting on (or conflicting over) each other's; nothing on SQLite,
    /// whose single writer serializes claims already.
    public func skipLocked(of alias: String? = nil) -> String {
        switch self {
        case .sqlite: ""
        case .postgres: " FOR UPDATE" + (alias.map { " OF " + $0 } ?? "") + " SKIP LOCKED"
        }
    }
}

extension MetadataDatabase {
    /// A write transaction for claiming shared work with `skipLocked(of:)`: READ COMMITTED on
    /// Postgres (rows locked by another claimer are skipped, and a row another claimer changed is
    /// re-checked against the statement's conditions instead of failing the transaction), the
    /// ordinary write on SQLite.
    @discardableResult
    public func claimWrite<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T {
        if let pg = self as? PostgresMetadataDatabase { return try await pg.writeReadCommitted(body) }
        return try await write(body)
    }
}
