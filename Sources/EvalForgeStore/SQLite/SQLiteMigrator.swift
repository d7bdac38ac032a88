/// Applies versioned schema migrations once each, in order, recording them in `schema_migrations`
/// (one table shared by every component that keeps tables in the same file; names are namespaced,
/// e.g. "store.001_spans", "eval.001_datasets").
public struct SQLiteMigrator: Sendable {
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
    public func apply(to db: SQLiteDatabase) async throws {
        let all = migrations
        try await db.write { c in
            try c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_unix INTEGER NOT NULL)")
        }
        for m in all {
            try await db.write { c in
                let done = try c.scalar("SELECT 1 FROM schema_migrations WHERE name = ?", [.text(m.name)])
                guard done == nil else { return }
                do {
                    try c.execute(m.sql)
                } catch let e as StoreError {
                    throw StoreError.schema("migration \(m.name) failed: \(e.message)")
                }
                try c.run("INSERT INTO schema_migrations (name, applied_unix) VALUES (?, ?)", [.text(m.name), .integer(Int64(Date().timeIntervalSince1970))])
            }
        }
    }
}

import Foundation
