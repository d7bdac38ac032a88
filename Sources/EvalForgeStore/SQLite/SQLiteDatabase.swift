import CSQLite
import EvalForgeCore
import EvalForgeModel
import Foundation
import NIOConcurrencyHelpers
import NIOPosix

/// A SQLite database file in WAL mode: one writer connection and a small pool of reader
/// connections, each used by one caller at a time on NIO's blocking thread pool, so no Swift
/// concurrency thread ever waits on disk. Used by `SQLiteStore` and by the metadata stores
/// (projects, keys, datasets, runs, webhooks).
public final class SQLiteDatabase: Sendable {
    public let path: String
    private let writer: NIOLockedValueBox<SQLiteConnection>
    private let readers: [NIOLockedValueBox<SQLiteConnection>]
    private let nextReader = NIOLockedValueBox(0)
    private let pool: NIOThreadPool

    /// Opens (creating if needed) the database at `path` (":memory:" is not supported: readers need
    /// the file). `readers` reader connections serve queries concurrently with the writer.
    public init(path: String, readers: Int = 4, threadPool: NIOThreadPool = .singleton) throws {
        self.path = path
        // Owner-only: the file is created 0600 before SQLite opens it (SQLite gives the -wal and -shm
        // files the database's mode), its directory 0700; files of older versions are narrowed.
        let dir = (path as NSString).deletingLastPathComponent
        do {
            if !dir.isEmpty { try OwnerOnlyFiles.createDirectory(dir) }
            try OwnerOnlyFiles.prepareFile(path)
            for suffix in ["-wal", "-shm", "-journal"] { try OwnerOnlyFiles.narrowIfExists(path + suffix) }
        } catch {
            throw StoreError.io(error.message)
        }
        let w = try SQLiteConnection(path: path, readOnly: false)
        try w.execute("PRAGMA journal_mode=WAL")
        try w.execute("PRAGMA synchronous=FULL")
        try w.execute("PRAGMA foreign_keys=ON")
        writer = NIOLockedValueBox(w)
        self.readers = try (0..<max(1, readers)).map { _ in
            let r = try SQLiteConnection(path: path, readOnly: true)
            return NIOLockedValueBox(r)
        }
        pool = threadPool
    }

    /// Runs `body` inside one write transaction (BEGIN IMMEDIATE … COMMIT; ROLLBACK when it throws).
    public func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await pool.runIfActive { [writer] in
            try writer.withLockedValue { c in
                try c.execute("BEGIN IMMEDIATE")
                do {
                    let result = try body(c)
                    try c.execute("COMMIT")
                    return result
                } catch {
                    try? c.execute("ROLLBACK")
                    throw error
                }
            }
        }
    }

    /// Runs `body` on a reader connection (a consistent snapshot for the duration of one statement;
    /// wrap several statements in `BEGIN`/`COMMIT` inside `body` for one snapshot across them).
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        let index = nextReader.withLockedValue { i -> Int in
            i = (i + 1) % readers.count
            return i
        }
        let reader = readers[index]
        return try await pool.runIfActive {
            try reader.withLockedValue { c in try body(c) }
        }
    }

    /// Copies the WAL into the database file and empties the WAL (`wal_checkpoint(TRUNCATE)`), so
    /// no earlier version of a rewritten page stays on disk in the WAL (used after sealing secrets
    /// that were stored in plain text). Best effort: a reader holding an old snapshot keeps its frames.
    public func checkpointTruncatingWAL() async throws {
        try await pool.runIfActive { [writer] in
            try writer.withLockedValue { c in try c.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        }
    }

    /// Closes every connection. Further use throws.
    public func close() {
        writer.withLockedValue { $0.close() }
        for r in readers { r.withLockedValue { $0.close() } }
    }
}

/// A value bound to or read from a SQLite statement.
public enum SQLiteValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var int64: Int64? {
        switch self {
        case .integer(let i): i
        case .real(let d): d.isFinite ? CheckedNumbers.clampedInt64(d) : nil  // total() of huge values: clamped, never a trap
        case .text(let s): Int64(s)
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .real(let d): d
        case .text(let s): Double(s)
        default: nil
        }
    }

    public var string: String? {
        switch self {
        case .text(let s): s
        case .integer(let i): String(i)
        case .real(let d): String(d)
        case .blob(let b): String(decoding: b, as: UTF8.self)
        case .null: nil
        }
    }

    public var isNull: Bool { if case .null = self { true } else { false } }
}

extension SQLiteValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .real(value) }
    public init(nilLiteral: ()) { self = .null }
}

/// One result row: values by column index and by column name.
public struct SQLiteRow: Sendable {
    public let columns: [String]
    public let values: [SQLiteValue]

    public subscript(_ index: Int) -> SQLiteValue { index < values.count ? values[index] : .null }
    public subscript(_ name: String) -> SQLiteValue {
        guard let i = columns.firstIndex(of: name) else { return .null }
        return values[i]
    }
}

private let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection. Not thread-safe: `SQLiteDatabase` hands it to one closure at a time.
public final class SQLiteConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    init(path: String, readOnly: Bool) throws {
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        if !readOnly || FileManager.default.fileExists(atPath: path) {
            let rc = sqlite3_open_v2(path, &db, flags, nil)
            guard rc == SQLITE_OK, let db else {
                let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
                sqlite3_close(db)
                throw StoreError.io("cannot open SQLite database \(path): \(msg)")
            }
            handle = db
            sqlite3_busy_timeout(db, 10_000)
        } else {
            throw StoreError.io("cannot open SQLite database \(path) read-only: the file does not exist")
        }
    }

    deinit { close() }

    func close() {
        for (_, s) in statements { sqlite3_finalize(s) }
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    private func db() throws -> OpaquePointer {
        guard let handle else { throw StoreError.io("the SQLite database is closed") }
        return handle
    }

    private func error(_ what: String) -> StoreError {
        let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "closed"
        return StoreError.io("SQLite \(what): \(msg)")
    }

    /// Runs one or more statements without parameters or results.
    public func execute(_ sql: String) throws {
        let db = try db()
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(err)
            throw StoreError.io("SQLite: \(msg) (in: \(sql.prefix(120)))")
        }
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let s = statements[sql] {
            sqlite3_reset(s)
            sqlite3_clear_bindings(s)
            return s
        }
        let db = try db()
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw error("prepare failed for \(sql.prefix(200))")
        }
        statements[sql] = stmt
        return stmt
    }

    private func bind(_ stmt: OpaquePointer, _ binds: [SQLiteValue]) throws {
        for (i, v) in binds.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(stmt, idx)
            case .integer(let x): rc = sqlite3_bind_int64(stmt, idx, x)
            case .real(let x): rc = sqlite3_bind_double(stmt, idx, x)
            case .text(let s): rc = sqlite3_bind_text(stmt, idx, s, -1, SQLITE_TRANSIENT_DESTRUCTOR)
            case .blob(let b):
                rc = b.withUnsafeBytes { sqlite3_bind_blob(stmt, idx, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT_DESTRUCTOR) }
            }
            if rc != SQLITE_OK { throw error("bind of parameter \(idx) failed") }
        }
    }

    /// Runs a statement with parameters (`?` placeholders), returning the number of changed rows.
    @discardableResult
    public func run(_ sql: String, _ binds: [SQLiteValue] = []) throws -> Int {
        let stmt = try prepared(sql)
        defer { sqlite3_reset(stmt) }
        try bind(stmt, binds)
        var rc = sqlite3_step(stmt)
        while rc == SQLITE_ROW { rc = sqlite3_step(stmt) }
        guard rc == SQLITE_DONE else { throw error("step failed for \(sql.prefix(200))") }
        return Int(sqlite3_changes(try db()))
    }

    /// Runs a query with parameters and returns every row.
    public func query(_ sql: String, _ binds: [SQLiteValue] = []) throws -> [SQLiteRow] {
        var rows: [SQLiteRow] = []
        try forEach(sql, binds) { rows.append($0) }
        return rows
    }

    /// Runs a query with parameters and calls `body` for each row.
    public func forEach(_ sql: String, _ binds: [SQLiteValue] = [], _ body: (SQLiteRow) throws -> Void) throws {
        let stmt = try prepared(sql)
        defer { sqlite3_reset(stmt) }
        try bind(stmt, binds)
        let n = sqlite3_column_count(stmt)
        let names = (0..<n).map { String(cString: sqlite3_column_name(stmt, $0)) }
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error("step failed for \(sql.prefix(200))") }
            var values: [SQLiteValue] = []
            values.reserveCapacity(Int(n))
            for i in 0..<n {
                switch sqlite3_column_type(stmt, i) {
                case SQLITE_INTEGER: values.append(.integer(sqlite3_column_int64(stmt, i)))
                case SQLITE_FLOAT: values.append(.real(sqlite3_column_double(stmt, i)))
                case SQLITE_TEXT:
                    if let p = sqlite3_column_text(stmt, i) {
                        let len = Int(sqlite3_column_bytes(stmt, i))
                        values.append(.text(String(decoding: UnsafeBufferPointer(start: p, count: len), as: UTF8.self)))
                    } else { values.append(.text("")) }
                case SQLITE_BLOB:
                    let len = Int(sqlite3_column_bytes(stmt, i))
                    if let p = sqlite3_column_blob(stmt, i), len > 0 {
                        values.append(.blob(Array(UnsafeRawBufferPointer(start: p, count: len))))
                    } else { values.append(.blob([])) }
                default: values.append(.null)
                }
            }
            try body(SQLiteRow(columns: names, values: values))
        }
    }

    /// The first column of the first row, or nil.
    public func scalar(_ sql: String, _ binds: [SQLiteValue] = []) throws -> SQLiteValue? {
        var result: SQLiteValue?
        try forEach(sql, binds) { row in if result == nil { result = row[0] } }
        return result
    }

    /// SQLite library version, e.g. "3.40.1".
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }
}
