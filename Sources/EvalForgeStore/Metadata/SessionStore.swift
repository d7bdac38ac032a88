import EvalForgeCore
import EvalForgeCrypto
import Foundation

/// A signed-in web UI session as the server keeps it: the project and the API key it was created
/// from (the session lives only while that key is valid: revoking the key ends its sessions), and
/// its times, Unix milliseconds.
public struct UISessionRecord: Sendable, Hashable {
    public var project: Project
    public var keyID: String
    /// The scopes of the key the session was signed in with (read at every request, so a change
    /// to the key applies at once).
    public var scopes: Set<Scope>
    public var createdUnixMs: Int64
    public var lastSeenUnixMs: Int64
    public var idleExpiresUnixMs: Int64
    public var absoluteExpiresUnixMs: Int64
}

/// Server-side web UI sessions in the metadata file. The browser holds only a random 256-bit id;
/// the table holds its SHA-256, so a copy of the file does not let anyone sign in. A session ends
/// at its idle expiry (extended by use, never past the absolute expiry), at its absolute expiry,
/// at logout (the row is deleted), or when its key is revoked or deleted.
public final class SessionStore: Sendable {
    public let db: any MetadataDatabase

    public init(db: any MetadataDatabase) {
        self.db = db
    }

    static let migrations = MetadataMigrator([
        .init("meta.sessions.001", """
            CREATE TABLE ui_sessions (
                id_hash TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                key_id TEXT NOT NULL,
                created_unix_ms INTEGER NOT NULL,
                last_seen_unix_ms INTEGER NOT NULL,
                idle_expires_unix_ms INTEGER NOT NULL,
                absolute_expires_unix_ms INTEGER NOT NULL
            );
            CREATE INDEX ui_sessions_key ON ui_sessions(key_id);
            CREATE INDEX ui_sessions_expiry ON ui_sessions(absolute_expires_unix_ms);
            """),
    ])

    public func migrate() async throws {
        try await Self.migrations.apply(to: db)
    }

    /// Bytes of a session id (256 bits), sent as 64 hex characters.
    public static let idBytes = 32

    /// A well-formed session id: exactly 64 lowercase hex characters (anything else is not looked up).
    public static func isWellFormed(_ id: String) -> Bool {
        id.utf8.count == idBytes * 2 && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Creates a session for the project `key` belongs to; returns the id (for the cookie; only its
    /// hash is stored) and the record, or nil when the key is unknown, revoked, expired or lacks the
    /// `read` scope.
    public func create(key: String, idleSeconds: Int64, absoluteSeconds: Int64, nowUnixMs: Int64 = SessionStore.nowMs()) async throws -> (id: String, record: UISessionRecord)? {
        guard !key.isEmpty, key.utf8.count <= 256 else { return nil }
        let id = Digest.hex(Digest.randomBytes(Self.idBytes))
        let idHash = Digest.sha256Hex(id)
        let keyHash = Digest.sha256Hex(key)
        let idle = nowUnixMs.addingSaturated(idleSeconds.multipliedSaturated(by: 1000))
        let absolute = nowUnixMs.addingSaturated(absoluteSeconds.multipliedSaturated(by: 1000))
        let record: UISessionRecord? = try await db.write { c in
            // Expired rows go as new ones come, so the table stays the size of the live sessions.
            _ = try c.run("DELETE FROM ui_sessions WHERE absolute_expires_unix_ms <= ? OR idle_expires_unix_ms <= ?", [.integer(nowUnixMs), .integer(nowUnixMs)])
            guard let row = try c.query("""
                SELECT k.id AS key_id, k.scopes, p.id, p.name, p.retention_days, p.created_unix_nanos FROM api_keys k
                JOIN projects p ON p.id = k.project_id WHERE k.key_hash = ? AND k.revoked = 0
                    AND (k.expires_unix_nanos IS NULL OR k.expires_unix_nanos > ?)
                """, [.text(keyHash), .integer(ProjectStore.nowNanos())]).first, let keyID = row["key_id"].string else { return nil }
            // The UI reads: a key without `read` (an ingest-only key) cannot sign in.
            let scopes = Scope.fromText(row["scopes"].string)
            guard scopes.contains(.read) else { return nil }
            let r = UISessionRecord(project: ProjectStore.project(row), keyID: keyID, scopes: scopes, createdUnixMs: nowUnixMs, lastSeenUnixMs: nowUnixMs,
                                    idleExpiresUnixMs: min(idle, absolute), absoluteExpiresUnixMs: absolute)
            try c.run("INSERT INTO ui_sessions (id_hash, project_id, key_id, created_unix_ms, last_seen_unix_ms, idle_expires_unix_ms, absolute_expires_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      [.text(idHash), .text(r.project.id), .text(keyID), .integer(nowUnixMs), .integer(nowUnixMs), .integer(r.idleExpiresUnixMs), .integer(absolute)])
            return r
        }
        return record.map { (id, $0) }
    }

    /// The live session `id` names, or nil (unknown, expired, signed out, or its key revoked). Use
    /// extends the idle expiry; the row is rewritten at most once per `touchEverySeconds` so pages
    /// cost no write each.
    public func authenticate(id: String, idleSeconds: Int64, touchEverySeconds: Int64 = 60, nowUnixMs: Int64 = SessionStore.nowMs()) async throws -> UISessionRecord? {
        guard Self.isWellFormed(id) else { return nil }
        let idHash = Digest.sha256Hex(id)
        let found: UISessionRecord? = try await db.read { c in
            try c.query("""
                SELECT s.key_id, k.scopes, s.created_unix_ms, s.last_seen_unix_ms, s.idle_expires_unix_ms, s.absolute_expires_unix_ms,
                       p.id, p.name, p.retention_days, p.created_unix_nanos
                FROM ui_sessions s JOIN api_keys k ON k.id = s.key_id AND k.project_id = s.project_id AND k.revoked = 0
                    AND (k.expires_unix_nanos IS NULL OR k.expires_unix_nanos > ?)
                JOIN projects p ON p.id = s.project_id WHERE s.id_hash = ?
                """, [.integer(ProjectStore.nowNanos()), .text(idHash)]).first.map { r in
                UISessionRecord(project: ProjectStore.project(r), keyID: r["key_id"].string ?? "", scopes: Scope.fromText(r["scopes"].string), createdUnixMs: r["created_unix_ms"].int64 ?? 0,
                                lastSeenUnixMs: r["last_seen_unix_ms"].int64 ?? 0, idleExpiresUnixMs: r["idle_expires_unix_ms"].int64 ?? 0,
                                absoluteExpiresUnixMs: r["absolute_expires_unix_ms"].int64 ?? 0)
            }
        }
        guard var session = found else { return nil }
        guard nowUnixMs < session.idleExpiresUnixMs, nowUnixMs < session.absoluteExpiresUnixMs else {
            _ = try await db.write { c in try c.run("DELETE FROM ui_sessions WHERE id_hash = ?", [.text(idHash)]) }
            return nil
        }
        let touchMs = max(0, touchEverySeconds).multipliedSaturated(by: 1000)
        if nowUnixMs.subtractingSaturated(session.lastSeenUnixMs) >= touchMs {
            session.lastSeenUnixMs = nowUnixMs
            session.idleExpiresUnixMs = min(nowUnixMs.addingSaturated(idleSeconds.multipliedSaturated(by: 1000)), session.absoluteExpiresUnixMs)
            let s = session
            _ = try await db.write { c in
                try c.run("UPDATE ui_sessions SET last_seen_unix_ms = ?, idle_expires_unix_ms = ? WHERE id_hash = ?",
                          [.integer(s.lastSeenUnixMs), .integer(s.idleExpiresUnixMs), .text(idHash)])
            }
        }
        return session
    }

    /// Ends the session `id` names (logout). Returns whether one existed.
    @discardableResult
    public func delete(id: String) async throws -> Bool {
        guard Self.isWellFormed(id) else { return false }
        let idHash = Digest.sha256Hex(id)
        return try await db.write { c in try c.run("DELETE FROM ui_sessions WHERE id_hash = ?", [.text(idHash)]) > 0 }
    }

    /// Ends every session created from the key `keyID` (its revocation also ends them at once, as
    /// `authenticate` joins the key; this removes the rows).
    @discardableResult
    public func deleteSessions(keyID: String) async throws -> Int {
        try await db.write { c in try c.run("DELETE FROM ui_sessions WHERE key_id = ?", [.text(keyID)]) }
    }

    /// Live sessions (tests, operators).
    public func count(nowUnixMs: Int64 = SessionStore.nowMs()) async throws -> Int {
        try await db.read { c in
            Int(try c.scalar("SELECT COUNT(*) FROM ui_sessions WHERE idle_expires_unix_ms > ? AND absolute_expires_unix_ms > ?", [.integer(nowUnixMs), .integer(nowUnixMs)])?.int64 ?? 0)
        }
    }

    public static func nowMs() -> Int64 {
        (Date().timeIntervalSince1970 * 1000).clampedInteger(Int64.self) ?? 0
    }
}
