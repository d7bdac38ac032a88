import Foundation

/// Applies versioned schema migrations once each, in order, recording them in `schema_migrations`
/// (one table shared by every component that keeps tables in the same database; names are
/// namespaced, e.g. "store.001_spans", "eval.001_datasets"). The SQL is written for SQLite; on
/// Postgres its types are translated (`PostgresSQL.schema`) and every step runs under a
/// transaction-level advisory lock, so backends starting together migrate one after the other and
/// each migration is applied once.
public struct MetadataMigrator: Sendable {
    public struct Migration: Sendable {
        public let name: String
        public let sql: String
        public init(_ name: String, _ sql: String) {
            self.name = name
            self.sql = sql
        }
    }

    public let migrations: [Migration]

    public init(_ migrations: [Migration]) {
        self.migrations = migrations
    }

    /// Applies the migrations not yet recorded, each in its own transaction.
    public func apply(to db: any MetadataDatabase) async throws {
        let all = migrations
        try await Self.step(db) { c in
            if c.dialect == .postgres {
                try c.execute(PostgresSQL.functions)
                try c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_unix BIGINT NOT NULL)")
            } else {
                try c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_unix INTEGER NOT NULL)")
            }
        }
        for m in all {
            try await Self.step(db) { c in
                let done = try c.scalar("SELECT 1 FROM schema_migrations WHERE name = ?", [.text(m.name)])
                guard done == nil else { return }
                do {
                    try c.execute(c.dialect == .postgres ? PostgresSQL.schema(m.sql) : m.sql)
                } catch let e as StoreError {
                    throw StoreError.schema("migration \(m.name) failed: \(e.message)")
                }
                try c.run("INSERT INTO schema_migrations (name, applied_unix) VALUES (?, ?)", [.text(m.name), .integer(Int64(Date().timeIntervalSince1970))])
            }
        }
    }

    /// One migration transaction: SQLite's writer lock serializes it already; on Postgres it
    /// takes the migration advisory lock first, in READ COMMITTED so what it then reads includes
    /// what another backend committed while it waited.
    private static func step(_ db: any MetadataDatabase, _ body: @escaping @Sendable (any MetadataConnection) throws -> Void) async throws {
        if let pg = db as? PostgresMetadataDatabase {
            try await pg.writeReadCommitted { c in
                try c.run("SELECT pg_advisory_xact_lock(?)", [.integer(PostgresSQL.migrationLockKey)])
                try body(c)
            }
        } else {
            try await db.write(body)
        }
    }
}
