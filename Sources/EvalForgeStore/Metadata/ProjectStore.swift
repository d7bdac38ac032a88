import EvalForgeCrypto
import EvalForgeModel
import Foundation
import Synchronization

/// A project: the unit of data isolation. Every span, rollup and score belongs to one.
public struct Project: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    /// Days of telemetry kept as stored: N > 0 keeps N days, `Project.retentionDefault` (0) follows
    /// the server default (`--retention-days`), `Project.retentionForever` (-1) keeps everything
    /// whatever the default. Read it through `retention(default:)`.
    public var retentionDays: Int
    public var createdUnixNanos: Int64

    public init(id: String, name: String, retentionDays: Int = 0, createdUnixNanos: Int64 = 0) {
        self.id = id
        self.name = name
        self.retentionDays = retentionDays
        self.createdUnixNanos = createdUnixNanos
    }

    /// Stored `retentionDays` of a project that follows the server default (also every project
    /// created before retention could be set).
    public static let retentionDefault = 0
    /// Stored `retentionDays` of a project that keeps its telemetry forever.
    public static let retentionForever = -1
    /// Days a retention may be set to (ten years).
    public static let retentionDaysRange = 1...3650

    /// Days kept, with `defaultDays` (the server's, 0 = forever) for a project that follows it;
    /// 0 = keep forever. A stored value outside the known ones counts as the default.
    public func retention(default defaultDays: Int) -> Int {
        switch retentionDays {
        case Self.retentionForever: 0
        case Self.retentionDaysRange: retentionDays
        default: Self.retentionDaysRange.contains(defaultDays) ? defaultDays : 0
        }
    }

    /// True when the project follows the server default.
    public var followsDefaultRetention: Bool { retentionDays != Self.retentionForever && !Self.retentionDaysRange.contains(retentionDays) }
}

/// What a key may do. `ingest`: OTLP and forwarded batches; `read`: query API, export, UI;
/// `evaluate`: datasets, experiments, evaluators, scores; `admin`: keys, webhooks, providers,
/// settings of its project. A key has one or more.
public enum Scope: String, CaseIterable, Sendable, Codable, Hashable {
    case ingest, read, evaluate, admin

    /// Every scope: what keys created before scopes existed (and the bootstrap key) have.
    public static let all = Set(Scope.allCases)

    /// The scopes named in `names` (case-insensitive, surrounding spaces ignored); an unknown or an
    /// empty list is refused, naming the offender and the known scopes.
    public static func parse<S: Sequence<String>>(_ names: S) throws(AccessError) -> Set<Scope> {
        var out = Set<Scope>()
        for raw in names {
            let n = raw.trimmingCharacters(in: .whitespaces).lowercased()
            guard let s = Scope(rawValue: n) else {
                throw .invalid("unknown scope '\(raw.prefix(64))': use \(Scope.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            out.insert(s)
        }
        guard !out.isEmpty else { throw .invalid("a key needs at least one scope: \(Scope.allCases.map(\.rawValue).joined(separator: ", "))") }
        return out
    }

    /// Stored form: names in `allCases` order, comma-separated.
    static func text(_ scopes: Set<Scope>) -> String { allCases.filter(scopes.contains).map(\.rawValue).joined(separator: ",") }

    /// Scopes of a stored row; names this version does not know are ignored (never widened).
    static func fromText(_ text: String?) -> Set<Scope> {
        Set((text ?? "").split(separator: ",").compactMap { Scope(rawValue: String($0)) })
    }

    /// `scopes` in `allCases` order (stable in listings and JSON).
    public static func sorted(_ scopes: Set<Scope>) -> [Scope] { allCases.filter(scopes.contains) }
}

/// A refused project or key operation, with a message naming what was wrong.
public struct AccessError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Code: Sendable, Equatable { case invalid, notFound, conflict }
    private let code: Code
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A malformed or out-of-bounds argument (400).
    public static func invalid(_ message: String) -> AccessError { .init(.invalid, message) }
    /// The project or key does not exist (404).
    public static func notFound(_ message: String) -> AccessError { .init(.notFound, message) }
    /// The name or id is taken, or the operation contradicts the state (409).
    public static func conflict(_ message: String) -> AccessError { .init(.conflict, message) }

    public var isInvalid: Bool { code == .invalid }
    public var isNotFound: Bool { code == .notFound }
    public var isConflict: Bool { code == .conflict }
    public var description: String { message }
}

/// An API key as stored: only its SHA-256 hash and a short prefix for display.
public struct APIKeyRecord: Sendable, Hashable, Codable {
    public var id: String
    public var projectID: String
    public var name: String
    /// First characters of the key ("ef_1a2b3c4d…"), to tell keys apart in listings.
    public var prefix: String
    public var scopes: [Scope]
    public var createdUnixNanos: Int64
    /// When the key stops working; nil: never.
    public var expiresUnixNanos: Int64?
    /// Last successful authentication, to within `ProjectStore.lastUsedResolutionNanos`; nil: never.
    public var lastUsedUnixNanos: Int64?
    public var revoked: Bool

    /// "revoked", "expired" (now past its expiry) or "active", as listings show it.
    public var status: String {
        if revoked { return "revoked" }
        if let e = expiresUnixNanos, e <= ProjectStore.nowNanos() { return "expired" }
        return "active"
    }
}

/// The key a request authenticated with: its project and scopes.
public struct AuthenticatedKey: Sendable, Hashable {
    public var keyID: String
    public var project: Project
    public var scopes: Set<Scope>
}

/// One audit log entry: who (`admin-token`, `key:<id>`, `session:<id>`) did what, when, to what.
public struct AuditEntry: Sendable, Hashable, Codable {
    public var seq: Int64
    public var atUnixNanos: Int64
    public var actor: String
    public var action: String
    public var projectID: String
    public var target: String
    public var detail: String
}

/// Projects, their API keys, the instance admin token and the audit log, in the backend's metadata
/// database (the SQLite metadata file, or Postgres with `--postgres-url`, whichever store holds the telemetry). Keys and the admin token are
/// stored as SHA-256 hashes; a plaintext is shown once, when it is created.
public final class ProjectStore: Sendable {
    public let db: any MetadataDatabase
    /// `last_used` is written at most once per this interval per key (not once per request).
    public let lastUsedResolutionNanos: Int64
    private let lastUsedWritten = Mutex<[String: Int64]>([:])
    /// SHA-256 hex of the admin token once loaded (`.some(nil)`: none stored). Per process: a
    /// replacement by another backend reaches it through `forgetAdminToken` (the backend's cache
    /// generation poll, docs/scaling.md).
    private let adminTokenHash = Mutex<String??>(nil)

    /// Longest project or key name, in bytes.
    public static let maxNameBytes = 100
    /// Longest project id, in bytes.
    public static let maxProjectIDBytes = 64
    /// Longest key expiry and rotation overlap: ten years, in seconds.
    public static let maxLifetimeSeconds: Int64 = 10 * 366 * 86_400

    public init(db: any MetadataDatabase, lastUsedResolutionNanos: Int64 = 60_000_000_000) {
        self.db = db
        self.lastUsedResolutionNanos = lastUsedResolutionNanos
    }

    static let migrations = MetadataMigrator([
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
        // Scopes (keys from before get every scope: they were full keys), expiry, last use; the
        // instance admin token (hashed); the audit log (kept when a project is deleted).
        .init("meta.002_access", """
            ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'ingest,read,evaluate,admin';
            ALTER TABLE api_keys ADD COLUMN expires_unix_nanos INTEGER;
            ALTER TABLE api_keys ADD COLUMN last_used_unix_nanos INTEGER;
            CREATE TABLE admin_tokens (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                token_hash TEXT NOT NULL,
                created_unix_nanos INTEGER NOT NULL
            );
            CREATE TABLE audit_log (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                at_unix_nanos INTEGER NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                project_id TEXT NOT NULL DEFAULT '',
                target TEXT NOT NULL DEFAULT '',
                detail TEXT NOT NULL DEFAULT ''
            );
            CREATE INDEX audit_log_project ON audit_log(project_id, seq);
            """),
        // Generation counters of the caches every backend keeps (CacheGenerations).
        .init("meta.003_cache_generations", """
            CREATE TABLE cache_generations (
                name TEXT PRIMARY KEY,
                generation INTEGER NOT NULL
            );
            """),
    ])

    public func migrate() async throws {
        try await Self.migrations.apply(to: db)
    }

    // MARK: Projects

    /// Creates the project, or updates its name and retention when it exists.
    public func upsert(_ project: Project) async throws {
        let now = Self.nowNanos()
        try await db.write { c in
            _ = try c.run("""
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

    /// Creates a project named `name` with id `id` (default: derived from the name: lower case,
    /// runs of other characters as "-"). Refuses a taken id or name (409) and bad ones (400).
    public func createProject(name: String, id: String? = nil, actor: String) async throws -> Project {
        let name = try Self.validName(name, what: "project name")
        let id = try Self.validProjectID(id ?? Self.slug(name))
        let project = Project(id: id, name: name, createdUnixNanos: Self.nowNanos())
        return try await db.write { c in
            if try c.scalar("SELECT 1 FROM projects WHERE id = ?", [.text(id)]) != nil {
                throw AccessError.conflict("a project with id '\(id)' already exists")
            }
            if try c.scalar("SELECT 1 FROM projects WHERE name = ?", [.text(name)]) != nil {
                throw AccessError.conflict("a project named '\(name)' already exists")
            }
            try c.run("INSERT INTO projects (id, name, retention_days, created_unix_nanos) VALUES (?, ?, 0, ?)", [.text(id), .text(name), .integer(project.createdUnixNanos)])
            try Self.audit(c, actor: actor, action: "project.create", projectID: id, target: id, detail: "name=\(name)")
            return project
        }
    }

    /// Renames a project (its id, which keys and data refer to, stays).
    public func renameProject(id: String, to newName: String, actor: String) async throws -> Project {
        let name = try Self.validName(newName, what: "project name")
        return try await db.write { c in
            guard let old = try c.query("SELECT id, name, retention_days, created_unix_nanos FROM projects WHERE id = ?", [.text(id)]).first.map(Self.project) else {
                throw AccessError.notFound("no project with id '\(id.prefix(64))'")
            }
            if try c.scalar("SELECT 1 FROM projects WHERE name = ? AND id <> ?", [.text(name), .text(id)]) != nil {
                throw AccessError.conflict("a project named '\(name)' already exists")
            }
            try c.run("UPDATE projects SET name = ? WHERE id = ?", [.text(name), .text(id)])
            try Self.audit(c, actor: actor, action: "project.rename", projectID: id, target: id, detail: "name=\(old.name) -> \(name)")
            var p = old
            p.name = name
            return p
        }
    }

    /// Sets the project's retention: `days` in `Project.retentionDaysRange`, 0 to keep everything
    /// forever, nil to follow the server default. Audited with the old and new value.
    public func setRetention(id: String, days: Int?, actor: String) async throws -> Project {
        let stored: Int
        switch days {
        case nil: stored = Project.retentionDefault
        case 0: stored = Project.retentionForever
        case let d? where Project.retentionDaysRange.contains(d): stored = d
        case let d?:
            throw AccessError.invalid("retention_days: expected 0 (keep forever) or \(Project.retentionDaysRange.lowerBound) to \(Project.retentionDaysRange.upperBound) days, got \(d)")
        }
        return try await db.write { c in
            guard let old = try c.query("SELECT id, name, retention_days, created_unix_nanos FROM projects WHERE id = ?", [.text(id)]).first.map(Self.project) else {
                throw AccessError.notFound("no project with id '\(id.prefix(64))'")
            }
            try c.run("UPDATE projects SET retention_days = ? WHERE id = ?", [.integer(Int64(stored)), .text(id)])
            func text(_ v: Int) -> String { v == Project.retentionForever ? "forever" : v == Project.retentionDefault ? "default" : "\(v)d" }
            try Self.audit(c, actor: actor, action: "project.retention", projectID: id, target: id, detail: "retention=\(text(old.retentionDays)) -> \(text(stored))")
            var p = old
            p.retentionDays = stored
            return p
        }
    }

    /// Revokes every key of the project (first step of a delete: nothing new arrives for it).
    public func revokeAllKeys(projectID: String) async throws {
        try await db.write { c in _ = try c.run("UPDATE api_keys SET revoked = 1 WHERE project_id = ?", [.text(projectID)]) }
    }

    /// Deletes the project and every metadata row that belongs to it: each table of the metadata
    /// file with a `project_id` column (keys, evaluation tables, whatever later versions add), and
    /// the rows of tables that reference those rows by foreign key (dataset items, run items),
    /// in one transaction. The audit log is kept. Telemetry is the span store's (`deleteProject`).
    public func deleteProject(id: String, actor: String) async throws {
        try await db.write { c in
            guard try c.scalar("SELECT 1 FROM projects WHERE id = ?", [.text(id)]) != nil else {
                throw AccessError.notFound("no project with id '\(id.prefix(64))'")
            }
            let tables = try c.query(Self.catalog(c.dialect).tables).compactMap { $0["name"].string }
            var owned: Set<String> = []
            for t in tables where t != "audit_log" && t != "projects" {
                let columns = try c.query(Self.catalog(c.dialect).columns, [.text(t)]).compactMap { $0["name"].string }
                if columns.contains("project_id") { owned.insert(t) }
            }
            // Children first: rows referencing an owned table's rows, when they have no project_id.
            for t in tables where !owned.contains(t) && t != "audit_log" && t != "projects" {
                for fk in try c.query(Self.catalog(c.dialect).foreignKeys, [.text(t)]) {
                    guard let parent = fk["parent"].string, owned.contains(parent), let col = fk["col"].string else { continue }
                    let pcol = fk["pcol"].string ?? "id"
                    try c.run("DELETE FROM \(Self.ident(t)) WHERE \(Self.ident(col)) IN (SELECT \(Self.ident(pcol)) FROM \(Self.ident(parent)) WHERE project_id = ?)", [.text(id)])
                }
            }
            for t in owned.sorted() {
                try c.run("DELETE FROM \(Self.ident(t)) WHERE project_id = ?", [.text(id)])
            }
            try c.run("DELETE FROM projects WHERE id = ?", [.text(id)])
            try Self.audit(c, actor: actor, action: "project.delete", projectID: id, target: id, detail: "")
            // Its telemetry was deleted before: other backends forget what they merged of it.
            try CacheGenerations.bump(c, .telemetryDeletes)
        }
    }

    // MARK: Keys

    /// Generates a new key for `projectID` with `scopes`, expiring `expiresInSeconds` from now (nil:
    /// never); returns the plaintext (shown once) and its record. One transaction with its audit entry.
    public func createKey(projectID: String, name: String, scopes: Set<Scope> = Scope.all, expiresInSeconds: Int64? = nil, actor: String = "system") async throws -> (key: String, record: APIKeyRecord) {
        let name = try Self.validName(name, what: "key name")
        guard !scopes.isEmpty else { throw AccessError.invalid("a key needs at least one scope: \(Scope.allCases.map(\.rawValue).joined(separator: ", "))") }
        let now = Self.nowNanos()
        var expires: Int64?
        if let s = expiresInSeconds {
            guard s > 0, s <= Self.maxLifetimeSeconds else { throw AccessError.invalid("expiry must be between 1 second and \(Self.maxLifetimeSeconds / 86_400) days, got \(s) s") }
            expires = now.addingSaturated(s * 1_000_000_000)
        }
        let (key, record) = Self.newKey(projectID: projectID, name: name, scopes: scopes, now: now, expires: expires)
        let expiresText = expires.map { " expires=\($0)" } ?? ""
        try await db.write { c in
            guard try c.scalar("SELECT 1 FROM projects WHERE id = ?", [.text(projectID)]) != nil else {
                throw AccessError.notFound("no project with id '\(projectID.prefix(64))'")
            }
            try Self.insert(c, record, hash: Digest.sha256Hex(key))
            try Self.audit(c, actor: actor, action: "key.create", projectID: projectID, target: record.id, detail: "name=\(name) scopes=\(Scope.text(scopes))" + expiresText)
        }
        return (key, record)
    }

    /// Registers a caller-chosen plaintext key with every scope (e.g. `evalforge dev --api-key`).
    /// Idempotent for the same key and project; a key already bound to another project is refused.
    @discardableResult
    public func addKey(_ key: String, projectID: String, name: String) async throws -> APIKeyRecord {
        guard key.utf8.count >= 8, key.utf8.count <= 256 else {
            throw StoreError.invalidArgument("an API key must be 8 to 256 characters long")
        }
        let hash = Digest.sha256Hex(key)
        let record = APIKeyRecord(id: String(hash.prefix(16)), projectID: projectID, name: name, prefix: String(key.prefix(7)) + "…", scopes: Scope.sorted(Scope.all), createdUnixNanos: Self.nowNanos(), expiresUnixNanos: nil, lastUsedUnixNanos: nil, revoked: false)
        return try await db.write { c in
            if let existing = try c.query("SELECT project_id FROM api_keys WHERE key_hash = ?", [.text(hash)]).first {
                guard existing["project_id"].string == projectID else {
                    throw StoreError.invalidArgument("this API key already belongs to another project")
                }
                return record
            }
            try Self.insert(c, record, hash: hash)
            return record
        }
    }

    /// The project a plaintext key authenticates, or nil for an unknown, revoked or expired key.
    public func authenticate(key: String) async throws -> Project? {
        try await authenticateKey(key)?.project
    }

    /// The key, project and scopes a plaintext key authenticates, or nil for an unknown, revoked or
    /// expired key. Records the use at most once per `lastUsedResolutionNanos` per key.
    public func authenticateKey(_ key: String) async throws -> AuthenticatedKey? {
        guard !key.isEmpty, key.utf8.count <= 256 else { return nil }
        let hash = Digest.sha256Hex(key)
        let now = Self.nowNanos()
        let found = try await db.read { c in
            try c.query("""
                SELECT k.id AS key_id, k.scopes, p.id, p.name, p.retention_days, p.created_unix_nanos FROM api_keys k
                JOIN projects p ON p.id = k.project_id
                WHERE k.key_hash = ? AND k.revoked = 0 AND (k.expires_unix_nanos IS NULL OR k.expires_unix_nanos > ?)
                """, [.text(hash), .integer(now)]).first.map { r in
                AuthenticatedKey(keyID: r["key_id"].string ?? "", project: Self.project(r), scopes: Scope.fromText(r["scopes"].string))
            }
        }
        guard let found else { return nil }
        let due = lastUsedWritten.withLock { written -> Bool in
            if let last = written[found.keyID], now.subtractingSaturated(last) < lastUsedResolutionNanos { return false }
            written[found.keyID] = now
            return true
        }
        if due {
            // Best effort: a failed write only leaves `last used` older.
            _ = try? await db.write { c in try c.run("UPDATE api_keys SET last_used_unix_nanos = ? WHERE id = ?", [.integer(now), .text(found.keyID)]) }
        }
        return found
    }

    public func keys(projectID: String) async throws -> [APIKeyRecord] {
        try await db.read { c in
            try c.query("SELECT \(Self.keyColumns) FROM api_keys WHERE project_id = ? ORDER BY created_unix_nanos, id", [.text(projectID)]).map(Self.keyRecord)
        }
    }

    public func key(id: String) async throws -> APIKeyRecord? {
        try await db.read { c in try c.query("SELECT \(Self.keyColumns) FROM api_keys WHERE id = ?", [.text(id)]).first.map(Self.keyRecord) }
    }

    /// Revokes a key of `projectID` (any project when nil); it stops working at once.
    @discardableResult
    public func revokeKey(id: String, projectID: String? = nil, actor: String = "system") async throws -> APIKeyRecord {
        try await db.write { c in
            guard var record = try c.query("SELECT \(Self.keyColumns) FROM api_keys WHERE id = ?", [.text(id)]).first.map(Self.keyRecord),
                  projectID == nil || record.projectID == projectID else {
                throw AccessError.notFound("no key with id '\(id.prefix(64))'")
            }
            try c.run("UPDATE api_keys SET revoked = 1 WHERE id = ?", [.text(id)])
            try Self.audit(c, actor: actor, action: "key.revoke", projectID: record.projectID, target: id, detail: "name=\(record.name)")
            record.revoked = true
            return record
        }
    }

    /// Replaces a key: a new key with the same project, name and scopes (and the same lifetime left,
    /// when the old one expires); the old key keeps working for `overlapSeconds` (0: stops now) so
    /// deployments can switch over. Returns the new plaintext and both records.
    public func rotateKey(id: String, overlapSeconds: Int64, projectID: String? = nil, actor: String = "system") async throws -> (key: String, record: APIKeyRecord, old: APIKeyRecord) {
        guard overlapSeconds >= 0, overlapSeconds <= Self.maxLifetimeSeconds else {
            throw AccessError.invalid("overlap must be between 0 and \(Self.maxLifetimeSeconds / 3600) hours, got \(overlapSeconds) s")
        }
        let now = Self.nowNanos()
        return try await db.write { c in
            guard var old = try c.query("SELECT \(Self.keyColumns) FROM api_keys WHERE id = ?", [.text(id)]).first.map(Self.keyRecord),
                  projectID == nil || old.projectID == projectID else {
                throw AccessError.notFound("no key with id '\(id.prefix(64))'")
            }
            guard !old.revoked else { throw AccessError.conflict("key '\(id)' is revoked; create a new key instead") }
            if let e = old.expiresUnixNanos, e <= now { throw AccessError.conflict("key '\(id)' has expired; create a new key instead") }
            let overlapEnd = now.addingSaturated(overlapSeconds * 1_000_000_000)
            let oldEnd = min(old.expiresUnixNanos ?? .max, overlapEnd)
            let newExpires = old.expiresUnixNanos.map { now.addingSaturated(($0).subtractingSaturated(old.createdUnixNanos)) }
            let (key, record) = Self.newKey(projectID: old.projectID, name: old.name, scopes: Set(old.scopes), now: now, expires: newExpires)
            try Self.insert(c, record, hash: Digest.sha256Hex(key))
            if overlapSeconds == 0 {
                try c.run("UPDATE api_keys SET revoked = 1 WHERE id = ?", [.text(id)])
                old.revoked = true
            } else {
                try c.run("UPDATE api_keys SET expires_unix_nanos = ? WHERE id = ?", [.integer(oldEnd), .text(id)])
                old.expiresUnixNanos = oldEnd
            }
            try Self.audit(c, actor: actor, action: "key.rotate", projectID: old.projectID, target: id, detail: "new=\(record.id) overlap_s=\(overlapSeconds)")
            return (key, record, old)
        }
    }

    // MARK: Admin token

    /// Makes the instance admin token known: `configured` (from `EVALFORGE_ADMIN_TOKEN` or a file)
    /// replaces the stored hash; without one, a token is generated when none is stored yet and
    /// returned (the only time it is ever visible: print it once). Nil when nothing was generated.
    public func ensureAdminToken(configured: String?) async throws -> String? {
        let now = Self.nowNanos()
        if let configured {
            guard Self.validAdminToken(configured) else {
                throw AccessError.invalid("the admin token must be 16 to 256 printable ASCII characters without spaces")
            }
            let hash = Digest.sha256Hex(configured)
            try await db.write { c in
                let changed = try c.run("INSERT INTO admin_tokens (id, token_hash, created_unix_nanos) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET token_hash = excluded.token_hash, created_unix_nanos = excluded.created_unix_nanos WHERE admin_tokens.token_hash <> excluded.token_hash", [.text(hash), .integer(now)])
                // Other backends still hold the old hash: they reload it at their next poll.
                if changed > 0 { try CacheGenerations.bump(c, .adminToken) }
            }
            adminTokenHash.withLock { $0 = .some(hash) }
            return nil
        }
        let token = "efadmin_" + Digest.hex(Digest.randomBytes(24))
        let hash = Digest.sha256Hex(token)
        let stored = try await db.write { c -> String in
            if let existing = try c.scalar("SELECT token_hash FROM admin_tokens WHERE id = 1")?.string { return existing }
            try c.run("INSERT INTO admin_tokens (id, token_hash, created_unix_nanos) VALUES (1, ?, ?)", [.text(hash), .integer(now)])
            return hash
        }
        adminTokenHash.withLock { $0 = .some(stored) }
        return stored == hash ? token : nil
    }

    /// Forgets the admin token's hash (another backend replaced it: `CacheGeneration.adminToken`);
    /// the next check reads it again.
    public func forgetAdminToken() {
        adminTokenHash.withLock { $0 = nil }
    }

    /// True when `token` is the instance admin token (compared by hash, in constant time).
    public func isAdminToken(_ token: String) async throws -> Bool {
        guard Self.validAdminToken(token) else { return false }
        var known = adminTokenHash.withLock { $0 }
        if known == nil {
            let loaded = try await db.read { c in try c.scalar("SELECT token_hash FROM admin_tokens WHERE id = 1")?.string }
            adminTokenHash.withLock { $0 = .some(loaded) }
            known = .some(loaded)
        }
        guard let hash = known ?? nil else { return false }
        return Digest.constantTimeEqual(Array(Digest.sha256Hex(token).utf8), Array(hash.utf8))
    }

    /// 16…256 visible ASCII characters.
    public static func validAdminToken(_ t: String) -> Bool {
        (16...256).contains(t.utf8.count) && t.utf8.allSatisfy { (0x21...0x7e).contains($0) }
    }

    // MARK: Audit log

    /// Appends an audit entry (for actions recorded outside this store's own operations).
    public func recordAudit(actor: String, action: String, projectID: String, target: String, detail: String = "") async throws {
        try await db.write { c in try Self.audit(c, actor: actor, action: action, projectID: projectID, target: target, detail: detail) }
    }

    /// Audit entries, newest first: of one project when `projectID` is set, older than `beforeSeq`
    /// when set (paging), at most `limit` (1…1000).
    public func auditLog(projectID: String?, limit: Int, beforeSeq: Int64? = nil) async throws -> [AuditEntry] {
        let limit = min(1000, max(1, limit))
        return try await db.read { c in
            var sql = "SELECT seq, at_unix_nanos, actor, action, project_id, target, detail FROM audit_log WHERE 1 = 1"
            var binds: [MetadataValue] = []
            if let projectID { sql += " AND project_id = ?"; binds.append(.text(projectID)) }
            if let beforeSeq { sql += " AND seq < ?"; binds.append(.integer(beforeSeq)) }
            sql += " ORDER BY seq DESC LIMIT \(limit)"
            return try c.query(sql, binds).map { r in
                AuditEntry(seq: r["seq"].int64 ?? 0, atUnixNanos: r["at_unix_nanos"].int64 ?? 0, actor: r["actor"].string ?? "", action: r["action"].string ?? "",
                           projectID: r["project_id"].string ?? "", target: r["target"].string ?? "", detail: r["detail"].string ?? "")
            }
        }
    }

    /// Writes an audit row inside the caller's transaction (so an action and its entry commit together).
    static func audit(_ c: any MetadataConnection, actor: String, action: String, projectID: String, target: String, detail: String) throws {
        try c.run("INSERT INTO audit_log (at_unix_nanos, actor, action, project_id, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                  [.integer(nowNanos()), .text(bounded(actor, 128)), .text(bounded(action, 128)), .text(bounded(projectID, 128)), .text(bounded(target, 512)), .text(bounded(detail, 1024))])
    }

    static func bounded(_ s: String, _ bytes: Int) -> String {
        guard s.utf8.count > bytes else { return s }
        var out = ""
        for ch in s {
            if out.utf8.count + String(ch).utf8.count > bytes { break }
            out.append(ch)
        }
        return out
    }

    // MARK: Validation

    /// A name of 1…`maxNameBytes` bytes, trimmed, without control characters.
    public static func validName(_ raw: String, what: String) throws(AccessError) -> String {
        let s = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !s.isEmpty else { throw .invalid("\(what) is empty") }
        guard s.utf8.count <= maxNameBytes else { throw .invalid("\(what) is \(s.utf8.count) bytes long; at most \(maxNameBytes)") }
        guard !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }) else {
            throw .invalid("\(what) contains control characters")
        }
        return s
    }

    /// A project id: 1…64 of a-z, 0-9, '-', '_', starting with a letter or digit.
    public static func validProjectID(_ s: String) throws(AccessError) -> String {
        guard !s.isEmpty, s.utf8.count <= maxProjectIDBytes,
              s.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 95 }),
              let first = s.utf8.first, first != 45, first != 95 else {
            throw .invalid("project id '\(s.prefix(80))': use 1 to \(maxProjectIDBytes) lower-case letters, digits, '-' or '_', starting with a letter or digit")
        }
        return s
    }

    /// The default id of a project named `name`: ASCII letters and digits lowered, other runs as "-".
    static func slug(_ name: String) -> String {
        var out = ""
        var dash = false
        for b in name.lowercased().utf8 {
            if (97...122).contains(b) || (48...57).contains(b) {
                if dash, !out.isEmpty { out.append("-") }
                dash = false
                out.append(Character(Unicode.Scalar(b)))
            } else {
                dash = true
            }
            if out.utf8.count >= maxProjectIDBytes { break }
        }
        return out
    }

    // MARK: Rows

    static let keyColumns = "id, project_id, name, prefix, scopes, created_unix_nanos, expires_unix_nanos, last_used_unix_nanos, revoked"

    static func newKey(projectID: String, name: String, scopes: Set<Scope>, now: Int64, expires: Int64?) -> (String, APIKeyRecord) {
        let key = "ef_" + Digest.hex(Digest.randomBytes(24))
        let record = APIKeyRecord(id: "key_" + Digest.hex(Digest.randomBytes(8)), projectID: projectID, name: name, prefix: String(key.prefix(11)) + "…",
                                  scopes: Scope.sorted(scopes), createdUnixNanos: now, expiresUnixNanos: expires, lastUsedUnixNanos: nil, revoked: false)
        return (key, record)
    }

    static func insert(_ c: any MetadataConnection, _ r: APIKeyRecord, hash: String) throws {
        try c.run("INSERT INTO api_keys (id, project_id, key_hash, prefix, name, created_unix_nanos, scopes, expires_unix_nanos) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  [.text(r.id), .text(r.projectID), .text(hash), .text(r.prefix), .text(r.name), .integer(r.createdUnixNanos), .text(Scope.text(Set(r.scopes))), r.expiresUnixNanos.map { .integer($0) } ?? .null])
    }

    static func keyRecord(_ r: MetadataRow) -> APIKeyRecord {
        APIKeyRecord(id: r["id"].string ?? "", projectID: r["project_id"].string ?? "", name: r["name"].string ?? "", prefix: r["prefix"].string ?? "",
                     scopes: Scope.sorted(Scope.fromText(r["scopes"].string)), createdUnixNanos: r["created_unix_nanos"].int64 ?? 0,
                     expiresUnixNanos: r["expires_unix_nanos"].int64, lastUsedUnixNanos: r["last_used_unix_nanos"].int64, revoked: (r["revoked"].int64 ?? 0) != 0)
    }

    /// How a key is stored: its SHA-256, hex.
    static func keyHash(_ key: String) -> String { Digest.sha256Hex(key) }

    /// Catalog queries of `deleteProject`: the tables, a table's columns (`name`), and a table's
    /// foreign keys (`parent`, `col`, `pcol`), in each dialect.
    static func catalog(_ d: MetadataDialect) -> (tables: String, columns: String, foreignKeys: String) {
        switch d {
        case .sqlite:
            ("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
             "SELECT name FROM pragma_table_info(?)",
             "SELECT \"table\" AS parent, \"from\" AS col, \"to\" AS pcol FROM pragma_foreign_key_list(?)")
        case .postgres:
            ("SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
             "SELECT column_name::text AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
             """
             SELECT p.relname::text AS parent, a.attname::text AS col, pa.attname::text AS pcol FROM pg_constraint k
             JOIN pg_class t ON t.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
             JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
             WHERE k.contype = 'f' AND t.relname = ? AND t.relnamespace = current_schema()::regnamespace
             """)
        }
    }

    /// A table or column name as an SQL identifier (names come from the catalog, quoted anyway).
    static func ident(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    static func project(_ r: MetadataRow) -> Project {
        Project(id: r["id"].string ?? "", name: r["name"].string ?? "", retentionDays: Int(clamping: r["retention_days"].int64 ?? 0), createdUnixNanos: r["created_unix_nanos"].int64 ?? 0)
    }

    static func nowNanos() -> Int64 { CheckedNumbers.clampedInt64(Date().timeIntervalSince1970 * 1e9) }
}
