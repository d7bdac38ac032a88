import EvalForgeCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore

extension ClickHouseStore {
    public var schemaVersion: Int { flavor.migrations(database: db).last?.version ?? 0 }

    /// One query, no retry: the server answers, the database and its migrations table exist, and no
    /// replicated table of the database is read-only (a replica that lost ZooKeeper refuses inserts).
    public func checkReady(timeout: Duration) async throws -> Int {
        let sql = "SELECT toUInt32(max(version)), (SELECT count() FROM system.replicas WHERE database = '\(db)' AND is_readonly) FROM \(db).schema_migrations"
        var r = try await http.probe(sql, timeout: .nanoseconds(StoreReadiness.nanoseconds(timeout)))
        let version = Int(try r.integer(UInt32.self))
        let readOnly = try r.uint64()
        guard readOnly == 0 else {
            throw StoreError.unavailable("ClickHouse at \(configuration.url): \(readOnly) replicated table(s) of database \(db) are read-only (ZooKeeper unreachable?); inserts would fail")
        }
        return version
    }
}

extension SQLiteStore {
    public var schemaVersion: Int { SQLiteSchema.migrations.migrations.count }

    /// Takes the write lock (BEGIN IMMEDIATE) and reads the applied migrations: fails when the file
    /// is read-only, locked past the timeout, or gone.
    public func checkReady(timeout: Duration) async throws -> Int {
        try await StoreReadiness.checkWritable(db, timeout: timeout)
    }
}

/// Shared pieces of the stores' readiness checks.
public enum StoreReadiness {
    /// The schema version of a SQLite file: the migrations recorded in it (names are append-only).
    /// Checked inside a write transaction, so a file that cannot take writes fails; a check that
    /// does not finish within `timeout` (the writer is held by a long transaction, the disk hangs)
    /// fails with `StoreError.unavailable` while it finishes in the background.
    public static func checkWritable(_ db: SQLiteDatabase, timeout: Duration) async throws -> Int {
        let path = db.path
        return try await withDeadline(timeout, what: "SQLite \(path)") {
            let count = try await db.write { c in try c.scalar("SELECT count(*) FROM schema_migrations") }
            return Int(clamping: count?.int64 ?? 0)
        }
    }

    /// Runs `body` in its own task and returns its result, or throws `StoreError.unavailable` after
    /// `timeout` without waiting for it (a blocked file or socket call cannot be cancelled).
    public static func withDeadline<T: Sendable>(_ timeout: Duration, what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let once = ResumeOnce<T>()
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            once.set(c)
            Task {
                do { once.resume(with: .success(try await body())) } catch { once.resume(with: .failure(error)) }
            }
            Task {
                try? await Task.sleep(for: timeout)
                once.resume(with: .failure(StoreError.unavailable("\(what) did not answer the readiness check within \(timeout)")))
            }
        }
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        return max(1, s.multipliedSaturated(by: 1_000_000_000).addingSaturated(a / 1_000_000_000))
    }
}

/// A continuation resumed by whichever result comes first.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let state = NIOLockedValueBox<(continuation: CheckedContinuation<T, any Error>?, result: Result<T, any Error>?)>((nil, nil))

    func set(_ c: CheckedContinuation<T, any Error>) {
        let early = state.withLockedValue { s -> Result<T, any Error>? in
            if let r = s.result { return r }
            s.continuation = c
            return nil
        }
        if let early { c.resume(with: early) }
    }

    func resume(with result: Result<T, any Error>) {
        let c = state.withLockedValue { s -> CheckedContinuation<T, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.continuation = nil }
            return s.continuation
        }
        c?.resume(with: result)
    }
}

/// The schema versions this build migrates to, without opening a store (`evalforge --version`).
public enum StoreSchemaVersions {
    /// ClickHouse telemetry schema (`schema_migrations.version`; the same numbering on 18.16 and current servers).
    public static var clickHouse: Int { ClickHouseFlavor(version: "18.16").migrations(database: "evalforge").last?.version ?? 0 }
    /// Embedded SQLite telemetry schema (migrations recorded in its `schema_migrations`).
    public static var sqliteTelemetry: Int { SQLiteSchema.migrations.migrations.count }
    /// Migrations of the metadata file kept by this module (projects, keys, audit, UI sessions);
    /// the evaluation runner adds its own to the same file.
    public static var metadataStore: Int { ProjectStore.migrations.migrations.count + SessionStore.migrations.migrations.count + RateLimitStore.migrations.migrations.count }
}
