import EvalForgeCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// How the backend reaches its Postgres metadata database (`--postgres-url`).
public struct PostgresMetadataConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// Connections (and threads running transaction bodies) at most: `poolSizeRange`.
    public var poolSize: Int = 8
    /// Giving up on opening one connection (TCP, startup, authentication).
    public var connectTimeout: Duration = .seconds(10)
    /// Server-side `statement_timeout`; the client closes a connection whose statement has not
    /// answered within this plus 5 s (a hung server or network).
    public var statementTimeout: Duration = .seconds(30)
    /// Runs of one transaction body at most when it fails on a transient error (`attemptsRange`).
    public var attempts: Int = 5
    /// A local folder for the secrets key file when none is configured (`--data-dir`).
    public var localDirectory: String?
    /// The schema the tables live in (URL parameter `search_path`; default: the server's, `public`).
    public var searchPath: String?
    /// How the connections appear in `pg_stat_activity` (URL parameter `application_name`).
    public var applicationName = "evalforge-backend"
    /// TLS to the server, libpq's `sslmode` (URL parameter): `disable` and `allow` connect without
    /// TLS, `prefer` (libpq's default) uses TLS when the server offers it, `require` insists on it
    /// without checking the certificate, `verify-ca` checks the chain, `verify-full` the chain and
    /// the host name. Default `prefer`.
    public var sslMode: SSLMode = .prefer
    /// CA certificates (PEM) that verify the server for `verify-ca` and `verify-full` (URL parameter
    /// `sslrootcert`); nil: the system's trust store.
    public var sslRootCertificate: String?

    /// libpq's `sslmode` values.
    public enum SSLMode: String, Sendable, Equatable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public static let poolSizeRange = 1...256
    public static let attemptsRange = 1...20

    /// Parses `postgres://user[:password]@host[:port]/database[?sslmode=verify-full&sslrootcert=/path]`.
    public init(url: String) throws {
        func bad(_ why: String) -> StoreError { .invalidArgument("--postgres-url '\(Self.redact(url))': \(why)") }
        guard url.utf8.count <= 2048, let c = URLComponents(string: url) else { throw bad("not a URL") }
        guard let scheme = c.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw bad("the scheme must be postgres:// or postgresql://")
        }
        guard let host = c.host, !host.isEmpty else { throw bad("no host (unix sockets are not supported: use 127.0.0.1)") }
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let p = c.port {
            guard (1...65535).contains(p) else { throw bad("port \(p) is out of range") }
            port = p
        } else {
            port = 5432
        }
        username = (c.user?.isEmpty == false ? c.user : nil) ?? "postgres"
        password = c.password
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        guard !path.contains("/") else { throw bad("the path must be one database name") }
        database = path.isEmpty ? username : path
        for item in c.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let v = item.value.flatMap(SSLMode.init(rawValue:)) else {
                    throw bad("sslmode=\(item.value?.prefix(32) ?? "") is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                sslMode = v
            case "sslrootcert":
                guard let v = item.value, (1...1024).contains(v.utf8.count), v.hasPrefix("/") else { throw bad("sslrootcert must be an absolute path to a PEM file") }
                sslRootCertificate = v
            case "connect_timeout":
                guard let v = item.value.flatMap({ Int($0) }), (1...600).contains(v) else { throw bad("connect_timeout must be 1 to 600 seconds") }
                connectTimeout = .seconds(v)
            case "application_name":
                guard let v = item.value, (1...63).contains(v.utf8.count), v.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
                    throw bad("application_name must be 1 to 63 printable ASCII characters without spaces")
                }
                applicationName = v
            case "search_path":
                guard let v = item.value, (1...63).contains(v.utf8.count), v.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 95 }) else {
                    throw bad("search_path must be one schema name of lower-case letters, digits and '_'")
                }
                searchPath = v
            default:
                throw bad("unknown parameter '\(item.name.prefix(64))' (known: sslmode, sslrootcert, connect_timeout, application_name, search_path)")
            }
        }
        if sslRootCertificate != nil, ![.verifyCA, .verifyFull].contains(sslMode) {
            throw bad("sslrootcert is used with sslmode=verify-ca or verify-full (it is sslmode=\(sslMode.rawValue))")
        }
    }

    /// What postgres-nio connects with: the TLS context is made once (reading `sslRootCertificate`)
    /// and shared by every connection.
    func makeTLS() throws -> PostgresConnection.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable, .allow:
            return .disable
        case .prefer, .require:
            tls.certificateVerification = .none
        case .verifyCA, .verifyFull:
            tls.certificateVerification = sslMode == .verifyFull ? .fullVerification : .noHostnameVerification
            if let path = sslRootCertificate {
                do {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
                } catch {
                    throw StoreError.invalidArgument("--postgres-url sslrootcert '\(path)': not a readable PEM certificate file (\(error))")
                }
            }
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw StoreError.invalidArgument("--postgres-url: cannot set up TLS (\(error))")
        }
        return sslMode == .prefer ? .prefer(context) : .require(context)
    }

    /// The URL without its password, for messages and logs.
    public var redactedURL: String {
        "postgres://\(username)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)?sslmode=\(sslMode.rawValue)" + (searchPath.map { "&search_path=\($0)" } ?? "")
    }

    static func redact(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.password != nil else { return String(url.prefix(200)) }
        c.password = "***"
        return String((c.string ?? "").prefix(200))
    }
}

/// The metadata database on a Postgres server (15 or later), shared by any number of backends.
///
/// Each transaction body is a synchronous closure run on a dedicated thread pool with one thread
/// per pooled connection, so a body always finds a connection, holds it for its whole transaction,
/// and waits on postgres-nio's futures from that thread (never from an event loop or the
/// cooperative pool). Writes run `SERIALIZABLE` (the single-writer semantics of the SQLite file:
/// read-check-write bodies such as rate-limit leases stay exact); reads run on a `REPEATABLE READ
/// READ ONLY` snapshot.
///
/// Transient failures — a connection refused, reset or closed, serialization failure (40001, and 23505 from a check-then-insert race),
/// deadlock (40P01), admin shutdown (57P01…), too many connections (53300) — run the whole body
/// again, up to `attempts` times with exponential backoff (conflicts up to four times as often,
/// with short jittered waits), but only when COMMIT had not been sent
/// or the server answered it with an error (nothing committed). A connection lost while COMMIT was
/// in flight fails with `StoreError.unavailable` instead: the outcome is unknown and re-running a
/// non-idempotent body could apply it twice. Bodies must therefore touch nothing but the connection
/// (see `MetadataDatabase`).
public final class PostgresMetadataDatabase: MetadataDatabase {
    public let configuration: PostgresMetadataConfiguration
    public var dialect: MetadataDialect { .postgres }
    public var location: String { configuration.redactedURL }
    public var localDirectory: String? { configuration.localDirectory }

    private let threads: NIOThreadPool
    private let group: any EventLoopGroup
    private let idle = NIOLockedValueBox<[PostgresConnection]>([])
    private let closed = NIOLockedValueBox(false)
    private let nextID = NIOLockedValueBox(0)
    private let probing = NIOLockedValueBox(false)
    private let tls: PostgresConnection.Configuration.TLS
    let logger: Logger
    /// `?`-to-`$n` translations by SQL text (bounded: texts with interpolated limits vary).
    private let translated = NIOLockedValueBox<[String: String]>([:])

    /// Opens the pool and checks one connection, so a wrong URL, password or database fails here
    /// with a message naming the server.
    public init(configuration: PostgresMetadataConfiguration, logger: Logger = Logger(label: "evalforge.postgres"), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        var configuration = configuration
        configuration.poolSize = min(max(configuration.poolSize, PostgresMetadataConfiguration.poolSizeRange.lowerBound), PostgresMetadataConfiguration.poolSizeRange.upperBound)
        configuration.attempts = min(max(configuration.attempts, PostgresMetadataConfiguration.attemptsRange.lowerBound), PostgresMetadataConfiguration.attemptsRange.upperBound)
        self.configuration = configuration
        self.logger = logger
        self.group = group
        tls = try configuration.makeTLS()
        threads = NIOThreadPool(numberOfThreads: configuration.poolSize)
        threads.start()
        do {
            _ = try await read { c in try c.scalar("SELECT 1") }
        } catch {
            await shutdown()
            throw StoreError.unavailable("Postgres metadata database \(configuration.redactedURL): \((error as? StoreError)?.message ?? "\(error)")")
        }
    }

    /// A pool dropped without `shutdown()` (a failed start) still ends its threads and connections.
    deinit {
        guard !closed.withLockedValue({ $0 }) else { return }
        threads.shutdownGracefully { _ in }
        for c in idle.withLockedValue({ $0 }) { Self.discard(c) }
    }

    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T {
        try await transaction(.serializable, body)
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T {
        try await transaction(.readOnly, body)
    }

    /// A write in READ COMMITTED: each statement sees what committed before it, which migrations
    /// need after waiting on their advisory lock (a serializable snapshot would predate the other
    /// backend's migration and run it again), and which work claims with `FOR UPDATE SKIP LOCKED`
    /// want (rows locked by another claimer are skipped instead of failing the transaction).
    @discardableResult
    public func writeReadCommitted<T: Sendable>(_ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T {
        try await transaction(.readCommitted, body)
    }

    /// One write transaction, one attempt: not a standby, not read-only (the no-op UPDATE is refused
    /// in a read-only transaction), and the applied migrations. At most one check runs at a time:
    /// a check still waiting on an unreachable server (up to the connect timeout) makes the next
    /// one fail at once instead of taking another pool thread.
    public func checkWritable(timeout: Duration) async throws -> Int {
        let busy = probing.withLockedValue { p -> Bool in defer { p = true }; return p }
        guard !busy else { throw StoreError.unavailable("Postgres \(location): the previous readiness check has not finished (server unreachable or slow)") }
        let task = Task {
            defer { probing.withLockedValue { $0 = false } }
            return try await transaction(.serializable, attempts: 1) { c in
                if try c.scalar("SELECT pg_is_in_recovery()")?.int64 == 1 {
                    throw StoreError.unavailable("the server is a read-only standby")
                }
                try c.run("UPDATE schema_migrations SET applied_unix = applied_unix WHERE 1 = 0")
                return Int(clamping: try c.scalar("SELECT count(*) FROM schema_migrations")?.int64 ?? 0)
            }
        }
        return try await StoreReadiness.withDeadline(timeout, what: "Postgres \(location)") { try await task.value }
    }

    public func shutdown() async {
        let wasClosed = closed.withLockedValue { c -> Bool in defer { c = true }; return c }
        guard !wasClosed else { return }
        try? await threads.shutdownGracefully()
        let conns = idle.withLockedValue { i -> [PostgresConnection] in defer { i = [] }; return i }
        for c in conns { try? await c.close() }
    }

    // MARK: Transactions

    enum Isolation {
        case serializable, readOnly, readCommitted
        var begin: String {
            switch self {
            case .serializable: "BEGIN ISOLATION LEVEL SERIALIZABLE"
            case .readOnly: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
            case .readCommitted: "BEGIN ISOLATION LEVEL READ COMMITTED"
            }
        }
    }

    private func transaction<T: Sendable>(_ isolation: Isolation, attempts: Int? = nil, _ body: @escaping @Sendable (any MetadataConnection) throws -> T) async throws -> T {
        guard !closed.withLockedValue({ $0 }) else { throw StoreError.unavailable("the Postgres metadata database \(location) is closed") }
        let attempts = attempts ?? configuration.attempts
        do {
            return try await threads.runIfActive { try self.runTransaction(isolation, attempts: attempts, body) }
        } catch let e as NIOThreadPoolError.ThreadPoolInactive {
            _ = e
            throw StoreError.unavailable("the Postgres metadata database \(location) is closed")
        }
    }

    /// Runs on a pool thread: the whole transaction, retried on transient failures.
    private func runTransaction<T>(_ isolation: Isolation, attempts: Int, _ body: (any MetadataConnection) throws -> T) throws -> T {
        var attempt = 0
        var conflicts = 0
        while true {
            attempt += 1
            let outcome: Result<T, any Error>
            var retry = false
            var conflict = false
            var connection: PostgresConnection?
            do {
                let conn = try checkout()
                connection = conn
                let c = PostgresMetadataConnection(conn, database: self)
                do {
                    try c.command(isolation.begin)
                    let result = try body(c)
                    c.commitSent = true
                    let tag = try c.command("COMMIT")
                    guard tag != "ROLLBACK" else {
                        // A statement failed and the body went on (Postgres then ends the transaction).
                        throw c.lastFailure ?? StoreError.io("Postgres rolled the transaction back: a statement in it failed")
                    }
                    outcome = .success(result)
                } catch {
                    if !c.commitSent || c.lastTransient == .conflict { _ = try? c.command("ROLLBACK") }
                    if let t = c.lastTransient {
                        // Safe to run again: nothing committed (commit never sent, or refused by the server).
                        retry = !c.commitSent || t == .conflict
                        conflict = t == .conflict
                        if !retry {
                            outcome = .failure(StoreError.unavailable("Postgres \(location): the connection was lost while committing; the outcome is unknown (\((error as? StoreError)?.message ?? "\(error)"))"))
                        } else {
                            outcome = .failure(error)
                        }
                    } else {
                        outcome = .failure(error)
                    }
                }
                if c.broken { connection = nil; Self.discard(conn) }
            } catch {
                // Connecting failed: always safe to retry.
                retry = true
                outcome = .failure(error)
            }
            if let connection { checkin(connection) }
            switch outcome {
            case .success(let v): return v
            case .failure(let e):
                if conflict { conflicts += 1 }
                // Serialization conflicts are expected when transactions touch the same rows (one of
                // them always commits), so they get four times the budget, with short full-jitter
                // waits; connection failures get `attempts`, backing off up to 1 s.
                let failures = attempt - conflicts
                guard retry, failures < attempts, conflicts < attempts * 4, !closed.withLockedValue({ $0 }) else {
                    if retry, attempts > 1 { throw StoreError.unavailable("\((e as? StoreError)?.message ?? "Postgres \(location): \(e)") (after \(attempt) attempts)") }
                    throw e
                }
                if conflict {
                    // Up to 5 ms, 10 ms, 20 ms … 250 ms, uniformly: contenders spread out.
                    usleep(UInt32(Int.random(in: 0...min(250_000, 5_000 << min(conflicts - 1, 10)))))
                } else {
                    // 20 ms, 40 ms, 80 ms … at most 1 s, with jitter so retrying backends spread out.
                    let pause = Backoff.delay(attempt: failures, initial: .milliseconds(20), max: .seconds(1))
                    usleep(UInt32(clamping: Backoff.milliseconds(pause).multipliedSaturated(by: 1000)))
                }
            }
        }
    }

    private func checkout() throws -> PostgresConnection {
        while let c = idle.withLockedValue({ $0.popLast() }) {
            if !c.isClosed { return c }
        }
        let id = nextID.withLockedValue { n -> Int in n = n &+ 1; return n }
        var pg = PostgresConnection.Configuration(host: configuration.host, port: configuration.port, username: configuration.username,
                                                 password: configuration.password, database: configuration.database, tls: tls)
        pg.options.connectTimeout = .nanoseconds(StoreReadiness.nanoseconds(configuration.connectTimeout))
        let timeoutMs = max(1, StoreReadiness.nanoseconds(configuration.statementTimeout) / 1_000_000)
        pg.options.additionalStartupParameters = [("statement_timeout", "\(timeoutMs)"), ("application_name", configuration.applicationName)]
            + (configuration.searchPath.map { [("search_path", $0)] } ?? [])
        do {
            return try PostgresConnection.connect(on: group.next(), configuration: pg, id: id, logger: logger).wait()
        } catch {
            throw StoreError.unavailable("cannot connect to Postgres \(location): \(PostgresMetadataConnection.describe(error))")
        }
    }

    private func checkin(_ c: PostgresConnection) {
        let keep = !closed.withLockedValue({ $0 }) && !c.isClosed
        if keep { idle.withLockedValue { $0.append(c) } } else { Self.discard(c) }
    }

    /// Closes `c` in the background, keeping it alive until its channel is closed.
    private static func discard(_ c: PostgresConnection) {
        c.close().whenComplete { _ in withExtendedLifetime(c) {} }
    }

    /// `sql` with `?` and `?N` placeholders outside quotes and comments as `$n`, cached per text.
    func postgresSQL(_ sql: String) -> String {
        if let t = translated.withLockedValue({ $0[sql] }) { return t }
        let t = PostgresSQL.placeholders(sql)
        translated.withLockedValue { m in
            if m.count >= 4096 { m.removeAll(keepingCapacity: true) }
            m[sql] = t
        }
        return t
    }
}

/// One pooled connection inside one transaction (see `PostgresMetadataDatabase`).
final class PostgresMetadataConnection: MetadataConnection {
    enum Transient { case conflict, connection }

    let conn: PostgresConnection
    unowned let database: PostgresMetadataDatabase
    var dialect: MetadataDialect { .postgres }
    var commitSent = false
    /// The connection cannot be reused (closed, or a statement outlived its deadline).
    var broken = false
    /// Set when a statement failed in a way that a fresh run of the transaction may not.
    var lastTransient: Transient?
    var lastFailure: StoreError?

    init(_ conn: PostgresConnection, database: PostgresMetadataDatabase) {
        self.conn = conn
        self.database = database
    }

    /// postgres-nio speaks the extended protocol only (one statement per message): statements
    /// are sent one by one, in the caller's transaction.
    func execute(_ sql: String) throws {
        for statement in PostgresSQL.statements(sql) { _ = try command(statement) }
    }

    @discardableResult
    func run(_ sql: String, _ binds: [MetadataValue]) throws -> Int {
        let r = try wait(conn.query(PostgresQuery(unsafeSQL: database.postgresSQL(sql), binds: Self.bindings(binds)), logger: database.logger), sql)
        return r.metadata.rows ?? 0
    }

    func forEach(_ sql: String, _ binds: [MetadataValue], _ body: (MetadataRow) throws -> Void) throws {
        let r = try wait(conn.query(PostgresQuery(unsafeSQL: database.postgresSQL(sql), binds: Self.bindings(binds)), logger: database.logger), sql)
        var columns: [String]?
        for row in r.rows {
            var values: [MetadataValue] = []
            var names: [String] = []
            for cell in row {
                values.append(try Self.value(cell))
                if columns == nil { names.append(cell.columnName) }
            }
            if columns == nil { columns = names }
            try body(MetadataRow(columns: columns ?? names, values: values))
        }
    }

    /// A statement without parameters through the extended protocol; returns its command tag.
    @discardableResult
    func command(_ sql: String) throws -> String {
        try wait(conn.query(PostgresQuery(unsafeSQL: sql), logger: database.logger), sql).metadata.command
    }

    /// Waits for `future` from this pool thread, closing the connection when the statement outlives
    /// the statement timeout by 5 s (the server did not end it: hung server or network).
    private func wait<V: Sendable>(_ future: EventLoopFuture<V>, _ sql: String) throws -> V {
        let limit = StoreReadiness.nanoseconds(database.configuration.statementTimeout).addingSaturated(5_000_000_000)
        let conn = self.conn
        let guardTask = future.eventLoop.scheduleTask(in: .nanoseconds(limit)) { conn.close().whenComplete { _ in } }
        defer { guardTask.cancel() }
        do {
            return try future.wait()
        } catch {
            let failure = classify(error, sql)
            lastFailure = failure
            throw failure
        }
    }

    private func classify(_ error: any Error, _ sql: String) -> StoreError {
        let text = Self.describe(error)
        guard let pg = error as? PSQLError else {
            // Not from the protocol: the channel failed (I/O error, closed by the deadline).
            broken = true
            lastTransient = .connection
            return .unavailable("Postgres \(database.location): \(text)")
        }
        if pg.code == .server {
            let state = pg.serverInfo?[.sqlState] ?? ""
            // 23505 too: a body that checks before it inserts (addKey, the bootstrap rows) is atomic on
            // SQLite's one writer, but two SERIALIZABLE transactions on Postgres can both find nothing
            // and one then fails the unique index (seen: two backends starting at once on a fresh
            // database). Run again, the body finds the row; a real duplicate fails again, the same.
            if state == "40001" || state == "40P01" || state == "23505" {
                lastTransient = .conflict
                return .io("Postgres: \(text)")
            }
            if state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300" {
                broken = true
                lastTransient = .connection
                return .unavailable("Postgres \(database.location): \(text)")
            }
            return .io("Postgres: \(text) (in: \(sql.prefix(160)))")
        }
        if [.connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection].contains(pg.code) {
            broken = true
            lastTransient = .connection
            return .unavailable("Postgres \(database.location): \(text)")
        }
        // Anything else (a value that does not decode, too many parameters): this statement's fault.
        return .io("Postgres: \(text) (in: \(sql.prefix(160)))")
    }

    static func describe(_ error: any Error) -> String {
        if let pg = error as? PSQLError {
            if let info = pg.serverInfo {
                return "\(info[.message] ?? "error") (SQLSTATE \(info[.sqlState] ?? "?"))"
            }
            if let u = pg.underlying { return "\(pg.code): \(u)" }
            return "\(pg.code)"
        }
        return "\(error)"
    }

    static func bindings(_ values: [MetadataValue]) -> PostgresBindings {
        var b = PostgresBindings(capacity: values.count)
        for v in values {
            switch v {
            case .null: b.appendNull()
            case .integer(let i): b.append(i)
            case .real(let d): b.append(d)
            case .text(let s): b.append(s)
            case .blob(let bytes): b.append(ByteBuffer(bytes: bytes))
            }
        }
        return b
    }

    /// A result cell as a metadata value; a type the stores never create fails with a message
    /// naming the column instead of trapping or guessing.
    static func value(_ cell: PostgresCell) throws -> MetadataValue {
        guard var bytes = cell.bytes else { return .null }
        do {
            switch cell.dataType {
            case .int8, .int4, .int2: return .integer(try cell.decode(Int64.self))
            case .float8, .float4: return .real(try cell.decode(Double.self))
            case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
            case .oid:
                guard cell.format == .binary, bytes.readableBytes == 4, let v = bytes.readInteger(as: UInt32.self) else { break }
                return .integer(Int64(v))
            case .numeric:
                let d = NSDecimalNumber(decimal: try cell.decode(Decimal.self)).doubleValue
                guard d.isFinite else { return .real(d) }
                // Whole numbers exactly representable as Int64 read back as integers (sum(), count()).
                if d == d.rounded(), abs(d) < 9.0e15 { return .integer(Int64(d)) }
                return .real(d)
            case .text, .varchar, .bpchar, .name, .json, .unknown:
                return .text(bytes.readString(length: bytes.readableBytes) ?? "")
            case .bytea: return .blob(Array(bytes.readableBytesView))
            default:
                break
            }
            throw StoreError.io("Postgres column '\(cell.columnName.prefix(64))' has type \(cell.dataType) (oid \(cell.dataType.rawValue)), which the metadata store does not read")
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError.io("Postgres column '\(cell.columnName.prefix(64))' of type \(cell.dataType) does not decode: \(error)")
        }
    }
}

/// Text transformations from the SQLite-shaped SQL the stores are written in to Postgres.
public enum PostgresSQL {
    /// `?` → `$1, $2, …` in order and `?N` → `$N`, outside '…' strings, "…" identifiers and `--` comments.
    public static func placeholders(_ sql: String) -> String {
        let u = Array(sql.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count + 16)
        var i = 0
        var n = 0
        let quote = UInt8(ascii: "'"), dquote = UInt8(ascii: "\""), q = UInt8(ascii: "?"), dash = UInt8(ascii: "-")
        while i < u.count {
            let ch = u[i]
            if ch == quote || ch == dquote {
                // Copy through the closing quote (a doubled quote inside is copied as two characters).
                out.append(ch)
                i += 1
                while i < u.count {
                    out.append(u[i])
                    if u[i] == ch { i += 1; break }
                    i += 1
                }
                continue
            }
            if ch == dash, i + 1 < u.count, u[i + 1] == dash {
                while i < u.count, u[i] != UInt8(ascii: "\n") { out.append(u[i]); i += 1 }
                continue
            }
            if ch == q {
                var j = i + 1
                while j < u.count, (48...57).contains(u[j]) { j += 1 }
                out.append(UInt8(ascii: "$"))
                if j > i + 1 {
                    out.append(contentsOf: u[(i + 1)..<j])
                } else {
                    n += 1
                    out.append(contentsOf: Array(String(n).utf8))
                }
                i = j
                continue
            }
            out.append(ch)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The statements of a script, split at `;` outside quotes and `--` comments (empty ones dropped).
    public static func statements(_ sql: String) -> [String] {
        var out: [String] = []
        var current: [UInt8] = []
        let u = Array(sql.utf8)
        var i = 0
        var quote: UInt8?
        while i < u.count {
            let ch = u[i]
            if let q = quote {
                current.append(ch)
                if ch == q { quote = nil }
            } else if ch == UInt8(ascii: "'") || ch == UInt8(ascii: "\"") {
                quote = ch
                current.append(ch)
            } else if ch == UInt8(ascii: "-"), i + 1 < u.count, u[i + 1] == UInt8(ascii: "-") {
                while i < u.count, u[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            } else if ch == UInt8(ascii: ";") {
                out.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
            } else {
                current.append(ch)
            }
            i += 1
        }
        out.append(String(decoding: current, as: UTF8.self))
        return out.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Schema text written for SQLite as Postgres types: 64-bit `INTEGER` (`BIGINT`), `REAL` as
    /// `DOUBLE PRECISION`, `BLOB` as `BYTEA`, `INTEGER PRIMARY KEY AUTOINCREMENT` as an identity
    /// column (never reused, like AUTOINCREMENT). Keywords are matched upper-case, as written.
    public static func schema(_ sql: String) -> String {
        var s = sql.replacingOccurrences(of: "INTEGER PRIMARY KEY AUTOINCREMENT", with: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        s = s.replacingOccurrences(of: "\\bINTEGER\\b", with: "BIGINT", options: .regularExpression)
        s = s.replacingOccurrences(of: "\\bREAL\\b", with: "DOUBLE PRECISION", options: .regularExpression)
        s = s.replacingOccurrences(of: "\\bBLOB\\b", with: "BYTEA", options: .regularExpression)
        return s
    }

    /// Functions the shared SQL relies on: SQLite's scalar two-argument `MIN`/`MAX` (Postgres has
    /// them as `LEAST`/`GREATEST`; an overload by argument count does not clash with the aggregates).
    /// Created (or replaced) under the migration lock at every start; not a numbered migration, so
    /// both databases count the same schema version.
    public static let functions = """
        CREATE OR REPLACE FUNCTION min(bigint, bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT LEAST($1, $2)';
        CREATE OR REPLACE FUNCTION max(bigint, bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT GREATEST($1, $2)';
        CREATE OR REPLACE FUNCTION min(double precision, double precision) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT LEAST($1, $2)';
        CREATE OR REPLACE FUNCTION max(double precision, double precision) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT GREATEST($1, $2)';
        """

    /// The key of the transaction-level advisory lock migrations take (two backends starting at
    /// once migrate one after the other). Arbitrary and fixed: "EvalForg" in ASCII.
    public static let migrationLockKey: Int64 = 0x4576_616C_466F_7267
}
