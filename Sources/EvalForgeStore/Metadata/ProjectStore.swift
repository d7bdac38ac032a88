import EvalForgeCrypto
import Foundation

/// A project: the unit of data isolation. Every span, rollup and score belongs to one.
public struct Project: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    /// Days of telemetry kept; 0 keeps everything.
    public var retentionDays: Int
    public var createdUnixNanos: Int64

    public init(id: String, name: String, retentionDays: Int = 0, createdUnixNanos: Int64 = 0) {
        self.id = id
        self.name = name
        self.retentionDays = retentionDays
        self.createdUnixNanos = createdUnixNanos
    }
}

/// An API key as stored: only its SHA-256 hash and a short prefix for display.
public struct APIKeyRecord: Sendable, Hashable, Codable {
    public var id: String
    public var projectID: String
    public var name: String
    /// First characters of the key ("ef_1a2b…"), to tell keys apart in listings.
    public var prefix: String
    public var createdUnixNanos: Int64
    public var revoked: Bool
}

/// Projects and their API keys, in the backend's SQLite metadata file (kept in SQLite whichever
/// store holds the telemetry). Keys are stored as SHA-256 hashes; the plaintext is shown once.
public final class ProjectStore: Sendable {
    public let db: SQLiteDatabase

    public init(db: SQLiteDatabase) {
        self.db = db
    }

    static let migrations = SQLiteMigrator([
        .init("meta.001_projects", """
            CREATE TABLE projects (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                retention_days INTEGER NOT NULL DEFAULT 0,
                created_unix_nanos INTEGER NOT NULL
            );
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL REFERENCES projects(id),
                key_hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                name TEXT NOT NULL,
                created_unix_nanos INTEGER NOT NULL,
                revoked INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX api_keys_project ON api_keys(project_id);
            """),
    ])

    public func migrate() async throws {
        try await Self.migrations.apply(to: db)
    }

    /// Creates the project, or updates its name and retention when it exists.
    public func upsert(_ project: Project) async throws {
        let now = Self.nowNanos()
        try await db.write { c in
            try c.run("""
                INSERT INTO projects (id, name, retention_days, created_unix_nanos) VALUES (?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name, retention_days = excluded.retention_days
                """, [.text(project.id), .text(project.name), .integer(Int64(project.retentionDays)), .integer(project.createdUnixNanos == 0 ? now : project.createdUnixNanos)])
        }
    }

    public func project(id: String) async throws -> Project? {
        try await db.read { c in
            try c.query("SELECT id, name, retention_days, created_unix_nanos FROM projects WHERE id = ?", [.text(id)]).first.map(Self.project)
        }
    }

    public func projects() async throws -> [Project] {
        try await db.read { c in try c.query("SELECT id, name, retention_days, created_unix_nanos FROM projects ORDER BY id").map(Self.project) }
    }

    /// Generates a new key for `projectID`; returns the plaintext (shown once) and its record.
    public func createKey(projectID: String, name: String) async throws -> (key: String, record: APIKeyRecord) {
        let key = "ef_" + Digest.hex(Digest.randomBytes(24))
        let record = try await addKey(key, projectID: projectID, name: name)
        return (key, record)
    }

    /// Registers a caller-chosen plaintext key (e.g. `evalforge dev --api-key`). Idempotent for the
    /// same key and project; a key already bound to another project is refused.
    @discardableResult
    public func addKey(_ key: String, projectID: String, name: String) async throws -> APIKeyRecord {
        guard key.utf8.count >= 8, key.utf8.count <= 256 else {
            throw StoreError.invalidArgument("an API key must be 8 to 256 characters long")
        }
        let hash = Digest.sha256Hex(key)
        let record = APIKeyRecord(id: String(hash.prefix(16)), projectID: projectID, name: name, prefix: String(key.prefix(7)) + "…", createdUnixNanos: Self.nowNanos(), revoked: false)
        return try await db.write { c in
            if let existing = try c.query("SELECT project_id FROM api_keys WHERE key_hash = ?", [.text(hash)]).first {
                guard existing["project_id"].string == projectID else {
                    throw StoreError.invalidArgument("this API key already belongs to another project")
                }
                return record
            }
            try c.run("INSERT INTO api_keys (id, project_id, key_hash, prefix, name, created_unix_nanos) VALUES (?, ?, ?, ?, ?, ?)",
                      [.text(record.id), .text(projectID), .text(hash), .text(record.prefix), .text(name), .integer(record.createdUnixNanos)])
            return record
        }
    }

    /// The project a plaintext key authenticates, or nil for an unknown or revoked key.
    public func authenticate(key: String) async throws -> Project? {
        guard !key.isEmpty, key.utf8.count <= 256 else { return nil }
        let hash = Digest.sha256Hex(key)
        return try await db.read { c in
            try c.query("""
                SELECT p.id, p.name, p.retention_days, p.created_unix_nanos FROM api_keys k
                JOIN projects p ON p.id = k.project_id WHERE k.key_hash = ? AND k.revoked = 0
                """, [.text(hash)]).first.map(Self.project)
        }
    }

    public func keys(projectID: String) async throws -> [APIKeyRecord] {
        try await db.read { c in
            try c.query("SELECT id, project_id, name, prefix, created_unix_nanos, revoked FROM api_keys WHERE project_id = ? ORDER BY created_unix_nanos", [.text(projectID)]).map { r in
                APIKeyRecord(id: r["id"].string ?? "", projectID: r["project_id"].string ?? "", name: r["name"].string ?? "", prefix: r["prefix"].string ?? "", createdUnixNanos: r["created_unix_nanos"].int64 ?? 0, revoked: (r["revoked"].int64 ?? 0) != 0)
            }
        }
    }

    public func revokeKey(id: String, projectID: String) async throws {
        try await db.write { c in
            _ = try c.run("UPDATE api_keys SET revoked = 1 WHERE id = ? AND project_id = ?", [.text(id), .text(projectID)])
        }
    }

    static func project(_ r: SQLiteRow) -> Project {
        Project(id: r["id"].string ?? "", name: r["name"].string ?? "", retentionDays: Int(r["retention_days"].int64 ?? 0), createdUnixNanos: r["created_unix_nanos"].int64 ?? 0)
    }

    static func nowNanos() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }
}
